//! `agora bench cycle`: one full allocation cycle of the Orchestrator (SPEC §8)
//! over a populated market, on the process sandbox backend.
//!
//! A fresh world gets `agents` agents whose workspace is a `main.py` that does
//! nothing, each with several pending bids for a small bundle. Then the real
//! Orchestrator runs cycles one at a time: [`Orchestrator::cycle`] expires, clears,
//! allocates each winner in its own transaction, records prices and culls, while the
//! winners are launched by tasks of their own. The figure is the cycle's own
//! duration (`CycleSummary::took`); the agents' run time is not in it.
//!
//! Between two cycles the benchmark waits until every execution has ended and tops
//! every agent's bids back up, as a living agent would re-bid while it runs. That
//! keeps the book at the same size for every timed cycle and means each cycle starts
//! with the whole memory pool free, as in the real loop with its default 5 s
//! interval, when executions this short have long ended before the next tick.

use crate::api::{self, ApiState};
use crate::api_bench::fresh_world;
use crate::orchestrator::{template, Orchestrator, OrchestratorOptions};
use crate::store::{NewBid, RootAgent, Store};
use agora_core::{AgentId, Bundle, BundleSpec, Credits};
use agora_sandbox::{ProcessOptions, ProcessSandbox};
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct CycleBenchOptions {
    /// The data directory of the fresh world (SQLite file, workspaces, sockets, logs).
    pub data_dir: PathBuf,
    /// Another database than the SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Agents in the market.
    pub agents: usize,
    /// Pending bids each agent keeps (at most `economy.max_pending_bids`).
    pub bids_per_agent: usize,
    /// Untimed cycles first.
    pub warmups: usize,
    /// Timed cycles.
    pub runs: usize,
}

/// One cycle as the benchmark saw it.
#[derive(Debug, Clone)]
pub struct CycleRun {
    /// The cycle's number in the world.
    pub cycle: i64,
    /// Whether it was a warm-up (not counted in the figures).
    pub warmup: bool,
    /// The cycle's own duration.
    pub took: Duration,
    /// Pending bids the clearing read.
    pub pending_bids: usize,
    /// Executions allocated (and handed to launch tasks).
    pub allocated: usize,
    pub expired_bids: u64,
    pub culled: usize,
    /// From the cycle's end until its executions had all ended.
    pub drain: Duration,
    /// The CPU price after the cycle, µcr per CPU second.
    pub cpu_price: i64,
}

/// The figures of the whole benchmark.
#[derive(Debug, Clone)]
pub struct CycleFigures {
    pub backend: &'static str,
    pub bwrap: bool,
    pub agents: usize,
    pub bids_per_agent: usize,
    /// Every cycle, warm-ups included, in order.
    pub runs: Vec<CycleRun>,
    pub median: Duration,
    pub p90: Duration,
    pub max: Duration,
    /// Allocations per timed cycle: (min, median, max).
    pub allocated: (usize, usize, usize),
    pub agents_alive: i64,
    /// Executions by final status, over the whole run.
    pub executions: Vec<(String, i64)>,
}

/// Every benchmark agent's whole program.
const TRIVIAL_AGENT: &str = "pass\n";

/// What each bid offers. Winning CPU time pushes the CPU price up 10% per cycle, so
/// the amount is far above the first reserve (1.7 credits) to stay above it for
/// about seventy cycles; a bid that fell below it would silently stop winning.
const BID_AMOUNT: Credits = Credits::from_micros(100_000_000);

/// How long the executions of one cycle may take to end before the benchmark gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// The bundle every bid asks for: a tenth of a CPU second and 16 MB. A tenth of a
/// second is well above what `python3 main.py` uses to start and exit, so no
/// execution is killed for its CPU budget; with the benchmark world's 10 CPU
/// seconds per cycle, 100 bids win a cycle when enough agents bid (the 4,096 MB
/// memory pool would allow 256).
fn bench_bundle(config: &crate::config::Config) -> anyhow::Result<Bundle> {
    let spec = BundleSpec {
        cpu_seconds: 0.1,
        memory_mb: 16.0,
        tokens: 0.0,
        attention_share: 0.0,
        wall_seconds: None,
    };
    Ok(Bundle::parse(&spec, &config.bundle_limits())?)
}

/// Writes the trivial program into a workspace.
fn install_trivial(workspace: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(workspace)
        .with_context(|| format!("cannot create {}", workspace.display()))?;
    std::fs::write(workspace.join("main.py"), TRIVIAL_AGENT)
        .with_context(|| format!("cannot write main.py in {}", workspace.display()))
}

/// Waits until no execution is scheduled or running.
async fn drain(store: &Store) -> anyhow::Result<Duration> {
    let began = Instant::now();
    while !store.active_executions().await?.is_empty() {
        if began.elapsed() > DRAIN_LIMIT {
            bail!("executions still running {DRAIN_LIMIT:?} after their cycle");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(began.elapsed())
}

/// Places bids until each agent has `per_agent` pending again.
async fn top_up(
    store: &Store,
    config: &crate::config::Config,
    agents: &[AgentId],
    per_agent: usize,
    bundle: Bundle,
    ttl_cycles: i64,
) -> anyhow::Result<()> {
    let limit = i64::try_from(agents.len().saturating_mul(per_agent) + 1024)?;
    let mut pending: HashMap<AgentId, usize> = HashMap::new();
    for b in store.bid_book(limit).await? {
        *pending.entry(b.payer).or_default() += 1;
    }
    for &id in agents {
        let have = pending.get(&id).copied().unwrap_or(0);
        for _ in have..per_agent {
            store
                .place_bid(NewBid {
                    payer: id,
                    beneficiary: id,
                    bundle,
                    amount: BID_AMOUNT,
                    ttl_cycles,
                    max_pending: config.economy.max_pending_bids,
                })
                .await
                .with_context(|| format!("cannot top up the bids of agent {id}"))?;
        }
    }
    Ok(())
}

/// Runs the benchmark.
pub async fn run(opts: CycleBenchOptions) -> anyhow::Result<CycleFigures> {
    let runs = opts.runs.max(1);
    let cycles = opts.warmups + runs;
    let per_agent = opts.bids_per_agent.max(1);
    // Agents run under uids of their own and must reach their workspace and socket
    // through the data directory; a temporary directory is private to its owner.
    std::fs::create_dir_all(&opts.data_dir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&opts.data_dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let w = fresh_world(&opts.data_dir, opts.database_url.clone()).await?;
    let (store, config) = (w.store.clone(), w.config.clone());
    if i64::try_from(per_agent)? > config.economy.max_pending_bids {
        bail!(
            "--bids-per-agent {per_agent} is above economy.max_pending_bids ({})",
            config.economy.max_pending_bids
        );
    }
    let bundle = bench_bundle(&config)?;
    // Bids outlive the benchmark: with the default time to live every bid placed at
    // the start would expire in the same cycle and the book would empty at once.
    let ttl_cycles = i64::try_from(cycles + 10)?;
    // Enough for every bid held and every win paid.
    let credits = Credits::from_micros(
        BID_AMOUNT
            .micros()
            .saturating_mul(i64::try_from(per_agent + cycles + 1)?),
    );
    // The genesis agent the world bootstraps runs the same trivial program, so that
    // no execution in the benchmark does real work.
    install_trivial(&PathBuf::from(
        store.agent(w.genesis.genesis).await?.workspace,
    ))?;
    let mut agents = Vec::with_capacity(opts.agents);
    for _ in 0..opts.agents {
        let (id, _, _) = store
            .create_root_agent(
                RootAgent {
                    workspaces_root: crate::world::workspaces_root(&config),
                    initial_credits: credits,
                    first_bid: Some((bundle, BID_AMOUNT)),
                    bid_ttl_cycles: ttl_cycles,
                    max_pending_bids: config.economy.max_pending_bids,
                },
                None,
            )
            .await?;
        install_trivial(&PathBuf::from(store.agent(id).await?.workspace))?;
        agents.push(id);
    }
    top_up(&store, &config, &agents, per_agent, bundle, ttl_cycles).await?;

    let process = ProcessSandbox::new(ProcessOptions::default())?;
    let bwrap = process.uses_bwrap();
    let shared_dir = template::write_shared(&opts.data_dir, "{}")?;
    let (router, _) = api::router(ApiState::new(store.clone(), config.clone()));
    let orchestrator = Orchestrator::new(
        store.clone(),
        config.clone(),
        Arc::new(process),
        router,
        shared_dir,
        OrchestratorOptions::default(),
    )?;

    let mut log = Vec::with_capacity(cycles);
    let outcome = async {
        for i in 0..cycles {
            let s = orchestrator.cycle().await?;
            let drained = drain(&store).await?;
            log.push(CycleRun {
                cycle: s.cycle.0,
                warmup: i < opts.warmups,
                took: s.took,
                pending_bids: s.pending_bids,
                allocated: s.allocated,
                expired_bids: s.expired_bids,
                culled: s.culled,
                drain: drained,
                cpu_price: s.prices[agora_core::Resource::CpuSeconds.index()],
            });
            top_up(&store, &config, &agents, per_agent, bundle, ttl_cycles).await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    // Whatever happened above, no execution may outlive the benchmark.
    orchestrator.shutdown().await;
    outcome?;
    let left = store.active_executions().await?.len();
    if left > 0 {
        bail!("{left} executions still active after shutdown");
    }
    let report = store.audit().await?;
    if !report.is_clean() {
        bail!("audit failed after the benchmark: {:?}", report.violations);
    }
    let stats = store.stats().await?;
    let backend = store.backend().as_str();
    store.close().await;

    let timed: Vec<&CycleRun> = log.iter().filter(|r| !r.warmup).collect();
    let mut took: Vec<Duration> = timed.iter().map(|r| r.took).collect();
    took.sort_unstable();
    let mut allocated: Vec<usize> = timed.iter().map(|r| r.allocated).collect();
    allocated.sort_unstable();
    let n = took.len();
    Ok(CycleFigures {
        backend,
        bwrap,
        agents: agents.len(),
        bids_per_agent: per_agent,
        median: took[n / 2],
        p90: took[(n * 9 / 10).min(n - 1)],
        max: took[n - 1],
        allocated: (allocated[0], allocated[n / 2], allocated[n - 1]),
        agents_alive: stats.agents_alive,
        executions: stats.executions,
        runs: log,
    })
}
