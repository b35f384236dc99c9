//! Whole-world figures for `/metrics` and summaries (SPEC §13): population,
//! credits in agents' hands, held, minted and burned, executions by outcome.

use super::error::StoreResult;
use super::Store;
use sqlx::Row;

/// A snapshot of the world's totals.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WorldStats {
    pub agents_alive: i64,
    pub agents_dead: i64,
    /// Σ agent balances, µcr.
    pub agent_balances: i64,
    /// Σ agent holds, µcr.
    pub agent_held: i64,
    /// Everything ever minted, µcr (minus the `mint` balance).
    pub minted: i64,
    /// Everything burned and not refunded, µcr.
    pub burned: i64,
    /// (status, count) for every execution status present.
    pub executions: Vec<(String, i64)>,
    pub pending_bids: i64,
    pub pending_prompts: i64,
}

impl Store {
    /// Reads the world's totals.
    pub async fn stats(&self) -> StoreResult<WorldStats> {
        let mut c = self.reader().acquire().await?;
        let mut s = WorldStats::default();
        for r in sqlx::query("SELECT status, COUNT(*) AS n FROM agents GROUP BY status")
            .fetch_all(&mut *c)
            .await?
        {
            let status: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            if status == "alive" {
                s.agents_alive = n;
            } else {
                s.agents_dead = n;
            }
        }
        for r in sqlx::query("SELECT kind, CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS b, CAST(COALESCE(SUM(held), 0) AS BIGINT) AS h FROM accounts GROUP BY kind")
            .fetch_all(&mut *c)
            .await?
        {
            let kind: String = r.try_get("kind")?;
            let b: i64 = r.try_get("b")?;
            let h: i64 = r.try_get("h")?;
            match kind.as_str() {
                "agent" => {
                    s.agent_balances = b;
                    s.agent_held = h;
                }
                "mint" => s.minted = -b,
                _ => s.burned = b,
            }
        }
        s.executions = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM executions GROUP BY status ORDER BY status",
        )
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
        .collect::<StoreResult<_>>()?;
        s.pending_bids = sqlx::query_scalar("SELECT COUNT(*) FROM bids WHERE status = 'pending'")
            .fetch_one(&mut *c)
            .await?;
        s.pending_prompts = sqlx::query_scalar(
            "SELECT COUNT(*) FROM prompts WHERE status IN ('pending', 'active')",
        )
        .fetch_one(&mut *c)
        .await?;
        Ok(s)
    }
}
