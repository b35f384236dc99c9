//! The world over time (SPEC §12): one `world_history` row per cycle with the
//! population and the credits in agents' hands, held, minted and burned, and the
//! recent window of the markets' history, both read for the console's charts.

use super::error::StoreResult;
use super::market::{history_row_from, HistoryRow};
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

/// The first cycle of a window of `cycles` ending at `last`, and the step that
/// leaves at most `points` cycles of it.
fn window(last: i64, cycles: i64, points: i64) -> (i64, i64) {
    let cycles = cycles.max(1);
    let step = (cycles + points.max(1) - 1) / points.max(1);
    (last.saturating_sub(cycles).max(0), step.max(1))
}

/// The history tables [`Store::sample`] reads.
const WORLD: &str = "SELECT MAX(cycle) FROM world_history";
const MARKET: &str = "SELECT MAX(cycle) FROM market_history";

impl Store {
    /// Where a sampled read of a history starts, its step and its last cycle, from
    /// the table's newest cycle (`newest`, one of [`WORLD`] and [`MARKET`]); `None`
    /// when the table is empty.
    async fn sample(
        &self,
        newest: &'static str,
        cycles: i64,
        points: i64,
    ) -> StoreResult<Option<(i64, i64, i64)>> {
        let last: Option<i64> = sqlx::query_scalar(newest).fetch_one(self.reader()).await?;
        Ok(last.map(|last| {
            let (after, step) = window(last, cycles, points);
            (after, step, last)
        }))
    }

    /// The world's history over the last `cycles` recorded cycles, oldest first,
    /// at most about `points` rows: every k-th cycle and always the last, chosen
    /// in the query so a long history costs no more to read than a short one.
    pub async fn world_history(&self, cycles: i64, points: i64) -> StoreResult<Vec<WorldPoint>> {
        let Some((after, step, last)) = self.sample(WORLD, cycles, points).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT cycle, agents_alive, agents_dead, agent_balances, agent_held, minted, burned, recorded_at \
             FROM world_history WHERE cycle > $1 AND (cycle % $2 = 0 OR cycle = $3) ORDER BY cycle",
        )
        .bind(after)
        .bind(step)
        .bind(last)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
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
            .collect()
    }

    /// The markets' history over the last `cycles` recorded cycles, oldest first,
    /// sampled like [`Store::world_history`] to about `points` cycles (one row per
    /// market and cycle).
    pub async fn recent_market_history(
        &self,
        cycles: i64,
        points: i64,
    ) -> StoreResult<Vec<HistoryRow>> {
        let Some((after, step, last)) = self.sample(MARKET, cycles, points).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT cycle, resource, capacity, allocated, utilisation, price, recorded_at \
             FROM market_history WHERE cycle > $1 AND (cycle % $2 = 0 OR cycle = $3) \
             ORDER BY cycle, resource",
        )
        .bind(after)
        .bind(step)
        .bind(last)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(history_row_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn the_window_keeps_at_most_the_points_asked_for() {
        assert_eq!(window(5_000, 2_000, 400), (3_000, 5));
        assert_eq!(window(10, 2_000, 400), (0, 5));
        assert_eq!(window(5_000, 300, 400), (4_700, 1));
        assert_eq!(window(5_000, 0, 0), (4_999, 1));
    }
}
