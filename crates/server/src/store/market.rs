//! The MarketManager over the database (SPEC §5): the four markets, prices, the
//! cycle counter, what one clearing needs to know, and the history each cycle
//! leaves for charts and analysis.

use super::bids::{bid_from, BID_COLUMNS};
use super::error::{StoreError, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::rows::db_qty;
use super::{now_micros, Store};
use agora_core::clearing::PendingBid;
use agora_core::{AgentId, Credits, Cycle, Price, Prices, Resource, ResourceVec};
use serde_json::json;
use sqlx::{AnyConnection, Row};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

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

/// A `market_history` row read back.
pub(super) fn history_row_from(r: &sqlx::any::AnyRow) -> StoreResult<HistoryRow> {
    Ok(HistoryRow {
        cycle: r.try_get("cycle")?,
        resource: r.try_get("resource")?,
        capacity: r.try_get("capacity")?,
        allocated: r.try_get("allocated")?,
        utilisation: r.try_get("utilisation")?,
        price: r.try_get("price")?,
        recorded_at: r.try_get("recorded_at")?,
    })
}

/// What one clearing did to the markets, recorded after the cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleRecord {
    pub cycle: Cycle,
    pub allocated: ResourceVec,
    pub utilisation: [f64; 4],
    pub new_prices: Prices,
}

pub(super) async fn read_prices(c: &mut AnyConnection) -> StoreResult<Prices> {
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

pub(super) async fn read_cycle(c: &mut AnyConnection) -> StoreResult<Cycle> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT value FROM system_state WHERE key = 'cycle'")
            .fetch_optional(&mut *c)
            .await?;
    Ok(Cycle(v.and_then(|v| v.parse().ok()).unwrap_or(0)))
}

/// The prices and the cycle number as last read, so that the hottest read of the
/// System Service (`GET /market/prices`, polled by every agent) costs no database
/// round trip. Only [`Store::setup_markets`], [`Store::begin_cycle`] and
/// [`Store::record_cycle`] change them, and each forgets the cached pair after its
/// transaction; a write counter stops a read that raced with a write from caching
/// what it saw before the commit (as the token cache does with revocations).
///
/// **Invariant:** prices and the cycle are written only through this `Store` (one
/// process owns the world); a write behind its back is not seen until restart.
#[derive(Debug, Default)]
pub(crate) struct MarketCache {
    current: RwLock<Option<(Prices, Cycle)>>,
    writes: AtomicU64,
}

impl MarketCache {
    fn get(&self) -> Option<(Prices, Cycle)> {
        *self.current.read().ok()?
    }

    /// Caches a pair read from the database unless a write ended since `epoch`.
    fn insert_if_current(&self, pair: (Prices, Cycle), epoch: u64) {
        if let Ok(mut current) = self.current.write() {
            if self.writes.load(Ordering::SeqCst) == epoch {
                *current = Some(pair);
            }
        }
    }

    /// Forgets the cached pair.
    fn invalidate(&self) {
        if let Ok(mut current) = self.current.write() {
            self.writes.fetch_add(1, Ordering::SeqCst);
            *current = None;
        }
    }
}

/// Invalidates the market cache when dropped: held by each writer of prices or the
/// cycle across its transaction, so the cache is forgotten after the transaction
/// ends, whether it committed, failed or was cancelled.
struct InvalidateOnDrop<'a>(&'a MarketCache);

impl Drop for InvalidateOnDrop<'_> {
    fn drop(&mut self) {
        self.0.invalidate();
    }
}

impl Store {
    /// Held across a write of prices or the cycle; see [`InvalidateOnDrop`].
    fn market_write_guard(&self) -> InvalidateOnDrop<'_> {
        InvalidateOnDrop(&self.market)
    }

    /// The current prices and cycle, from the cache or one read connection.
    async fn prices_and_cycle(&self) -> StoreResult<(Prices, Cycle)> {
        if let Some(pair) = self.market.get() {
            return Ok(pair);
        }
        let epoch = self.market.writes.load(Ordering::SeqCst);
        let mut c = self.reader().acquire().await?;
        let pair = (read_prices(&mut c).await?, read_cycle(&mut c).await?);
        self.market.insert_if_current(pair, epoch);
        Ok(pair)
    }

    /// Creates the four markets on first start and applies configured supply and
    /// price bounds on every start (a current price outside new bounds is clamped).
    pub async fn setup_markets(&self, setups: Vec<MarketSetup>) -> StoreResult<()> {
        let _invalidate = self.market_write_guard();
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
        Ok(self.prices_and_cycle().await?.0)
    }

    /// The last cycle that began (0 before the first).
    pub async fn current_cycle(&self) -> StoreResult<Cycle> {
        Ok(self.prices_and_cycle().await?.1)
    }

    /// Starts the next cycle and returns its number.
    pub async fn begin_cycle(&self) -> StoreResult<Cycle> {
        let _invalidate = self.market_write_guard();
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

    /// Records a cycle's outcome: new prices and utilisation, one history row per
    /// market, the world's totals (`world_history`), and a `price_update` event.
    pub async fn record_cycle(&self, rec: CycleRecord) -> StoreResult<()> {
        let _invalidate = self.market_write_guard();
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
                super::history::record_world(c, rec.cycle, now).await?;
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
        rows.iter().map(history_row_from).collect()
    }
}
