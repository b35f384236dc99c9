//! The world over time (SPEC §12): one `world_history` row per cycle with the
//! population and the credits in agents' hands, held, minted and burned, and the
//! recent window of the markets' history, both read for the console's charts.

use super::error::StoreResult;
use super::market::HistoryRow;
use super::Store;
use agora_core::Cycle;
use sqlx::{AnyConnection, Row};

/// The world's totals after one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WorldPoint {
    pub cycle: i64,
    pub agents_alive: i64,
    pub agents_dead: i64,
    /// Σ agent balances, µcr.
    pub agent_balances: i64,
    /// Σ agent holds, µcr.
    pub agent_held: i64,
    /// Everything ever minted, µcr.
    pub minted: i64,
    /// Everything burned and not refunded, µcr.
    pub burned: i64,
    pub recorded_at: i64,
}

/// Writes the world's totals for `cycle` inside the caller's transaction (the one
/// recording the cycle's prices).
pub(super) async fn record_world(c: &mut AnyConnection, cycle: Cycle, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO world_history \
         (cycle, agents_alive, agents_dead, agent_balances, agent_held, minted, burned, recorded_at) \
         SELECT $1, \
           (SELECT COUNT(*) FROM agents WHERE status = 'alive'), \
           (SELECT COUNT(*) FROM agents WHERE status <> 'alive'), \
           (SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts WHERE kind = 'agent'), \
           (SELECT CAST(COALESCE(SUM(held), 0) AS BIGINT) FROM accounts WHERE kind = 'agent'), \
           (SELECT CAST(-COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts WHERE kind = 'mint'), \
           (SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts WHERE kind = 'burn'), \
           $2 \
         ON CONFLICT (cycle) DO NOTHING",
    )
    .bind(cycle.0)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

impl Store {
    /// The last `cycles` rows of the world's history, oldest first.
    pub async fn world_history(&self, cycles: i64) -> StoreResult<Vec<WorldPoint>> {
        let rows = sqlx::query(
            "SELECT cycle, agents_alive, agents_dead, agent_balances, agent_held, minted, burned, recorded_at \
             FROM world_history ORDER BY cycle DESC LIMIT $1",
        )
        .bind(cycles)
        .fetch_all(self.reader())
        .await?;
        let mut points = rows
            .iter()
            .map(|r| {
                Ok(WorldPoint {
                    cycle: r.try_get("cycle")?,
                    agents_alive: r.try_get("agents_alive")?,
                    agents_dead: r.try_get("agents_dead")?,
                    agent_balances: r.try_get("agent_balances")?,
                    agent_held: r.try_get("agent_held")?,
                    minted: r.try_get("minted")?,
                    burned: r.try_get("burned")?,
                    recorded_at: r.try_get("recorded_at")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        points.reverse();
        Ok(points)
    }

    /// The markets' history over the last `cycles` recorded cycles, oldest first
    /// (one row per market and cycle).
    pub async fn recent_market_history(&self, cycles: i64) -> StoreResult<Vec<HistoryRow>> {
        let from: Option<i64> = sqlx::query_scalar("SELECT MAX(cycle) FROM market_history")
            .fetch_one(self.reader())
            .await?;
        let after = from.unwrap_or(0).saturating_sub(cycles);
        self.market_history(after, cycles.saturating_mul(4)).await
    }
}
