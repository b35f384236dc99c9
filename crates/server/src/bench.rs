//! Benchmarks shipped with the binary (`agora bench …`). Each returns its figures;
//! the command prints them, the headline figure on the last line.

use crate::store::{NewAgent, Store, StoreError, TransferRequest};
use agora_core::clearing::{clear, ClearingInput, PendingBid};
use agora_core::{
    AgentId, BidId, Bundle, BundleLimits, BundleSpec, Credits, Price, Prices, ResourceVec,
};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so every run clears the same book.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The default prices of SPEC §5, in µcr per displayed unit.
pub fn default_prices() -> Prices {
    Prices([
        Price(1_000_000),
        Price(100_000),
        Price(1_000),
        Price(10_000_000),
    ])
}

/// A random book of `n` pending bids over four resources, from `agents` agents.
pub fn random_book(n: usize, agents: u64, seed: u64) -> Vec<PendingBid> {
    let mut rng = Rng(seed.max(1));
    let prices = default_prices();
    let limits = BundleLimits::default();
    (0..n)
        .map(|i| {
            let spec = BundleSpec {
                cpu_seconds: 0.1 + rng.below(50) as f64 / 10.0,
                memory_mb: 16.0 + rng.below(1024) as f64,
                tokens: rng.below(4000) as f64,
                attention_share: if rng.below(10) == 0 { 0.1 } else { 0.0 },
                wall_seconds: None,
            };
            let bundle = Bundle::parse(&spec, &limits)
                .unwrap_or_else(|_| Bundle::from_base(ResourceVec([1000, 64, 0, 0]), None));
            let reserve = prices.reserve(&bundle).micros();
            // Most bids above reserve, a tenth below it.
            let amount = if rng.below(10) == 0 {
                reserve / 2
            } else {
                reserve + rng.below(5_000_000) as i64
            };
            PendingBid {
                id: BidId(i as i64 + 1),
                beneficiary: AgentId(1 + rng.below(agents) as i64),
                amount: Credits::from_micros(amount.max(1)),
                bundle,
                placed_at: rng.below(1_000_000_000) as i64,
            }
        })
        .collect()
}

/// Result of the clearing benchmark.
#[derive(Debug, Clone)]
pub struct ClearingFigures {
    pub bids: usize,
    pub runs: usize,
    pub winners: usize,
    pub median: Duration,
    pub p90: Duration,
}

/// Clears a random book of `bids` bids `runs` times and reports the median.
pub fn clearing(bids: usize, runs: usize) -> ClearingFigures {
    let book = random_book(bids, (bids as u64 / 2).max(1), 42);
    let unavailable: HashSet<AgentId> = (1..=bids as i64 / 100).map(|i| AgentId(i * 7)).collect();
    // A busy cycle: 2 cores × 5 s of CPU, an 8 GB memory pool, 200k tokens.
    let capacity = ResourceVec([10_000, 8_192, 200_000, 1_000_000]);
    let input = ClearingInput {
        bids: &book,
        capacity,
        in_use: ResourceVec([0, 1_024, 0, 0]),
        prices: default_prices(),
        unavailable: &unavailable,
    };
    let mut times = Vec::with_capacity(runs);
    let mut winners = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out = clear(&input);
        times.push(t.elapsed());
        winners = out.winners.len();
        std::hint::black_box(out);
    }
    times.sort();
    ClearingFigures {
        bids,
        runs: times.len(),
        winners,
        median: times[times.len() / 2],
        p90: times[(times.len() * 9 / 10).min(times.len() - 1)],
    }
}

/// Result of the ledger benchmark.
#[derive(Debug, Clone)]
pub struct LedgerFigures {
    pub transfers: usize,
    pub concurrency: usize,
    pub elapsed: Duration,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs `transfers` durable agent-to-agent transfers through the store from
/// `concurrency` tasks, between `agents` funded agents, and audits the result.
pub async fn ledger(
    store: &Store,
    workspaces: &Path,
    transfers: usize,
    concurrency: usize,
) -> Result<LedgerFigures, StoreError> {
    let agents = 16;
    let mut ids = Vec::new();
    for _ in 0..agents {
        let id = store
            .create_agent(NewAgent {
                parent: None,
                workspaces_root: workspaces.to_path_buf(),
            })
            .await?;
        store
            .grant(id, Credits::from_micros(1_000_000_000_000), "bench")
            .await?;
        ids.push(id);
    }
    let ids = Arc::new(ids);
    let per_task = transfers / concurrency.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency.max(1) {
        let store = store.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let from = ids[(t + i) % ids.len()];
                let to = ids[(t + i + 1 + i % 3) % ids.len()];
                let req = TransferRequest {
                    from,
                    to,
                    amount: Credits::from_micros(1_000 + i as i64),
                    memo: String::new(),
                    idempotency_key: None,
                };
                let s = Instant::now();
                store.transfer(req).await?;
                lat.push(s.elapsed());
            }
            Ok::<_, StoreError>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => lat.extend(r?),
            Err(e) => return Err(StoreError::Corrupt(format!("benchmark task failed: {e}"))),
        }
    }
    let elapsed = start.elapsed();
    lat.sort();
    let done = lat.len();
    let report = store.audit().await?;
    if !report.is_clean() {
        return Err(StoreError::Corrupt(format!(
            "audit failed after the benchmark: {:?}",
            report.violations
        )));
    }
    Ok(LedgerFigures {
        transfers: done,
        concurrency,
        elapsed,
        per_second: done as f64 / elapsed.as_secs_f64(),
        p50: lat.get(done / 2).copied().unwrap_or_default(),
        p99: lat.get(done * 99 / 100).copied().unwrap_or_default(),
    })
}
