//! The AttentionManager over the database (SPEC §7): prompts escrow their bid,
//! exactly one is active, a rating burns the escrow and mints the reward, and an
//! unrated prompt expires with its hold voided.

use super::error::{Rejection, StoreError, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::ledger::{move_credits, place_hold, post_hold, void_hold, Refs};
use super::rows::Newest;
use super::{now_micros, Store};
use agora_core::attention::{self, PromptStatus, QueuedPrompt, RewardRates, Scores};
use agora_core::{Account, AgentId, Credits, ExecutionId, HoldId, PromptId, TransferKind};
use serde_json::json;
use sqlx::{AnyConnection, Row};

/// A prompt as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PromptRecord {
    pub id: PromptId,
    pub agent: AgentId,
    pub execution: ExecutionId,
    pub content: serde_json::Value,
    pub bid_amount: Credits,
    pub status: PromptStatus,
    pub submitted_at: i64,
    pub activated_at: Option<i64>,
    pub decided_at: Option<i64>,
    #[serde(skip)]
    pub hold: HoldId,
}

/// A human's rating of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResponseRecord {
    pub prompt: PromptId,
    pub interesting: i64,
    pub useful: i64,
    pub understandable: i64,
    pub reason: String,
    pub credits_awarded: Credits,
    pub rated_at: i64,
}

fn response_from(r: &sqlx::any::AnyRow) -> StoreResult<ResponseRecord> {
    Ok(ResponseRecord {
        prompt: PromptId(r.try_get("prompt_id")?),
        interesting: r.try_get("interesting")?,
        useful: r.try_get("useful")?,
        understandable: r.try_get("understandable")?,
        reason: r.try_get("reason")?,
        credits_awarded: Credits::from_micros(r.try_get("credits_awarded")?),
        rated_at: r.try_get("rated_at")?,
    })
}

/// What a rating paid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RewardOutcome {
    pub prompt: PromptId,
    pub agent: AgentId,
    pub reward: Credits,
    pub escrow_burned: Credits,
    /// The prompt that became active next, if any.
    pub next_active: Option<PromptId>,
}

const PROMPT_COLUMNS: &str =
    "id, agent_id, execution_id, content, bid_amount, hold_id, status, submitted_at, activated_at, decided_at";

fn prompt_from(r: &sqlx::any::AnyRow) -> StoreResult<PromptRecord> {
    let status: String = r.try_get("status")?;
    let content: String = r.try_get("content")?;
    Ok(PromptRecord {
        id: PromptId(r.try_get("id")?),
        agent: AgentId(r.try_get("agent_id")?),
        execution: ExecutionId(r.try_get("execution_id")?),
        content: serde_json::from_str(&content).unwrap_or(serde_json::Value::String(content)),
        bid_amount: Credits::from_micros(r.try_get("bid_amount")?),
        status: PromptStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("prompt status {status:?}")))?,
        submitted_at: r.try_get("submitted_at")?,
        activated_at: r.try_get("activated_at")?,
        decided_at: r.try_get("decided_at")?,
        hold: HoldId(r.try_get("hold_id")?),
    })
}

/// Makes the best pending prompt active when none is.
async fn activate_next(c: &mut AnyConnection) -> StoreResult<Option<PromptId>> {
    let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prompts WHERE status = 'active'")
        .fetch_one(&mut *c)
        .await?;
    if active > 0 {
        return Ok(None);
    }
    let rows =
        sqlx::query("SELECT id, bid_amount, submitted_at FROM prompts WHERE status = 'pending'")
            .fetch_all(&mut *c)
            .await?;
    let queue = rows
        .iter()
        .map(|r| {
            Ok(QueuedPrompt {
                id: PromptId(r.try_get("id")?),
                bid_amount: Credits::from_micros(r.try_get("bid_amount")?),
                submitted_at: r.try_get("submitted_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let Some(next) = attention::next_active(&queue) else {
        return Ok(None);
    };
    sqlx::query("UPDATE prompts SET status = 'active', activated_at = $1 WHERE id = $2")
        .bind(now_micros())
        .bind(next.0)
        .execute(&mut *c)
        .await?;
    Ok(Some(next))
}

async fn prompt_by_id(c: &mut AnyConnection, id: PromptId) -> StoreResult<PromptRecord> {
    let sql = format!("SELECT {PROMPT_COLUMNS} FROM prompts WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *c).await?;
    prompt_from(&row.ok_or(Rejection::UnknownPrompt(id))?)
}

impl Store {
    /// Submits an execution's one prompt, escrowing `bid_amount` from the agent.
    pub async fn submit_prompt(
        &self,
        agent: AgentId,
        execution: ExecutionId,
        content: serde_json::Value,
        bid_amount: Credits,
    ) -> StoreResult<PromptRecord> {
        self.write_tx(move |c| {
            let content = content.clone();
            Box::pin(async move {
                let owner: Option<i64> = sqlx::query_scalar("SELECT agent_id FROM executions WHERE id = $1")
                    .bind(execution.0)
                    .fetch_optional(&mut *c)
                    .await?;
                if owner != Some(agent.0) {
                    return Err(Rejection::UnknownExecution(execution).into());
                }
                let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prompts WHERE execution_id = $1")
                    .bind(execution.0)
                    .fetch_one(&mut *c)
                    .await?;
                if existing > 0 {
                    return Err(Rejection::PromptAlreadySubmitted(execution).into());
                }
                let hold = place_hold(c, agent, bid_amount, TransferKind::AttentionBid).await?;
                let row = sqlx::query(
                    "INSERT INTO prompts (agent_id, execution_id, content, bid_amount, hold_id, status, submitted_at) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6) RETURNING id",
                )
                .bind(agent.0)
                .bind(execution.0)
                .bind(content.to_string())
                .bind(bid_amount.micros())
                .bind(hold.0)
                .bind(now_micros())
                .fetch_one(&mut *c)
                .await?;
                let id = PromptId(row.try_get("id")?);
                events::append(
                    c,
                    NewEvent::new(
                        EventType::PromptSubmitted,
                        "attention",
                        Some(agent),
                        json!({"prompt_id": id.0, "execution_id": execution.0, "bid_amount": bid_amount}),
                    ),
                )
                .await?;
                activate_next(c).await?;
                prompt_by_id(c, id).await
            })
        })
        .await
    }

    /// Rates the active prompt: burns its escrow, mints the reward to its agent,
    /// stores the response and activates the next prompt. A prompt is rated at
    /// most once: a second rating is refused.
    pub async fn reward_prompt(
        &self,
        id: PromptId,
        scores: Scores,
        reason: String,
        rates: RewardRates,
    ) -> StoreResult<RewardOutcome> {
        self.write_tx(move |c| {
            let reason = reason.clone();
            Box::pin(async move {
                let now = now_micros();
                let r = sqlx::query(
                    "UPDATE prompts SET status = 'responded', decided_at = $1 WHERE id = $2 AND status = 'active'",
                )
                .bind(now)
                .bind(id.0)
                .execute(&mut *c)
                .await?;
                let prompt = prompt_by_id(c, id).await?;
                if r.rows_affected() != 1 {
                    return Err(Rejection::PromptNotActive { id, status: prompt.status.as_str().into() }.into());
                }
                let refs = Refs { prompt: Some(id), execution: Some(prompt.execution), ..Refs::default() };
                post_hold(c, prompt.hold, Account::Burn, &refs).await?;
                let reward = attention::reward(&scores, &rates);
                if reward.is_positive() {
                    move_credits(c, Account::Mint, Account::Agent(prompt.agent), reward, TransferKind::Reward, &refs)
                        .await?;
                    sqlx::query("UPDATE agents SET total_credits_earned = total_credits_earned + $1 WHERE id = $2")
                        .bind(reward.micros())
                        .bind(prompt.agent.0)
                        .execute(&mut *c)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO responses (prompt_id, interesting, useful, understandable, reason, credits_awarded, rated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id.0)
                .bind(i64::from(scores.interesting))
                .bind(i64::from(scores.useful))
                .bind(i64::from(scores.understandable))
                .bind(reason.as_str())
                .bind(reward.micros())
                .bind(now)
                .execute(&mut *c)
                .await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::HumanRewardIssued,
                        "attention",
                        Some(prompt.agent),
                        json!({"prompt_id": id.0, "reward": reward, "escrow_burned": prompt.bid_amount,
                               "scores": [scores.interesting, scores.useful, scores.understandable]}),
                    ),
                )
                .await?;
                let next_active = activate_next(c).await?;
                Ok(RewardOutcome { prompt: id, agent: prompt.agent, reward, escrow_burned: prompt.bid_amount, next_active })
            })
        })
        .await
    }

    /// Expires prompts not rated in time: an active prompt `ttl` after it became
    /// active, a pending one `ttl` after it was submitted. Their holds are voided.
    pub async fn expire_prompts(&self, now: i64, ttl_micros: i64) -> StoreResult<Vec<PromptId>> {
        self.write_tx(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {PROMPT_COLUMNS} FROM prompts WHERE status IN ('pending', 'active')"
                );
                let rows = sqlx::query(&sql).fetch_all(&mut *c).await?;
                let mut expired = Vec::new();
                for row in &rows {
                    let p = prompt_from(row)?;
                    let since = p.activated_at.unwrap_or(p.submitted_at);
                    if !attention::is_expired(since, now, ttl_micros) {
                        continue;
                    }
                    sqlx::query(
                        "UPDATE prompts SET status = 'expired', decided_at = $1 WHERE id = $2",
                    )
                    .bind(now)
                    .bind(p.id.0)
                    .execute(&mut *c)
                    .await?;
                    void_hold(c, p.hold).await?;
                    events::append(
                        c,
                        NewEvent::new(
                            EventType::PromptExpired,
                            "attention",
                            Some(p.agent),
                            json!({"prompt_id": p.id.0}),
                        ),
                    )
                    .await?;
                    expired.push(p.id);
                }
                activate_next(c).await?;
                Ok(expired)
            })
        })
        .await
    }

    pub async fn prompt(&self, id: PromptId) -> StoreResult<PromptRecord> {
        let mut c = self.reader().acquire().await?;
        prompt_by_id(&mut c, id).await
    }

    /// The active prompt and the pending queue behind it, best first; at most
    /// `limit` prompts.
    pub async fn attention_queue(&self, limit: i64) -> StoreResult<Vec<PromptRecord>> {
        let sql = format!(
            "SELECT {PROMPT_COLUMNS} FROM prompts WHERE status IN ('active', 'pending') \
             ORDER BY CASE status WHEN 'active' THEN 0 ELSE 1 END, bid_amount DESC, submitted_at, id LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(prompt_from).collect()
    }

    /// An agent's prompts with their responses, newest first, one page.
    pub async fn prompts_of(
        &self,
        agent: AgentId,
        page: Newest,
    ) -> StoreResult<Vec<(PromptRecord, Option<ResponseRecord>)>> {
        let sql = format!(
            "SELECT {PROMPT_COLUMNS} FROM prompts WHERE agent_id = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.0)
            .bind(page.below())
            .bind(page.limit)
            .fetch_all(self.reader())
            .await?;
        let prompts = rows
            .iter()
            .map(prompt_from)
            .collect::<StoreResult<Vec<_>>>()?;
        // Their ratings in one read, not one per prompt.
        let mut ratings: std::collections::HashMap<PromptId, ResponseRecord> = sqlx::query(
            "SELECT prompt_id, interesting, useful, understandable, reason, credits_awarded, rated_at \
             FROM responses WHERE prompt_id IN \
             (SELECT id FROM prompts WHERE agent_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3)",
        )
        .bind(agent.0)
        .bind(page.below())
        .bind(page.limit)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| response_from(r).map(|rec| (rec.prompt, rec)))
        .collect::<StoreResult<_>>()?;
        Ok(prompts
            .into_iter()
            .map(|p| {
                let r = ratings.remove(&p.id);
                (p, r)
            })
            .collect())
    }

    /// The rating of a prompt, if it was rated.
    pub async fn response(&self, prompt: PromptId) -> StoreResult<Option<ResponseRecord>> {
        let row = sqlx::query(
            "SELECT prompt_id, interesting, useful, understandable, reason, credits_awarded, rated_at \
             FROM responses WHERE prompt_id = $1",
        )
        .bind(prompt.0)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(response_from).transpose()
    }

    /// The ratings an agent's prompts received, newest first.
    pub async fn responses_of(
        &self,
        agent: AgentId,
        limit: i64,
    ) -> StoreResult<Vec<ResponseRecord>> {
        let rows = sqlx::query(
            "SELECT r.prompt_id, r.interesting, r.useful, r.understandable, r.reason, r.credits_awarded, r.rated_at \
             FROM responses r JOIN prompts p ON p.id = r.prompt_id WHERE p.agent_id = $1 \
             ORDER BY r.rated_at DESC, r.prompt_id DESC LIMIT $2",
        )
        .bind(agent.0)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(response_from).collect()
    }

    /// The prompt an execution submitted, if any.
    pub async fn prompt_of_execution(
        &self,
        execution: ExecutionId,
    ) -> StoreResult<Option<PromptRecord>> {
        let sql = format!("SELECT {PROMPT_COLUMNS} FROM prompts WHERE execution_id = $1");
        let row = sqlx::query(&sql)
            .bind(execution.0)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(prompt_from).transpose()
    }
}
