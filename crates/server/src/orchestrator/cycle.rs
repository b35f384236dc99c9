//! One allocation cycle (SPEC §8 steps 1–5): expire, clear, allocate each winner in
//! its own transaction, hand winners to their launch tasks, move prices and write
//! the history row, cull. It never waits for an execution or for the human.

use super::Inner;
use crate::store::{CycleRecord, StoreResult};
use agora_core::clearing::{clear, ClearingInput};
use agora_core::pricing::next_prices;
use agora_core::{Credits, Cycle, Resource};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::field::Empty;
use tracing::{Instrument, Span};

/// What one cycle did; its `Display` is the cycle's line in system.log.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleSummary {
    pub cycle: Cycle,
    pub expired_bids: u64,
    pub expired_prompts: usize,
    pub pending_bids: usize,
    /// Executions created (and handed to the sandbox).
    pub allocated: usize,
    pub culled: usize,
    pub utilisation: [f64; 4],
    /// New prices in µcr per unit.
    pub prices: [i64; 4],
    /// The loop's own time for this cycle (executions run beside it).
    pub took: Duration,
}

impl fmt::Display for CycleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cycle {}: {} pending, {} allocated, {} bids and {} prompts expired, {} culled; ",
            self.cycle,
            self.pending_bids,
            self.allocated,
            self.expired_bids,
            self.expired_prompts,
            self.culled
        )?;
        for r in Resource::ALL {
            let i = r.index();
            write!(
                f,
                "{} {:.0}% @ {} ",
                r.as_str(),
                self.utilisation[i] * 100.0,
                Credits::from_micros(self.prices[i])
            )?;
        }
        write!(f, "({:.1} ms)", self.took.as_secs_f64() * 1000.0)
    }
}

/// Runs one cycle. Winners are launched by tasks of their own; this returns once
/// they are allocated.
pub(super) async fn run_cycle(inner: &Arc<Inner>) -> StoreResult<CycleSummary> {
    // The cycle's number is known once it began; lines before that have none.
    let span = tracing::info_span!("cycle", component = "orchestrator", cycle = Empty);
    cycle(inner, &span).instrument(span.clone()).await
}

async fn cycle(inner: &Arc<Inner>, span: &Span) -> StoreResult<CycleSummary> {
    let began = Instant::now();
    let store = &inner.store;
    let cycle = store.begin_cycle().await?;
    span.record("cycle", cycle.0);
    // 1. Expiry.
    let expired_bids = store.expire_bids(cycle).await?;
    let ttl = i64::try_from(inner.config.attention.prompt_ttl_seconds)
        .unwrap_or(i64::MAX / 2_000_000)
        .saturating_mul(1_000_000);
    let expired_prompts = store
        .expire_prompts(crate::store::now_micros(), ttl)
        .await?
        .len();
    if expired_prompts > 0 {
        tracing::info!(
            component = "attention",
            expired = expired_prompts,
            "prompts expired unrated; their bids released"
        );
    }
    // 2. Clearing, and one transaction per winner.
    let (bids, capacity, in_use, prices, unavailable) = store.clearing_input().await?;
    let clearing = clear(&ClearingInput {
        bids: &bids,
        capacity,
        in_use,
        prices,
        unavailable: &unavailable,
    });
    tracing::debug!(
        component = "scheduler",
        pending = bids.len(),
        winners = clearing.winners.len(),
        "cleared"
    );
    let mut winners = Vec::with_capacity(clearing.winners.len());
    for bid in &clearing.winners {
        // A bid withdrawn since the clearing read it is simply not allocated.
        if let Some(exec) = store.allocate(*bid, cycle).await? {
            winners.push(exec);
        }
    }
    let allocated = winners.len();
    // 4. Prices and the history row.
    let new_prices = next_prices(
        &prices,
        &clearing.utilisation,
        &inner.config.price_policy(),
        &inner.config.price_bounds(),
    );
    store
        .record_cycle(CycleRecord {
            cycle,
            allocated: clearing.allocated,
            utilisation: clearing.utilisation,
            new_prices,
        })
        .await?;
    tracing::debug!(component = "market", prices = ?new_prices.0.map(|p| p.0), utilisation = ?clearing.utilisation, "prices moved");
    // 5. Cull.
    let culled = store.cull(cycle).await?.len();
    if culled > 0 {
        tracing::info!(
            component = "economy",
            culled,
            "agents culled: alive with no bid and nothing to run"
        );
    }
    // 3. Launch, concurrently and bounded, without waiting. Handed over last so that
    // the launches' own writes (tokens, start records) do not queue behind, or in
    // front of, this cycle's transactions on a single-writer database; a winner is
    // already paid for and safe, should the process die in between.
    for exec in winners {
        inner.spawn_execution(exec);
    }
    Ok(CycleSummary {
        cycle,
        expired_bids,
        expired_prompts,
        pending_bids: bids.len(),
        allocated,
        culled,
        utilisation: clearing.utilisation,
        prices: new_prices.0.map(|p| p.0),
        took: began.elapsed(),
    })
}
