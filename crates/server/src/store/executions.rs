//! Executions over the database: allocating a winning bid (payment and execution
//! in one transaction), recording how an execution ended, and the death rules that
//! follow (SPEC §1 law 2, §8 cull).

use super::agents::kill;
use super::bids::pending_bid;
use super::error::{Rejection, StoreError, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::ledger::{post_hold, Refs};
use super::rows::{bundle_from, db_qty, Newest};
use super::{now_micros, Store};
use agora_core::lifecycle::{self, AgentStatus, DeathReason, ExecutionStatus};
use agora_core::{Account, AgentId, BidId, Bundle, Cycle, ExecutionId, Resource};
use serde_json::json;
use sqlx::Row;

/// An execution as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExecutionRecord {
    pub id: ExecutionId,
    pub agent: AgentId,
    pub bid: BidId,
    #[serde(skip)]
    pub bundle: Bundle,
    pub cycle: i64,
    pub status: ExecutionStatus,
    pub exit_code: Option<i64>,
    pub termination_reason: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// LLM tokens charged so far (prompt + completion).
    pub tokens_used: i64,
}

pub(super) const EXECUTION_COLUMNS: &str = "id, agent_id, bid_id, cpu_millis, memory_mb, tokens, \
     attention_ppm, wall_millis, cycle, status, exit_code, termination_reason, created_at, \
     started_at, ended_at, tokens_used";

pub(super) fn execution_from(r: &sqlx::any::AnyRow) -> StoreResult<ExecutionRecord> {
    let status: String = r.try_get("status")?;
    Ok(ExecutionRecord {
        id: ExecutionId(r.try_get("id")?),
        agent: AgentId(r.try_get("agent_id")?),
        bid: BidId(r.try_get("bid_id")?),
        bundle: bundle_from(r)?,
        cycle: r.try_get("cycle")?,
        status: ExecutionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("execution status {status:?}")))?,
        exit_code: r.try_get("exit_code")?,
        termination_reason: r.try_get("termination_reason")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        tokens_used: r.try_get("tokens_used")?,
    })
}

impl Store {
    /// Allocates a winning bid in one transaction: posts its hold to `burn`, marks
    /// it won and creates its execution. Returns `None` if the bid stopped being
    /// pending since clearing read it (withdrawn meanwhile): nothing is charged.
    pub async fn allocate(&self, id: BidId, cycle: Cycle) -> StoreResult<Option<ExecutionRecord>> {
        self.write_tx(move |c| {
            Box::pin(async move {
                let bid = match pending_bid(c, id).await {
                    Ok(b) => b,
                    Err(StoreError::Rejected(Rejection::BidNotPending { .. })) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let q = bid.bundle.quantities();
                let sql = format!(
                    "INSERT INTO executions (agent_id, bid_id, cpu_millis, memory_mb, tokens, \
                     attention_ppm, wall_millis, cycle, status, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9) RETURNING {EXECUTION_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(bid.beneficiary.0)
                    .bind(bid.id.0)
                    .bind(db_qty(q.get(Resource::CpuSeconds)))
                    .bind(db_qty(q.get(Resource::MemoryMb)))
                    .bind(db_qty(q.get(Resource::Tokens)))
                    .bind(db_qty(q.get(Resource::AttentionShare)))
                    .bind(bid.bundle.wall_millis().map(db_qty))
                    .bind(cycle.0)
                    .bind(now_micros())
                    .fetch_one(&mut *c)
                    .await?;
                let exec = execution_from(&row)?;
                let refs = Refs { memo: format!("cycle {cycle}"), bid: Some(id), execution: Some(exec.id), ..Refs::default() };
                post_hold(c, bid.hold, Account::Burn, &refs).await?;
                sqlx::query(
                    "UPDATE bids SET status = 'won', decided_at = $1, won_cycle = $2, execution_id = $3 WHERE id = $4",
                )
                .bind(now_micros())
                .bind(cycle.0)
                .bind(exec.id.0)
                .bind(id.0)
                .execute(&mut *c)
                .await?;
                sqlx::query("UPDATE markets SET in_use = in_use + $1 WHERE resource = 'memory_mb'")
                    .bind(db_qty(q.get(Resource::MemoryMb)))
                    .execute(&mut *c)
                    .await?;
                sqlx::query("UPDATE agents SET total_credits_spent = total_credits_spent + $1 WHERE id = $2")
                    .bind(bid.amount.micros())
                    .bind(bid.payer.0)
                    .execute(&mut *c)
                    .await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::ResourcesAllocated,
                        "scheduler",
                        Some(bid.beneficiary),
                        json!({"bid_id": id.0, "execution_id": exec.id.0, "payer": bid.payer.0,
                               "amount": bid.amount, "bundle": bid.bundle.to_spec()}),
                    )
                    .in_cycle(cycle),
                )
                .await?;
                Ok(Some(exec))
            })
        })
        .await
    }

    pub async fn execution(&self, id: ExecutionId) -> StoreResult<ExecutionRecord> {
        let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        execution_from(&row.ok_or(Rejection::UnknownExecution(id))?)
    }

    /// The cull of §8: every alive agent with no pending bid and nothing scheduled
    /// or running dies. Returns the dead.
    pub async fn cull(&self, cycle: Cycle) -> StoreResult<Vec<AgentId>> {
        self.write_tx(move |c| {
            Box::pin(async move {
                let rows: Vec<i64> = sqlx::query_scalar(
                    "SELECT a.id FROM agents a WHERE a.status = 'alive' \
                     AND NOT EXISTS (SELECT 1 FROM bids b WHERE b.beneficiary_id = a.id AND b.status = 'pending') \
                     AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.agent_id = a.id \
                                     AND e.status IN ('scheduled', 'running'))",
                )
                .fetch_all(&mut *c)
                .await?;
                let mut dead = Vec::new();
                for id in rows {
                    let agent = AgentId(id);
                    if lifecycle::should_cull(AgentStatus::Alive, false, false)
                        && kill(c, agent, DeathReason::Culled, Some(cycle)).await?
                    {
                        dead.push(agent);
                    }
                }
                Ok(dead)
            })
        })
        .await
    }

    /// An agent's executions, newest first, one page.
    pub async fn executions_of(
        &self,
        agent: AgentId,
        page: Newest,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE agent_id = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.0)
            .bind(page.below())
            .bind(page.limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(execution_from).collect()
    }
}
