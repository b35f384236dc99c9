//! Executions as the Orchestrator drives them: started, ended with the sandbox's
//! outcome, or lost to the runtime (a crash, a launch that failed, a shutdown).
//! Every end releases the execution's memory, revokes its token and applies law 2 in
//! the same transaction (SPEC §1, §8).
//!
//! A lost execution is the runtime's failure, not the agent's: its payment is
//! refunded and its bid restored, so neither a credit nor a life is lost to it
//! (docs/decisions.md).

use super::agents::kill;
use super::bids::{bid_in, insert_pending_bid, NewBid};
use super::error::{Rejection, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::executions::{execution_from, ExecutionRecord, EXECUTION_COLUMNS};
use super::ledger::require_alive;
use super::ledger::{move_credits, Refs};
use super::market::read_prices;
use super::rows::db_qty;
use super::tokens;
use super::{now_micros, Store};
use agora_core::lifecycle::{self, DeathReason, ExecutionStatus};
use agora_core::{Account, AgentId, BidId, Credits, Cycle, ExecutionId, Resource, TransferKind};
use serde_json::json;
use sqlx::{AnyConnection, Row};

/// How an execution ended, as the sandbox reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionEnd {
    /// A terminal status.
    pub status: ExecutionStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub cpu_used_ms: Option<i64>,
    pub peak_memory_mb: Option<i64>,
}

impl ExecutionEnd {
    /// An end with only a status, exit code and reason.
    pub fn new(status: ExecutionStatus, exit_code: Option<i64>, reason: Option<String>) -> Self {
        ExecutionEnd {
            status,
            exit_code,
            reason,
            cpu_used_ms: None,
            peak_memory_mb: None,
        }
    }
}

/// How a lost execution's bid is placed again: the configuration's bid rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebid {
    pub ttl_cycles: i64,
    pub max_pending: i64,
}

/// What ending an execution did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub execution: ExecutionRecord,
    /// Returned to the payer because the execution was lost.
    pub refunded: Option<Credits>,
    /// The bid placed again in place of the one the lost execution consumed.
    pub rebid: Option<BidId>,
    /// The agent died of it (law 2).
    pub death: Option<DeathReason>,
}

/// Ends an active execution: records the end, releases its memory, revokes its token
/// and applies law 2. A `lost` execution (`Some(rebid)`) is first refunded and its bid
/// placed again. `None` when it had already ended (ending twice changes nothing).
async fn end_in(
    c: &mut AnyConnection,
    id: ExecutionId,
    end: &ExecutionEnd,
    lost: Option<Rebid>,
) -> StoreResult<Option<Ended>> {
    let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *c).await?;
    let exec = execution_from(&row.ok_or(Rejection::UnknownExecution(id))?)?;
    if !exec.status.is_active() || !end.status.is_terminal() {
        return Ok(None);
    }
    let now = now_micros();
    // Conditional on the status, so that of two ends racing on PostgreSQL (a
    // shutdown abandoning what a supervisor is recording) the second, which waits
    // on the row lock and then sees the ended row, changes nothing and refunds
    // nothing.
    let ended = sqlx::query(
        "UPDATE executions SET status = $1, exit_code = $2, termination_reason = $3, ended_at = $4, \
         cpu_used_millis = $5, peak_memory_mb = $6 WHERE id = $7 AND status IN ('scheduled', 'running')",
    )
    .bind(end.status.as_str())
    .bind(end.exit_code)
    .bind(end.reason.as_deref())
    .bind(now)
    .bind(end.cpu_used_ms)
    .bind(end.peak_memory_mb)
    .bind(id.0)
    .execute(&mut *c)
    .await?;
    if ended.rows_affected() == 0 {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE markets SET in_use = in_use - $1 WHERE resource = 'memory_mb' AND in_use >= $1",
    )
    .bind(db_qty(exec.bundle.get(Resource::MemoryMb)))
    .execute(&mut *c)
    .await?;
    let (refunded, rebid) = if let Some(policy) = lost {
        let refunded = refund(c, &exec).await?;
        (Some(refunded), place_again(c, &exec, policy).await?)
    } else {
        sqlx::query(
            "UPDATE agents SET execution_count = execution_count + 1, last_execution_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(exec.agent.0)
        .execute(&mut *c)
        .await?;
        (None, None)
    };
    tokens::revoke_in(c, id).await?;
    events::append(
        c,
        NewEvent::new(
            EventType::ExecutionFinished,
            "orchestrator",
            Some(exec.agent),
            json!({"execution_id": id.0, "status": end.status, "exit_code": end.exit_code,
                   "reason": end.reason, "cpu_used_ms": end.cpu_used_ms,
                   "peak_memory_mb": end.peak_memory_mb, "refunded": refunded,
                   "rebid": rebid.map(|b| b.0)}),
        )
        .in_cycle(Cycle(exec.cycle)),
    )
    .await?;
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bids WHERE beneficiary_id = $1 AND status = 'pending'",
    )
    .bind(exec.agent.0)
    .fetch_one(&mut *c)
    .await?;
    let death = match lifecycle::death_after_execution(pending > 0) {
        Some(death) if kill(c, exec.agent, death, Some(Cycle(exec.cycle))).await? => Some(death),
        _ => None,
    };
    Ok(Some(Ended {
        execution: exec,
        refunded,
        rebid,
        death,
    }))
}

/// Places the lost execution's bid again: same payer, beneficiary, bundle and amount,
/// a fresh expiry. It is restored, not newly placed, so neither the reserve (prices
/// may have risen since; clearing will wait for them to fall) nor the pending-bid
/// limit can refuse it; only a dead payer or beneficiary can. The refund just
/// returned the amount, so the payer can always hold it.
async fn place_again(
    c: &mut AnyConnection,
    exec: &ExecutionRecord,
    policy: Rebid,
) -> StoreResult<Option<BidId>> {
    let old = bid_in(c, exec.bid).await?;
    for agent in [old.payer, old.beneficiary] {
        if require_alive(c, agent).await.is_err() {
            return Ok(None);
        }
    }
    let reserve = read_prices(c).await?.reserve(&old.bundle);
    let bid = NewBid {
        payer: old.payer,
        beneficiary: old.beneficiary,
        bundle: old.bundle,
        amount: old.amount,
        ttl_cycles: policy.ttl_cycles,
        max_pending: policy.max_pending,
    };
    Ok(Some(insert_pending_bid(c, &bid, reserve, false).await?.id))
}

/// Returns an execution's payment from `burn` to whoever paid its bid.
async fn refund(c: &mut AnyConnection, exec: &ExecutionRecord) -> StoreResult<Credits> {
    let row = sqlx::query("SELECT payer_id, amount FROM bids WHERE id = $1")
        .bind(exec.bid.0)
        .fetch_one(&mut *c)
        .await?;
    let payer = AgentId(row.try_get("payer_id")?);
    let amount = Credits::from_micros(row.try_get("amount")?);
    if amount.micros() == 0 {
        return Ok(amount);
    }
    let refs = Refs {
        memo: format!("execution {} lost", exec.id),
        bid: Some(exec.bid),
        execution: Some(exec.id),
        ..Refs::default()
    };
    let t = move_credits(
        c,
        Account::Burn,
        Account::Agent(payer),
        amount,
        TransferKind::Refund,
        &refs,
    )
    .await?;
    sqlx::query("UPDATE agents SET total_credits_spent = total_credits_spent - $1 WHERE id = $2")
        .bind(amount.micros())
        .bind(payer.0)
        .execute(&mut *c)
        .await?;
    events::append(
        c,
        NewEvent::new(
            EventType::CreditsTransferred,
            "economy",
            Some(payer),
            json!({"transfer_id": t.id, "from": "burn", "to": payer.0, "amount": amount,
                   "kind": "refund", "execution_id": exec.id.0}),
        )
        .in_cycle(Cycle(exec.cycle)),
    )
    .await?;
    Ok(amount)
}

impl Store {
    /// Records that a scheduled execution is running in the sandbox. Returns false
    /// (and changes nothing) if it is no longer scheduled.
    pub async fn start_execution(
        &self,
        id: ExecutionId,
        backend: &str,
        container_id: Option<&str>,
        log_path: &str,
    ) -> StoreResult<bool> {
        let (backend, container_id, log_path) = (
            backend.to_string(),
            container_id.map(str::to_string),
            log_path.to_string(),
        );
        self.write_tx(move |c| {
            let (backend, container_id, log_path) =
                (backend.clone(), container_id.clone(), log_path.clone());
            Box::pin(async move {
                let row = sqlx::query(
                    "UPDATE executions SET status = 'running', started_at = $1, sandbox_backend = $2, \
                     container_id = $3, log_path = $4 WHERE id = $5 AND status = 'scheduled' \
                     RETURNING agent_id, cycle",
                )
                .bind(now_micros())
                .bind(&backend)
                .bind(container_id.as_deref())
                .bind(&log_path)
                .bind(id.0)
                .fetch_optional(&mut *c)
                .await?;
                let Some(row) = row else { return Ok(false) };
                let agent = AgentId(row.try_get("agent_id")?);
                events::append(
                    c,
                    NewEvent::new(
                        EventType::ExecutionStarted,
                        "sandbox",
                        Some(agent),
                        json!({"execution_id": id.0, "backend": backend, "container_id": container_id}),
                    )
                    .in_cycle(Cycle(row.try_get("cycle")?)),
                )
                .await?;
                Ok(true)
            })
        })
        .await
    }

    /// Records how an execution ended, releases its memory, revokes its token and
    /// applies law 2: if no pending bid would wake the agent again, it dies
    /// (`no_bid`). Ending an execution twice changes nothing the second time.
    pub async fn end_execution(
        &self,
        id: ExecutionId,
        end: ExecutionEnd,
    ) -> StoreResult<Option<Ended>> {
        let ended = self
            .write_tx(move |c| {
                let end = end.clone();
                Box::pin(async move { end_in(c, id, &end, None).await })
            })
            .await;
        self.tokens.evict(id);
        ended
    }

    /// [`Store::end_execution`] with only a status, exit code and reason; returns the
    /// death, if any.
    pub async fn finish_execution(
        &self,
        id: ExecutionId,
        status: ExecutionStatus,
        exit_code: Option<i64>,
        reason: Option<String>,
    ) -> StoreResult<Option<DeathReason>> {
        let ended = self
            .end_execution(id, ExecutionEnd::new(status, exit_code, reason))
            .await?;
        Ok(ended.and_then(|e| e.death))
    }

    /// Marks an active execution `lost` (its sandbox is gone: a crash, a launch that
    /// failed, a shutdown), refunds its payment and places its bid again, so the
    /// runtime's failure costs the agent neither credits nor its life.
    pub async fn abandon_execution(
        &self,
        id: ExecutionId,
        reason: String,
        rebid: Rebid,
    ) -> StoreResult<Option<Ended>> {
        let end = ExecutionEnd::new(ExecutionStatus::Lost, None, Some(reason));
        let ended = self
            .write_tx(move |c| {
                let end = end.clone();
                Box::pin(async move { end_in(c, id, &end, Some(rebid)).await })
            })
            .await;
        self.tokens.evict(id);
        ended
    }

    /// Executions still `scheduled` or `running`, oldest first.
    pub async fn active_executions(&self) -> StoreResult<Vec<ExecutionRecord>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE status IN ('scheduled', 'running') ORDER BY id"
        );
        let rows = sqlx::query(&sql).fetch_all(self.reader()).await?;
        rows.iter().map(execution_from).collect()
    }
}
