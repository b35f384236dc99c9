//! Spawn charges and messages over the database (SPEC §9): what a parent pays for
//! a child (and the child's optional first bid, in the same transaction), what a
//! message costs, and the public directory of agents. Workspace files are the
//! caller's business.

use super::agents::{self, agent_from, AgentRecord, NewAgent, AGENT_COLUMNS};
use super::bids::{bid_in, place_bid_in, BidRecord, NewBid};
use super::error::{Rejection, StoreError, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::idempotency::{self, Idempotency};
use super::ledger::{move_credits, require_alive, Refs};
use super::{now_micros, Store};
use agora_core::lifecycle::AgentStatus;
use agora_core::{Account, AgentId, BidId, Credits, LedgerError, TransferKind};
use serde_json::json;
use sqlx::Row;
use std::path::PathBuf;

/// A spawn's money and lineage.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    pub parent: AgentId,
    /// Credits moved from the parent to the child.
    pub initial_credits: Credits,
    /// The spawn fee (config `spawn_cost`), burned.
    pub spawn_cost: Credits,
    pub workspaces_root: PathBuf,
}

/// A message as delivered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageRecord {
    pub id: i64,
    pub from: AgentId,
    pub to: AgentId,
    pub content: String,
    pub sent_at: i64,
    pub read_at: i64,
}

impl Store {
    /// Creates a child: the parent pays the fee (burned) and the endowment (to the
    /// child) in one transaction, checked against its available credits up front.
    pub async fn spawn(&self, req: SpawnRequest) -> StoreResult<AgentId> {
        Ok(self.spawn_with_bid(req, None, None).await?.0)
    }

    /// [`Store::spawn`], and then, in the same transaction, the child's first bid
    /// held from the credits it was just given. The bid's payer and beneficiary
    /// are the new child, whatever `first_bid` names (the child has no id before
    /// this call). A refused bid (below reserve, more than the endowment, …)
    /// refuses the whole spawn: no child, nothing paid.
    ///
    /// With an idempotency key, a retry returns the first child and bid (and
    /// `true`) and pays nothing.
    pub async fn spawn_with_bid(
        &self,
        req: SpawnRequest,
        first_bid: Option<NewBid>,
        idem: Option<Idempotency>,
    ) -> StoreResult<(AgentId, Option<BidRecord>, bool)> {
        self.write_tx(move |c| {
            let req = req.clone();
            let first_bid = first_bid.clone();
            let idem = idem.clone();
            Box::pin(async move {
                if let Some(idem) = &idem {
                    if let Some(done) = idempotency::recall(c, req.parent.0, "spawn", idem).await? {
                        let child = idempotency::id_in(&done, "agent")?
                            .ok_or_else(|| StoreError::Corrupt("idempotent spawn without agent".into()))?;
                        let bid = match idempotency::id_in(&done, "bid")? {
                            Some(id) => Some(bid_in(c, BidId(id)).await?),
                            None => None,
                        };
                        return Ok((AgentId(child), bid, true));
                    }
                }
                require_alive(c, req.parent).await?;
                let total = req.spawn_cost.checked_add(req.initial_credits).ok_or(LedgerError::Overflow)?;
                let available: Option<i64> =
                    sqlx::query_scalar("SELECT balance - held FROM accounts WHERE agent_id = $1")
                        .bind(req.parent.0)
                        .fetch_optional(&mut *c)
                        .await?;
                let available = Credits::from_micros(available.unwrap_or(0));
                if available < total {
                    return Err(LedgerError::InsufficientFunds { available, needed: total }.into());
                }
                let child = agents::create(c, &NewAgent { parent: Some(req.parent), workspaces_root: req.workspaces_root.clone() })
                    .await?;
                let parent = Account::Agent(req.parent);
                let refs = Refs { memo: format!("spawn of agent {child}"), ..Refs::default() };
                if req.spawn_cost.is_positive() {
                    move_credits(c, parent, Account::Burn, req.spawn_cost, TransferKind::SpawnFee, &refs)
                        .await?;
                }
                if req.initial_credits.is_positive() {
                    move_credits(c, parent, Account::Agent(child), req.initial_credits, TransferKind::SpawnEndowment, &refs)
                        .await?;
                }
                sqlx::query("UPDATE agents SET total_credits_spent = total_credits_spent + $1 WHERE id = $2")
                    .bind(total.micros())
                    .bind(req.parent.0)
                    .execute(&mut *c)
                    .await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::AgentSpawned,
                        "economy",
                        Some(child),
                        json!({"parent": req.parent.0, "initial_credits": req.initial_credits, "fee": req.spawn_cost}),
                    ),
                )
                .await?;
                let bid = match first_bid {
                    None => None,
                    Some(b) => Some(
                        place_bid_in(
                            c,
                            &NewBid {
                                payer: child,
                                beneficiary: child,
                                ..b
                            },
                        )
                        .await?,
                    ),
                };
                if let Some(idem) = &idem {
                    let outcome = json!({"agent": child.0, "bid": bid.as_ref().map(|b| b.id.0)});
                    idempotency::remember(c, req.parent.0, "spawn", idem, &outcome).await?;
                }
                Ok((child, bid, false))
            })
        })
        .await
    }

    /// Sends a message, burning `cost` from the sender.
    pub async fn send_message(
        &self,
        from: AgentId,
        to: AgentId,
        content: String,
        cost: Credits,
    ) -> StoreResult<i64> {
        Ok(self
            .send_message_once(from, to, content, cost, None)
            .await?
            .0)
    }

    /// [`Store::send_message`] with an idempotency key: a retry returns the first
    /// message's id (and `true`), sends and charges nothing.
    pub async fn send_message_once(
        &self,
        from: AgentId,
        to: AgentId,
        content: String,
        cost: Credits,
        idem: Option<Idempotency>,
    ) -> StoreResult<(i64, bool)> {
        self.write_tx(move |c| {
            let content = content.clone();
            let idem = idem.clone();
            Box::pin(async move {
                if let Some(idem) = &idem {
                    if let Some(done) = idempotency::recall(c, from.0, "message", idem).await? {
                        let id = idempotency::id_in(&done, "message")?
                            .ok_or_else(|| StoreError::Corrupt("idempotent message without id".into()))?;
                        return Ok((id, true));
                    }
                }
                if from == to {
                    return Err(Rejection::MessageToSelf.into());
                }
                require_alive(c, from).await?;
                let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE id = $1")
                    .bind(to.0)
                    .fetch_one(&mut *c)
                    .await?;
                if exists == 0 {
                    return Err(Rejection::UnknownAgent(to).into());
                }
                if cost.is_positive() {
                    let refs = Refs { memo: format!("message to agent {to}"), ..Refs::default() };
                    move_credits(c, Account::Agent(from), Account::Burn, cost, TransferKind::MessageFee, &refs).await?;
                }
                let row = sqlx::query(
                    "INSERT INTO messages (from_agent, to_agent, content, sent_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(from.0)
                .bind(to.0)
                .bind(content.as_str())
                .bind(now_micros())
                .fetch_one(&mut *c)
                .await?;
                let id: i64 = row.try_get("id")?;
                events::append(
                    c,
                    NewEvent::new(EventType::MessageSent, "economy", Some(from), json!({"message_id": id, "to": to.0, "fee": cost})),
                )
                .await?;
                if let Some(idem) = &idem {
                    idempotency::remember(c, from.0, "message", idem, &json!({"message": id})).await?;
                }
                Ok((id, false))
            })
        })
        .await
    }

    /// Returns an agent's unread messages, oldest first, and marks them read.
    pub async fn read_inbox(&self, agent: AgentId, limit: i64) -> StoreResult<Vec<MessageRecord>> {
        self.write_tx(move |c| {
            Box::pin(async move {
                let rows = sqlx::query(
                    "SELECT id, from_agent, to_agent, content, sent_at FROM messages \
                     WHERE to_agent = $1 AND read_at IS NULL ORDER BY id LIMIT $2",
                )
                .bind(agent.0)
                .bind(limit)
                .fetch_all(&mut *c)
                .await?;
                let now = now_micros();
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let m = MessageRecord {
                        id: r.try_get("id")?,
                        from: AgentId(r.try_get("from_agent")?),
                        to: AgentId(r.try_get("to_agent")?),
                        content: r.try_get("content")?,
                        sent_at: r.try_get("sent_at")?,
                        read_at: now,
                    };
                    sqlx::query("UPDATE messages SET read_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(m.id)
                        .execute(&mut *c)
                        .await?;
                    out.push(m);
                }
                Ok(out)
            })
        })
        .await
    }

    /// The public directory: agents in id order after `after`, at most `limit`,
    /// only those with `status` when given.
    pub async fn agent_directory(
        &self,
        status: Option<AgentStatus>,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<AgentRecord>> {
        // `$2 IS NULL` would need a typed NULL on PostgreSQL; an empty string names
        // no status instead.
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE id > $1 AND ($2 = '' OR status = $2) \
             ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(status.map(|s| s.as_str()).unwrap_or(""))
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(agent_from).collect()
    }
}
