//! The bid book over the database (SPEC §5): placing a bid holds its amount from
//! the payer, a raise holds more, a withdrawal or expiry voids the hold.

use super::error::{Rejection, StoreError, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::idempotency::{self, Idempotency};
use super::ledger::{place_hold, raise_hold, require_alive, void_hold};
use super::market::{read_cycle, read_prices};
use super::rows::{bundle_from, db_qty, Newest};
use super::{now_micros, Store};
use agora_core::lifecycle::{self, BidStatus};
use agora_core::{AgentId, BidId, Bundle, Credits, Cycle, HoldId, Resource, TransferKind};
use serde_json::json;
use sqlx::{AnyConnection, Row};

/// A bid about to be placed.
#[derive(Debug, Clone)]
pub struct NewBid {
    pub payer: AgentId,
    /// The agent woken if the bid wins (the payer, or another agent).
    pub beneficiary: AgentId,
    pub bundle: Bundle,
    pub amount: Credits,
    pub ttl_cycles: i64,
    pub max_pending: i64,
}

/// A bid as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BidRecord {
    pub id: BidId,
    pub payer: AgentId,
    pub beneficiary: AgentId,
    #[serde(skip)]
    pub bundle: Bundle,
    pub amount: Credits,
    pub status: BidStatus,
    pub placed_at: i64,
    pub placed_cycle: i64,
    pub expiry_cycle: i64,
    pub decided_at: Option<i64>,
    pub won_cycle: Option<i64>,
    pub execution_id: Option<i64>,
    #[serde(skip)]
    pub hold: HoldId,
}

pub(super) const BID_COLUMNS: &str =
    "id, payer_id, beneficiary_id, cpu_millis, memory_mb, tokens, \
     attention_ppm, wall_millis, amount, hold_id, status, placed_at, placed_cycle, \
     expiry_cycle, decided_at, won_cycle, execution_id";

pub(super) fn bid_from(r: &sqlx::any::AnyRow) -> StoreResult<BidRecord> {
    let status: String = r.try_get("status")?;
    Ok(BidRecord {
        id: BidId(r.try_get("id")?),
        payer: AgentId(r.try_get("payer_id")?),
        beneficiary: AgentId(r.try_get("beneficiary_id")?),
        bundle: bundle_from(r)?,
        amount: Credits::from_micros(r.try_get("amount")?),
        status: BidStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("bid status {status:?}")))?,
        placed_at: r.try_get("placed_at")?,
        placed_cycle: r.try_get("placed_cycle")?,
        expiry_cycle: r.try_get("expiry_cycle")?,
        decided_at: r.try_get("decided_at")?,
        won_cycle: r.try_get("won_cycle")?,
        execution_id: r.try_get("execution_id")?,
        hold: HoldId(r.try_get("hold_id")?),
    })
}

pub(super) async fn pending_bid(c: &mut AnyConnection, id: BidId) -> StoreResult<BidRecord> {
    let sql = format!("SELECT {BID_COLUMNS} FROM bids WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *c).await?;
    let bid = bid_from(&row.ok_or(Rejection::UnknownBid(id))?)?;
    if bid.status != BidStatus::Pending {
        return Err(Rejection::BidNotPending {
            id,
            status: bid.status.as_str().into(),
        }
        .into());
    }
    Ok(bid)
}

/// Ends a pending bid without payment (withdrawn or expired), voiding its hold.
async fn close_bid(c: &mut AnyConnection, bid: &BidRecord, status: BidStatus) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE bids SET status = $1, decided_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(now_micros())
    .bind(bid.id.0)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    void_hold(c, bid.hold).await?;
    Ok(true)
}

/// Places a bid inside the caller's transaction (see [`Store::place_bid`]).
pub async fn place_bid_in(c: &mut AnyConnection, bid: &NewBid) -> StoreResult<BidRecord> {
    require_alive(c, bid.payer).await?;
    if bid.beneficiary != bid.payer {
        require_alive(c, bid.beneficiary).await?;
    }
    if !bid.amount.is_positive() {
        return Err(agora_core::LedgerError::NotPositive.into());
    }
    let reserve = read_prices(c).await?.reserve(&bid.bundle);
    if bid.amount < reserve {
        return Err(Rejection::BelowReserve {
            offered: bid.amount,
            reserve,
        }
        .into());
    }
    insert_pending_bid(c, bid, reserve, true).await
}

/// Holds a bid's amount and records it as pending, after the market's checks
/// passed (or, `limit` false, for a bid restored rather than placed: see
/// `runs::place_again`). `reserve` is what the event reports.
pub(super) async fn insert_pending_bid(
    c: &mut AnyConnection,
    bid: &NewBid,
    reserve: Credits,
    limit: bool,
) -> StoreResult<BidRecord> {
    let hold = place_hold(c, bid.payer, bid.amount, TransferKind::ResourcePayment).await?;
    // Counted after the hold: the hold's UPDATE locks the payer's account row, so
    // concurrent bids of one payer are counted one after the other (PostgreSQL).
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM bids WHERE payer_id = $1 AND status = 'pending'")
            .bind(bid.payer.0)
            .fetch_one(&mut *c)
            .await?;
    if limit && pending >= bid.max_pending {
        return Err(Rejection::TooManyBids {
            max: bid.max_pending,
        }
        .into());
    }
    let cycle = read_cycle(c).await?;
    let expiry = lifecycle::expiry_cycle(cycle, bid.ttl_cycles);
    let q = bid.bundle.quantities();
    let sql = format!(
        "INSERT INTO bids (payer_id, beneficiary_id, cpu_millis, memory_mb, tokens, \
         attention_ppm, wall_millis, amount, hold_id, status, placed_at, placed_cycle, \
         expiry_cycle) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12) \
         RETURNING {BID_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(bid.payer.0)
        .bind(bid.beneficiary.0)
        .bind(db_qty(q.get(Resource::CpuSeconds)))
        .bind(db_qty(q.get(Resource::MemoryMb)))
        .bind(db_qty(q.get(Resource::Tokens)))
        .bind(db_qty(q.get(Resource::AttentionShare)))
        .bind(bid.bundle.wall_millis().map(db_qty))
        .bind(bid.amount.micros())
        .bind(hold.0)
        .bind(now_micros())
        .bind(cycle.0)
        .bind(expiry.0)
        .fetch_one(&mut *c)
        .await?;
    let record = bid_from(&row)?;
    events::append(
        c,
        NewEvent::new(
            EventType::BidPlaced,
            "market",
            Some(bid.payer),
            json!({"bid_id": record.id.0, "beneficiary": bid.beneficiary.0,
                   "amount": bid.amount, "reserve": reserve,
                   "bundle": bid.bundle.to_spec()}),
        )
        .in_cycle(cycle),
    )
    .await?;
    Ok(record)
}

/// Reads a bid inside the caller's transaction.
pub(crate) async fn bid_in(c: &mut AnyConnection, id: BidId) -> StoreResult<BidRecord> {
    let sql = format!("SELECT {BID_COLUMNS} FROM bids WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *c).await?;
    bid_from(&row.ok_or(Rejection::UnknownBid(id))?)
}

impl Store {
    /// Places a bid: checks both agents are alive, the payer's pending-bid limit and
    /// the reserve price, then holds the amount from the payer's available credits.
    /// A refusal for economic reasons is recorded as a `bid_rejected` event.
    pub async fn place_bid(&self, bid: NewBid) -> StoreResult<BidRecord> {
        Ok(self.place_bid_once(bid, None).await?.0)
    }

    /// [`Store::place_bid`] with an idempotency key: a retry returns the first bid
    /// (and `true`) and holds nothing more.
    pub async fn place_bid_once(
        &self,
        bid: NewBid,
        idem: Option<Idempotency>,
    ) -> StoreResult<(BidRecord, bool)> {
        let attempt = bid.clone();
        let result = self
            .write_tx(move |c| {
                let bid = attempt.clone();
                let idem = idem.clone();
                Box::pin(async move {
                    if let Some(idem) = &idem {
                        if let Some(done) =
                            idempotency::recall(c, bid.payer.0, "place_bid", idem).await?
                        {
                            let id = idempotency::id_in(&done, "bid")?.ok_or_else(|| {
                                StoreError::Corrupt("idempotent bid without id".into())
                            })?;
                            return Ok((bid_in(c, BidId(id)).await?, true));
                        }
                    }
                    let placed = place_bid_in(c, &bid).await?;
                    if let Some(idem) = &idem {
                        idempotency::remember(
                            c,
                            bid.payer.0,
                            "place_bid",
                            idem,
                            &json!({"bid": placed.id.0}),
                        )
                        .await?;
                    }
                    Ok((placed, false))
                })
            })
            .await;
        if let Err(StoreError::Rejected(r)) = &result {
            if matches!(
                r,
                Rejection::BelowReserve { .. }
                    | Rejection::Ledger(_)
                    | Rejection::TooManyBids { .. }
            ) {
                self.record_event(NewEvent::new(
                    EventType::BidRejected,
                    "market",
                    Some(bid.payer),
                    json!({"reason": r.code(), "message": r.to_string(), "amount": bid.amount}),
                ))
                .await?;
            }
        }
        result
    }

    /// Raises the amount of a pending bid the payer placed.
    pub async fn raise_bid(
        &self,
        payer: AgentId,
        id: BidId,
        new_amount: Credits,
    ) -> StoreResult<BidRecord> {
        self.write_tx(move |c| {
            Box::pin(async move {
                let bid = pending_bid(c, id).await?;
                if bid.payer != payer {
                    return Err(Rejection::NotYourBid(id).into());
                }
                raise_hold(c, bid.hold, new_amount).await?;
                sqlx::query("UPDATE bids SET amount = $1 WHERE id = $2")
                    .bind(new_amount.micros())
                    .bind(id.0)
                    .execute(&mut *c)
                    .await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::BidRaised,
                        "market",
                        Some(payer),
                        json!({"bid_id": id.0, "from": bid.amount, "to": new_amount}),
                    ),
                )
                .await?;
                Ok(BidRecord {
                    amount: new_amount,
                    ..bid
                })
            })
        })
        .await
    }

    /// Withdraws a pending bid the payer placed, releasing its hold.
    pub async fn withdraw_bid(&self, payer: AgentId, id: BidId) -> StoreResult<()> {
        self.write_tx(move |c| {
            Box::pin(async move {
                let bid = pending_bid(c, id).await?;
                if bid.payer != payer {
                    return Err(Rejection::NotYourBid(id).into());
                }
                close_bid(c, &bid, BidStatus::Withdrawn).await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::BidWithdrawn,
                        "market",
                        Some(payer),
                        json!({"bid_id": id.0}),
                    ),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Expires every pending bid whose expiry cycle is before `cycle`.
    pub async fn expire_bids(&self, cycle: Cycle) -> StoreResult<u64> {
        self.write_tx(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {BID_COLUMNS} FROM bids WHERE status = 'pending' AND expiry_cycle < $1"
                );
                let rows = sqlx::query(&sql).bind(cycle.0).fetch_all(&mut *c).await?;
                let mut n = 0;
                for row in &rows {
                    let bid = bid_from(row)?;
                    if close_bid(c, &bid, BidStatus::Expired).await? {
                        n += 1;
                        events::append(
                            c,
                            NewEvent::new(
                                EventType::BidExpired,
                                "market",
                                Some(bid.payer),
                                json!({"bid_id": bid.id.0}),
                            )
                            .in_cycle(cycle),
                        )
                        .await?;
                    }
                }
                Ok(n)
            })
        })
        .await
    }

    pub async fn bid(&self, id: BidId) -> StoreResult<BidRecord> {
        let sql = format!("SELECT {BID_COLUMNS} FROM bids WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        bid_from(&row.ok_or(Rejection::UnknownBid(id))?)
    }

    /// Bids an agent placed, newest first.
    pub async fn bids_of(&self, payer: AgentId, limit: i64) -> StoreResult<Vec<BidRecord>> {
        let sql =
            format!("SELECT {BID_COLUMNS} FROM bids WHERE payer_id = $1 ORDER BY id DESC LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(payer.0)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(bid_from).collect()
    }

    /// Bids naming an agent as beneficiary or payer, newest first, one page.
    pub async fn bids_for(
        &self,
        beneficiary: AgentId,
        page: Newest,
    ) -> StoreResult<Vec<BidRecord>> {
        let sql = format!(
            "SELECT {BID_COLUMNS} FROM bids WHERE (beneficiary_id = $1 OR payer_id = $1) AND id < $2 \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(beneficiary.0)
            .bind(page.below())
            .bind(page.limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(bid_from).collect()
    }

    /// The public bid book: pending bids, best first (the clearing order).
    pub async fn bid_book(&self, limit: i64) -> StoreResult<Vec<BidRecord>> {
        let sql = format!(
            "SELECT {BID_COLUMNS} FROM bids WHERE status = 'pending' ORDER BY amount DESC, placed_at, id LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(bid_from).collect()
    }
}
