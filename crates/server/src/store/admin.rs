//! What the operator's endpoints need from the store (SPEC §11 `/admin/…`): agents
//! with their balances, lineage children, execution logs, filtered events, grants
//! that are safe to retry, and a parentless agent created with its grant and first
//! bid in one transaction.

use super::agents::{self, agent_from, AgentRecord, NewAgent, AGENT_COLUMNS};
use super::bids::{bid_in, place_bid_in, BidRecord, NewBid};
use super::error::{Rejection, StoreResult};
use super::events::{self, event_from, EventRecord, EventType, NewEvent, EVENT_COLUMNS};
use super::idempotency::{self, Idempotency, OPERATOR_SCOPE};
use super::ledger::{mint_grant, Balance, Refs, TransferRecord};
use super::rows::MINT_ACCOUNT_ID;
use super::Store;
use agora_core::lifecycle::AgentStatus;
use agora_core::{AgentId, BidId, Bundle, Credits, ExecutionId, LedgerError, TransferKind};
use serde_json::json;
use sqlx::Row;
use std::path::PathBuf;

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events with an id above this.
    pub after: i64,
    /// Only events of this type (`bid_placed`, …).
    pub kind: Option<String>,
    /// Only events about this agent.
    pub agent: Option<AgentId>,
}

/// An operator's grant (`POST /admin/grant`).
#[derive(Debug, Clone)]
pub struct GrantRequest {
    pub agent: AgentId,
    pub amount: Credits,
    pub memo: String,
    /// A retry with the same key returns the first grant and mints nothing.
    pub idempotency_key: Option<String>,
}

/// A parentless agent created by the operator (`POST /admin/agents`).
#[derive(Debug, Clone)]
pub struct RootAgent {
    pub workspaces_root: PathBuf,
    /// Minted from `mint` as a grant.
    pub initial_credits: Credits,
    /// A first bid (bundle, amount) placed from those credits.
    pub first_bid: Option<(Bundle, Credits)>,
    pub bid_ttl_cycles: i64,
    pub max_pending_bids: i64,
}

impl Store {
    /// Agents in id order after `after`, optionally of one status, each with its
    /// balance, read in one query.
    pub async fn agents_with_balances(
        &self,
        status: Option<AgentStatus>,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<(AgentRecord, Balance)>> {
        let status_clause = if status.is_some() {
            "AND status = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {AGENT_COLUMNS}, \
             (SELECT balance FROM accounts WHERE accounts.agent_id = agents.id) AS account_balance, \
             (SELECT held FROM accounts WHERE accounts.agent_id = agents.id) AS account_held \
             FROM agents WHERE id > $1 {status_clause} ORDER BY id LIMIT $2"
        );
        let mut q = sqlx::query(&sql).bind(after).bind(limit);
        if let Some(s) = status {
            q = q.bind(s.as_str());
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                let balance = Credits::from_micros(
                    r.try_get::<Option<i64>, _>("account_balance")?.unwrap_or(0),
                );
                let held =
                    Credits::from_micros(r.try_get::<Option<i64>, _>("account_held")?.unwrap_or(0));
                let available = balance.checked_sub(held).unwrap_or(Credits::ZERO);
                Ok((
                    agent_from(r)?,
                    Balance {
                        balance,
                        held,
                        available,
                    },
                ))
            })
            .collect()
    }

    /// The agents an agent spawned, in id order.
    pub async fn children_of(&self, agent: AgentId) -> StoreResult<Vec<AgentId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM agents WHERE parent_id = $1 ORDER BY id")
                .bind(agent.0)
                .fetch_all(self.reader())
                .await?;
        Ok(ids.into_iter().map(AgentId).collect())
    }

    /// Where an execution's log is, if it has one.
    pub async fn execution_log_path(&self, id: ExecutionId) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT log_path FROM executions WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        let row = row.ok_or(Rejection::UnknownExecution(id))?;
        Ok(row
            .try_get::<Option<String>, _>("log_path")?
            .filter(|p| !p.is_empty()))
    }

    /// Events matching `filter`, oldest first, at most `limit`.
    pub async fn events_matching(
        &self,
        filter: &EventFilter,
        limit: i64,
    ) -> StoreResult<Vec<EventRecord>> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1");
        let mut n = 2;
        if filter.kind.is_some() {
            sql.push_str(&format!(" AND type = ${n}"));
            n += 1;
        }
        if filter.agent.is_some() {
            sql.push_str(&format!(" AND agent_id = ${n}"));
            n += 1;
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${n}"));
        let mut q = sqlx::query(&sql).bind(filter.after);
        if let Some(k) = &filter.kind {
            q = q.bind(k.as_str());
        }
        if let Some(a) = filter.agent {
            q = q.bind(a.0);
        }
        let rows = q.bind(limit).fetch_all(self.reader()).await?;
        rows.iter().map(event_from).collect()
    }

    /// The id of the newest event, 0 when there is none.
    pub async fn last_event_id(&self) -> StoreResult<i64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(self.reader())
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// Mints a grant into an alive agent's account. With an idempotency key, a
    /// retry returns the first grant (and `true`) and mints nothing; the same key
    /// for a different agent or amount is refused.
    pub async fn grant_once(&self, req: GrantRequest) -> StoreResult<(TransferRecord, bool)> {
        let outcome = self
            .write_tx(move |c| {
                let req = req.clone();
                Box::pin(async move {
                    if let Some(key) = &req.idempotency_key {
                        let row = sqlx::query(
                            "SELECT t.id, t.amount, t.kind, a.agent_id FROM transfers t \
                             JOIN accounts a ON a.id = t.credit_account \
                             WHERE t.debit_account = $1 AND t.idempotency_key = $2",
                        )
                        .bind(MINT_ACCOUNT_ID)
                        .bind(key.as_str())
                        .fetch_optional(&mut *c)
                        .await?;
                        if let Some(row) = row {
                            let same = row.try_get::<Option<i64>, _>("agent_id")?
                                == Some(req.agent.0)
                                && row.try_get::<i64, _>("amount")? == req.amount.micros()
                                && row.try_get::<String, _>("kind")?
                                    == TransferKind::Grant.as_str();
                            if !same {
                                return Err(
                                    Rejection::IdempotencyConflict { key: key.clone() }.into()
                                );
                            }
                            return Ok(Err(row.try_get::<i64, _>("id")?));
                        }
                    }
                    if !req.amount.is_positive() {
                        return Err(LedgerError::NotPositive.into());
                    }
                    let refs = Refs {
                        memo: req.memo.clone(),
                        idempotency_key: req.idempotency_key.clone(),
                        ..Refs::default()
                    };
                    let record = mint_grant(c, req.agent, req.amount, &refs).await?;
                    Ok(Ok(record))
                })
            })
            .await?;
        match outcome {
            Ok(record) => Ok((record, false)),
            Err(first) => {
                let mut found = self.transactions(first - 1, 1).await?;
                match found.pop() {
                    Some(record) if record.id == first => Ok((record, true)),
                    _ => Err(super::StoreError::Corrupt(format!(
                        "transfer {first} vanished"
                    ))),
                }
            }
        }
    }

    /// Creates a parentless agent, mints its initial credits as a grant and places
    /// its optional first bid, all in one transaction: a refused bid (below the
    /// reserve, more than the credits) leaves no agent and no money behind.
    ///
    /// With an idempotency key (scoped to the operator), a retry returns the first
    /// agent and bid (and `true`) and mints nothing.
    pub async fn create_root_agent(
        &self,
        req: RootAgent,
        idem: Option<Idempotency>,
    ) -> StoreResult<(AgentId, Option<BidRecord>, bool)> {
        self.write_tx(move |c| {
            let req = req.clone();
            let idem = idem.clone();
            Box::pin(async move {
                if let Some(idem) = &idem {
                    if let Some(done) =
                        idempotency::recall(c, OPERATOR_SCOPE, "create_agent", idem).await?
                    {
                        let agent = idempotency::id_in(&done, "agent")?.ok_or_else(|| {
                            super::StoreError::Corrupt("idempotent create without agent".into())
                        })?;
                        let bid = match idempotency::id_in(&done, "bid")? {
                            Some(b) => Some(bid_in(c, BidId(b)).await?),
                            None => None,
                        };
                        return Ok((AgentId(agent), bid, true));
                    }
                }
                let id = agents::create(
                    c,
                    &NewAgent {
                        parent: None,
                        workspaces_root: req.workspaces_root.clone(),
                    },
                )
                .await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::AgentCreated,
                        "api",
                        Some(id),
                        json!({"parent": null, "by": "operator"}),
                    ),
                )
                .await?;
                let refs = Refs {
                    memo: "initial credits".into(),
                    ..Refs::default()
                };
                mint_grant(c, id, req.initial_credits, &refs).await?;
                let bid = match req.first_bid {
                    Some((bundle, amount)) => Some(
                        place_bid_in(
                            c,
                            &NewBid {
                                payer: id,
                                beneficiary: id,
                                bundle,
                                amount,
                                ttl_cycles: req.bid_ttl_cycles,
                                max_pending: req.max_pending_bids,
                            },
                        )
                        .await?,
                    ),
                    None => None,
                };
                if let Some(idem) = &idem {
                    let outcome = json!({"agent": id.0, "bid": bid.as_ref().map(|b| b.id.0)});
                    idempotency::remember(c, OPERATOR_SCOPE, "create_agent", idem, &outcome)
                        .await?;
                }
                Ok((id, bid, false))
            })
        })
        .await
    }
}
