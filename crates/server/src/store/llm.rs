//! The LLM proxy's token quota per execution (SPEC §10) and its call records.
//!
//! `remaining = bundle.tokens − tokens_used − tokens_held`. A call is admitted in
//! one transaction that locks its execution's row, reads the quota, lets the
//! caller decide how much to hold, and adds that hold with a conditional UPDATE
//! (the CHECK of migration 0004 repeats the rule); its `llm_calls` row is created
//! in the same transaction with status `held`. Settling is one transaction too: the
//! row leaves `held` by an UPDATE conditional on still being `held`, so a call is
//! settled exactly once even when an expiry raced it, and the charge (never more
//! than the hold) moves into `tokens_used` together with the record.
//!
//! A hold that outlives its TTL, or that a crash left behind, is settled at its
//! full amount: the call may still be generating (or may have generated) up to
//! that much, so charging less could let the execution's calls use more than its
//! bundle. See docs/llm.md.

use super::error::{Rejection, StoreResult};
use super::{now_micros, Store};
use agora_core::ExecutionId;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// An execution's tokens as the proxy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmQuota {
    /// The bundle's tokens.
    pub tokens: i64,
    /// Charged so far.
    pub used: i64,
    /// Held by calls in flight.
    pub held: i64,
}

impl LlmQuota {
    /// What a new call may still hold.
    pub fn remaining(&self) -> i64 {
        (self.tokens - self.used - self.held).max(0)
    }
}

/// How a settled call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmCallStatus {
    /// The upstream answered in full.
    Completed,
    /// The client went away; the upstream's answer was drained or estimated.
    ClientClosed,
    /// The upstream failed, timed out, or refused.
    UpstreamError,
    /// The hold outlived its TTL or the process; charged at its full amount.
    Expired,
}

impl LlmCallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LlmCallStatus::Completed => "completed",
            LlmCallStatus::ClientClosed => "client_closed",
            LlmCallStatus::UpstreamError => "upstream_error",
            LlmCallStatus::Expired => "expired",
        }
    }
}

/// Where a settled call's token counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    /// The upstream's `usage`.
    Upstream,
    /// The proxy's estimate (no usage was reported); see docs/llm.md.
    Estimated,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Upstream => "upstream",
            UsageSource::Estimated => "estimated",
        }
    }
}

/// A call about to be admitted.
#[derive(Debug, Clone)]
pub struct NewLlmCall {
    pub execution: ExecutionId,
    pub model: String,
    pub stream: bool,
    /// Holds of this execution older than this are settled first (see module doc).
    pub hold_ttl: Duration,
}

/// What admission decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    /// The call may go ahead; `quota` is what the decision saw, before the hold.
    Held {
        call: i64,
        held: i64,
        quota: LlmQuota,
    },
    /// The plan did not fit what `quota` leaves; nothing changed.
    Refused { quota: LlmQuota },
    /// The execution is no longer scheduled or running.
    NotRunning,
}

/// The end of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmSettlement {
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub source: UsageSource,
    /// Tokens to charge; the store charges at most the call's hold.
    pub charge: i64,
    pub status: LlmCallStatus,
    pub http_status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub first_token_ms: Option<i64>,
    pub overhead_us: Option<i64>,
}

/// A call as recorded (SPEC §3 LlmCall).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LlmCallRecord {
    pub id: i64,
    pub execution: ExecutionId,
    pub model: String,
    pub stream: bool,
    pub held: i64,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub source: Option<String>,
    pub charged: i64,
    pub status: String,
    pub http_status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub first_token_ms: Option<i64>,
    pub overhead_us: Option<i64>,
    pub created_at: i64,
    pub settled_at: Option<i64>,
}

const CALL_COLUMNS: &str = "id, execution_id, model, stream, held, prompt_tokens, \
    completion_tokens, source, charged, status, http_status, latency_ms, first_token_ms, \
    overhead_us, created_at, settled_at";

fn call_from(r: &sqlx::any::AnyRow) -> StoreResult<LlmCallRecord> {
    let stream: i64 = r.try_get("stream")?;
    Ok(LlmCallRecord {
        id: r.try_get("id")?,
        execution: ExecutionId(r.try_get("execution_id")?),
        model: r.try_get("model")?,
        stream: stream != 0,
        held: r.try_get("held")?,
        prompt_tokens: r.try_get("prompt_tokens")?,
        completion_tokens: r.try_get("completion_tokens")?,
        source: r.try_get("source")?,
        charged: r.try_get("charged")?,
        status: r.try_get("status")?,
        http_status: r.try_get("http_status")?,
        latency_ms: r.try_get("latency_ms")?,
        first_token_ms: r.try_get("first_token_ms")?,
        overhead_us: r.try_get("overhead_us")?,
        created_at: r.try_get("created_at")?,
        settled_at: r.try_get("settled_at")?,
    })
}

/// Settles every hold created before `cutoff` (of one execution, or all) at its
/// full amount, inside the caller's transaction. Executions are updated in id
/// order, the global lock order of the store. Returns how many were settled.
async fn expire_in(
    c: &mut AnyConnection,
    execution: Option<ExecutionId>,
    cutoff: i64,
) -> StoreResult<u64> {
    let now = now_micros();
    let rows =
        match execution {
            Some(e) => sqlx::query(
                "UPDATE llm_calls SET status = 'expired', source = 'estimated', charged = held, \
             settled_at = $1 WHERE status = 'held' AND created_at < $2 AND execution_id = $3 \
             RETURNING execution_id, held",
            )
            .bind(now)
            .bind(cutoff)
            .bind(e.0)
            .fetch_all(&mut *c)
            .await?,
            None => sqlx::query(
                "UPDATE llm_calls SET status = 'expired', source = 'estimated', charged = held, \
             settled_at = $1 WHERE status = 'held' AND created_at < $2 \
             RETURNING execution_id, held",
            )
            .bind(now)
            .bind(cutoff)
            .fetch_all(&mut *c)
            .await?,
        };
    let mut per_execution: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &rows {
        *per_execution.entry(r.try_get("execution_id")?).or_default() +=
            r.try_get::<i64, _>("held")?;
    }
    for (exec, held) in per_execution {
        sqlx::query(
            "UPDATE executions SET tokens_used = tokens_used + $1, tokens_held = tokens_held - $1 \
             WHERE id = $2",
        )
        .bind(held)
        .bind(exec)
        .execute(&mut *c)
        .await?;
    }
    if !rows.is_empty() {
        tracing::warn!(
            component = "llm_proxy",
            holds = rows.len(),
            "expired LLM holds charged at their full amount"
        );
    }
    Ok(rows.len() as u64)
}

fn ttl_cutoff(ttl: Duration) -> i64 {
    now_micros().saturating_sub(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX))
}

impl Store {
    /// Admits a call: locks the execution's row, settles its expired holds, asks
    /// `plan` how much to hold given the quota (`None`: it does not fit), and holds
    /// it, all in one transaction.
    pub async fn hold_llm_tokens<F>(&self, call: NewLlmCall, plan: F) -> StoreResult<HoldOutcome>
    where
        F: Fn(&LlmQuota) -> Option<i64> + Send + Sync + 'static,
    {
        let cutoff = ttl_cutoff(call.hold_ttl);
        let plan = Arc::new(plan);
        self.write_tx(move |c| {
            let (plan, call) = (plan.clone(), call.clone());
            Box::pin(async move {
                // A no-op UPDATE: takes the row lock on PostgreSQL, so concurrent
                // admissions of one execution queue here and each reads the quota
                // the previous one left (SQLite writers are serialised anyway).
                let row = sqlx::query(
                    "UPDATE executions SET tokens_held = tokens_held WHERE id = $1 \
                     RETURNING status",
                )
                .bind(call.execution.0)
                .fetch_optional(&mut *c)
                .await?
                .ok_or(Rejection::UnknownExecution(call.execution))?;
                let status: String = row.try_get("status")?;
                if status != "scheduled" && status != "running" {
                    return Ok(HoldOutcome::NotRunning);
                }
                expire_in(c, Some(call.execution), cutoff).await?;
                let quota = quota_in(c, call.execution).await?;
                let Some(held) = plan(&quota).filter(|h| *h > 0 && *h <= quota.remaining()) else {
                    return Ok(HoldOutcome::Refused { quota });
                };
                let updated = sqlx::query(
                    "UPDATE executions SET tokens_held = tokens_held + $1 \
                     WHERE id = $2 AND tokens - tokens_used - tokens_held >= $1",
                )
                .bind(held)
                .bind(call.execution.0)
                .execute(&mut *c)
                .await?;
                if updated.rows_affected() != 1 {
                    return Ok(HoldOutcome::Refused { quota });
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO llm_calls (execution_id, model, stream, held, status, created_at) \
                     VALUES ($1, $2, $3, $4, 'held', $5) RETURNING id",
                )
                .bind(call.execution.0)
                .bind(call.model.as_str())
                .bind(i64::from(call.stream))
                .bind(held)
                .bind(now_micros())
                .fetch_one(&mut *c)
                .await?;
                Ok(HoldOutcome::Held {
                    call: id,
                    held,
                    quota,
                })
            })
        })
        .await
    }

    /// Settles a held call: records how it ended, charges at most its hold to the
    /// execution and releases the rest, in one transaction. Returns the tokens
    /// charged, or `None` when the call was settled already (an expiry got there
    /// first), in which case nothing changed.
    pub async fn settle_llm_call(&self, call: i64, s: LlmSettlement) -> StoreResult<Option<i64>> {
        self.write_tx(move |c| {
            let s = s.clone();
            Box::pin(async move {
                let row = sqlx::query(
                    "UPDATE llm_calls SET status = $1, source = $2, prompt_tokens = $3, \
                     completion_tokens = $4, charged = CASE WHEN $5 > held THEN held ELSE $5 END, \
                     http_status = $6, latency_ms = $7, first_token_ms = $8, overhead_us = $9, \
                     settled_at = $10 WHERE id = $11 AND status = 'held' \
                     RETURNING execution_id, held, charged",
                )
                .bind(s.status.as_str())
                .bind(s.source.as_str())
                .bind(s.prompt_tokens)
                .bind(s.completion_tokens)
                .bind(s.charge.max(0))
                .bind(s.http_status)
                .bind(s.latency_ms)
                .bind(s.first_token_ms)
                .bind(s.overhead_us)
                .bind(now_micros())
                .bind(call)
                .fetch_optional(&mut *c)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let exec: i64 = row.try_get("execution_id")?;
                let held: i64 = row.try_get("held")?;
                let charged: i64 = row.try_get("charged")?;
                sqlx::query(
                    "UPDATE executions SET tokens_used = tokens_used + $1, \
                     tokens_held = tokens_held - $2 WHERE id = $3",
                )
                .bind(charged)
                .bind(held)
                .bind(exec)
                .execute(&mut *c)
                .await?;
                Ok(Some(charged))
            })
        })
        .await
    }

    /// Settles every hold still open at their full amount. Called once when the
    /// world is opened, before anything serves calls: a hold found then belongs to
    /// a process that is gone. Returns how many were settled.
    pub async fn reconcile_llm_holds(&self) -> StoreResult<u64> {
        self.write_tx(|c| Box::pin(expire_in(c, None, i64::MAX)))
            .await
    }

    /// Settles, at their full amount, holds older than `ttl`. Returns how many.
    pub async fn expire_llm_holds(&self, ttl: Duration) -> StoreResult<u64> {
        let cutoff = ttl_cutoff(ttl);
        self.write_tx(move |c| Box::pin(expire_in(c, None, cutoff)))
            .await
    }

    /// An execution's tokens: bundle, charged, held.
    pub async fn llm_quota(&self, execution: ExecutionId) -> StoreResult<LlmQuota> {
        let mut c = self.reader().acquire().await?;
        quota_in(&mut c, execution).await
    }

    /// An execution's calls, oldest first.
    pub async fn llm_calls_of(&self, execution: ExecutionId) -> StoreResult<Vec<LlmCallRecord>> {
        let sql =
            format!("SELECT {CALL_COLUMNS} FROM llm_calls WHERE execution_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(execution.0)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(call_from).collect()
    }
}

async fn quota_in(c: &mut AnyConnection, execution: ExecutionId) -> StoreResult<LlmQuota> {
    let row = sqlx::query("SELECT tokens, tokens_used, tokens_held FROM executions WHERE id = $1")
        .bind(execution.0)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(Rejection::UnknownExecution(execution))?;
    Ok(LlmQuota {
        tokens: row.try_get("tokens")?,
        used: row.try_get("tokens_used")?,
        held: row.try_get("tokens_held")?,
    })
}
