//! The MarketManager over the database (SPEC §5): markets and their history, the
//! bid book, allocation of winners, executions, and the death rules that follow an
//! execution (§1 law 2, §8 cull).

use super::agents::kill;
use super::error::{Rejection, StoreError, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::ledger::{place_hold, post_hold, raise_hold, require_alive, void_hold, Refs};
use super::rows::{bundle_from, db_qty};
use super::{now_micros, Store};
use agora_core::clearing::PendingBid;
use agora_core::lifecycle::{self, AgentStatus, BidStatus, DeathReason, ExecutionStatus};
use agora_core::{
    Account, AgentId, BidId, Bundle, Credits, Cycle, ExecutionId, HoldId, Price, Prices, Resource,
    ResourceVec, TransferKind,
};
use serde_json::json;
use sqlx::{AnyConnection, Row};
use std::collections::HashSet;

/// A market's configuration, applied at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketSetup {
    pub resource: Resource,
    /// Supply per cycle (memory: the pool), in base units.
    pub capacity: u64,
    /// Starting price, used only when the market is first created.
    pub initial_price: Price,
    pub min_price: Price,
    pub max_price: Price,
}

/// A market as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MarketRecord {
    pub resource: String,
    pub capacity: i64,
    pub in_use: i64,
    /// µcr per displayed unit.
    pub price: i64,
    pub min_price: i64,
    pub max_price: i64,
    pub utilisation: f64,
    pub updated_cycle: i64,
}

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
}

/// One market's state after one cycle.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryRow {
    pub cycle: i64,
    pub resource: String,
    pub capacity: i64,
    pub allocated: i64,
    pub utilisation: f64,
    /// µcr per displayed unit.
    pub price: i64,
    pub recorded_at: i64,
}

/// What one clearing did to the markets, recorded after the cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleRecord {
    pub cycle: Cycle,
    pub allocated: ResourceVec,
    pub utilisation: [f64; 4],
    pub new_prices: Prices,
}

const BID_COLUMNS: &str = "id, payer_id, beneficiary_id, cpu_millis, memory_mb, tokens, \
     attention_ppm, wall_millis, amount, hold_id, status, placed_at, placed_cycle, \
     expiry_cycle, decided_at, won_cycle, execution_id";

fn bid_from(r: &sqlx::any::AnyRow) -> StoreResult<BidRecord> {
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

const EXECUTION_COLUMNS: &str = "id, agent_id, bid_id, cpu_millis, memory_mb, tokens, \
     attention_ppm, wall_millis, cycle, status, exit_code, termination_reason, created_at, \
     started_at, ended_at";

fn execution_from(r: &sqlx::any::AnyRow) -> StoreResult<ExecutionRecord> {
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
    })
}

async fn read_prices(c: &mut AnyConnection) -> StoreResult<Prices> {
    let rows = sqlx::query("SELECT resource, price FROM markets")
        .fetch_all(&mut *c)
        .await?;
    let mut prices = Prices([Price(0); 4]);
    let mut seen = 0;
    for r in rows {
        let name: String = r.try_get("resource")?;
        if let Some(res) = Resource::parse(&name) {
            prices.0[res.index()] = Price(r.try_get("price")?);
            seen += 1;
        }
    }
    if seen != 4 {
        return Err(StoreError::Corrupt("markets are not bootstrapped".into()));
    }
    Ok(prices)
}

async fn read_cycle(c: &mut AnyConnection) -> StoreResult<Cycle> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT value FROM system_state WHERE key = 'cycle'")
            .fetch_optional(&mut *c)
            .await?;
    Ok(Cycle(v.and_then(|v| v.parse().ok()).unwrap_or(0)))
}

async fn pending_bid(c: &mut AnyConnection, id: BidId) -> StoreResult<BidRecord> {
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
    let hold = place_hold(c, bid.payer, bid.amount, TransferKind::ResourcePayment).await?;
    // Counted after the hold: the hold's UPDATE locks the payer's account row, so
    // concurrent bids of one payer are counted one after the other (PostgreSQL).
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM bids WHERE payer_id = $1 AND status = 'pending'")
            .bind(bid.payer.0)
            .fetch_one(&mut *c)
            .await?;
    if pending >= bid.max_pending {
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

impl Store {
    /// Creates the four markets on first start and applies configured supply and
    /// price bounds on every start (a current price outside new bounds is clamped).
    pub async fn setup_markets(&self, setups: Vec<MarketSetup>) -> StoreResult<()> {
        self.write_tx(move |c| {
            let setups = setups.clone();
            Box::pin(async move {
                for s in &setups {
                    sqlx::query(
                        "INSERT INTO markets (resource, capacity, price, min_price, max_price) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (resource) DO UPDATE SET \
                         capacity = excluded.capacity, min_price = excluded.min_price, \
                         max_price = excluded.max_price",
                    )
                    .bind(s.resource.as_str())
                    .bind(db_qty(s.capacity))
                    .bind(s.initial_price.0)
                    .bind(s.min_price.0)
                    .bind(s.max_price.0)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "UPDATE markets SET price = CASE WHEN price < min_price THEN min_price \
                         WHEN price > max_price THEN max_price ELSE price END WHERE resource = $1",
                    )
                    .bind(s.resource.as_str())
                    .execute(&mut *c)
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    pub async fn markets(&self) -> StoreResult<Vec<MarketRecord>> {
        let rows = sqlx::query(
            "SELECT resource, capacity, in_use, price, min_price, max_price, utilisation, \
             updated_cycle FROM markets ORDER BY resource",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MarketRecord {
                    resource: r.try_get("resource")?,
                    capacity: r.try_get("capacity")?,
                    in_use: r.try_get("in_use")?,
                    price: r.try_get("price")?,
                    min_price: r.try_get("min_price")?,
                    max_price: r.try_get("max_price")?,
                    utilisation: r.try_get("utilisation")?,
                    updated_cycle: r.try_get("updated_cycle")?,
                })
            })
            .collect()
    }

    /// The current price of each resource.
    pub async fn prices(&self) -> StoreResult<Prices> {
        let mut c = self.reader().acquire().await?;
        read_prices(&mut c).await
    }

    /// The last cycle that began (0 before the first).
    pub async fn current_cycle(&self) -> StoreResult<Cycle> {
        let mut c = self.reader().acquire().await?;
        read_cycle(&mut c).await
    }

    /// Starts the next cycle and returns its number.
    pub async fn begin_cycle(&self) -> StoreResult<Cycle> {
        self.write_tx(|c| {
            Box::pin(async move {
                let next = Cycle(read_cycle(c).await?.0 + 1);
                sqlx::query(
                    "INSERT INTO system_state (key, value) VALUES ('cycle', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(next.0.to_string())
                .execute(&mut *c)
                .await?;
                Ok(next)
            })
        })
        .await
    }

    /// Places a bid: checks both agents are alive, the payer's pending-bid limit and
    /// the reserve price, then holds the amount from the payer's available credits.
    /// A refusal for economic reasons is recorded as a `bid_rejected` event.
    pub async fn place_bid(&self, bid: NewBid) -> StoreResult<BidRecord> {
        let attempt = bid.clone();
        let result = self
            .write_tx(move |c| {
                let bid = attempt.clone();
                Box::pin(async move { place_bid_in(c, &bid).await })
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

    /// Appends one event in a transaction of its own.
    pub async fn record_event(&self, e: NewEvent) -> StoreResult<()> {
        self.write_tx(move |c| {
            let e = e.clone();
            Box::pin(events::append(c, e))
        })
        .await
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

    /// Everything one clearing needs: pending bids, capacity, what running
    /// executions hold, prices, and beneficiaries that cannot win now.
    pub async fn clearing_input(
        &self,
    ) -> StoreResult<(
        Vec<PendingBid>,
        ResourceVec,
        ResourceVec,
        Prices,
        HashSet<AgentId>,
    )> {
        let mut c = self.reader().acquire().await?;
        let sql = format!("SELECT {BID_COLUMNS} FROM bids WHERE status = 'pending'");
        let rows = sqlx::query(&sql).fetch_all(&mut *c).await?;
        let mut bids = Vec::with_capacity(rows.len());
        for r in &rows {
            let b = bid_from(r)?;
            bids.push(PendingBid {
                id: b.id,
                beneficiary: b.beneficiary,
                amount: b.amount,
                bundle: b.bundle,
                placed_at: b.placed_at,
            });
        }
        let mut capacity = ResourceVec::default();
        let mut in_use = ResourceVec::default();
        for r in sqlx::query("SELECT resource, capacity, in_use FROM markets")
            .fetch_all(&mut *c)
            .await?
        {
            let name: String = r.try_get("resource")?;
            if let Some(res) = Resource::parse(&name) {
                capacity.set(
                    res,
                    u64::try_from(r.try_get::<i64, _>("capacity")?).unwrap_or(0),
                );
                in_use.set(
                    res,
                    u64::try_from(r.try_get::<i64, _>("in_use")?).unwrap_or(0),
                );
            }
        }
        let prices = read_prices(&mut c).await?;
        let unavailable: Vec<i64> = sqlx::query_scalar(
            "SELECT agent_id FROM executions WHERE status IN ('scheduled', 'running') \
             UNION SELECT id FROM agents WHERE status = 'dead'",
        )
        .fetch_all(&mut *c)
        .await?;
        Ok((
            bids,
            capacity,
            in_use,
            prices,
            unavailable.into_iter().map(AgentId).collect(),
        ))
    }

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

    /// Records a cycle's outcome: new prices and utilisation, one history row per
    /// market, and a `price_update` event.
    pub async fn record_cycle(&self, rec: CycleRecord) -> StoreResult<()> {
        self.write_tx(move |c| {
            let rec = rec.clone();
            Box::pin(async move {
                let now = now_micros();
                for r in Resource::ALL {
                    let i = r.index();
                    sqlx::query(
                        "UPDATE markets SET price = $1, utilisation = $2, updated_cycle = $3 WHERE resource = $4",
                    )
                    .bind(rec.new_prices.0[i].0)
                    .bind(rec.utilisation[i])
                    .bind(rec.cycle.0)
                    .bind(r.as_str())
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "INSERT INTO market_history (cycle, resource, capacity, allocated, utilisation, price, recorded_at) \
                         SELECT $1, resource, capacity, $2, $3, $4, $5 FROM markets WHERE resource = $6",
                    )
                    .bind(rec.cycle.0)
                    .bind(db_qty(rec.allocated.0[i]))
                    .bind(rec.utilisation[i])
                    .bind(rec.new_prices.0[i].0)
                    .bind(now)
                    .bind(r.as_str())
                    .execute(&mut *c)
                    .await?;
                }
                let prices: serde_json::Map<String, serde_json::Value> = Resource::ALL
                    .iter()
                    .map(|r| (r.as_str().to_string(), json!(Credits::from_micros(rec.new_prices.get(*r).0))))
                    .collect();
                events::append(
                    c,
                    NewEvent::new(EventType::PriceUpdate, "market", None, json!({"prices": prices, "utilisation": rec.utilisation}))
                        .in_cycle(rec.cycle),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Market history rows of cycles after `after_cycle`, oldest first, at most `limit`.
    pub async fn market_history(
        &self,
        after_cycle: i64,
        limit: i64,
    ) -> StoreResult<Vec<HistoryRow>> {
        let rows = sqlx::query(
            "SELECT cycle, resource, capacity, allocated, utilisation, price, recorded_at \
             FROM market_history WHERE cycle > $1 ORDER BY cycle, resource LIMIT $2",
        )
        .bind(after_cycle)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    cycle: r.try_get("cycle")?,
                    resource: r.try_get("resource")?,
                    capacity: r.try_get("capacity")?,
                    allocated: r.try_get("allocated")?,
                    utilisation: r.try_get("utilisation")?,
                    price: r.try_get("price")?,
                    recorded_at: r.try_get("recorded_at")?,
                })
            })
            .collect()
    }

    pub async fn execution(&self, id: ExecutionId) -> StoreResult<ExecutionRecord> {
        let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        execution_from(&row.ok_or(Rejection::UnknownExecution(id))?)
    }

    /// Records how an execution ended, releases its memory, and applies law 2: if
    /// no pending bid would wake the agent again, it dies (`no_bid`). Returns the
    /// death, if any. Finishing an execution twice changes nothing the second time.
    pub async fn finish_execution(
        &self,
        id: ExecutionId,
        status: ExecutionStatus,
        exit_code: Option<i64>,
        reason: Option<String>,
    ) -> StoreResult<Option<DeathReason>> {
        self.write_tx(move |c| {
            let reason = reason.clone();
            Box::pin(async move {
                let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1");
                let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *c).await?;
                let exec = execution_from(&row.ok_or(Rejection::UnknownExecution(id))?)?;
                if !exec.status.is_active() || !status.is_terminal() {
                    return Ok(None);
                }
                let now = now_micros();
                sqlx::query(
                    "UPDATE executions SET status = $1, exit_code = $2, termination_reason = $3, ended_at = $4 \
                     WHERE id = $5",
                )
                .bind(status.as_str())
                .bind(exit_code)
                .bind(reason.as_deref())
                .bind(now)
                .bind(id.0)
                .execute(&mut *c)
                .await?;
                sqlx::query("UPDATE markets SET in_use = in_use - $1 WHERE resource = 'memory_mb' AND in_use >= $1")
                    .bind(db_qty(exec.bundle.get(Resource::MemoryMb)))
                    .execute(&mut *c)
                    .await?;
                sqlx::query(
                    "UPDATE agents SET execution_count = execution_count + 1, last_execution_at = $1 WHERE id = $2",
                )
                .bind(now)
                .bind(exec.agent.0)
                .execute(&mut *c)
                .await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::ExecutionFinished,
                        "orchestrator",
                        Some(exec.agent),
                        json!({"execution_id": id.0, "status": status, "exit_code": exit_code}),
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
                match lifecycle::death_after_execution(pending > 0) {
                    Some(death) => {
                        kill(c, exec.agent, death, None).await?;
                        Ok(Some(death))
                    }
                    None => Ok(None),
                }
            })
        })
        .await
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
}
