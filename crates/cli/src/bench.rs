//! `agora bench …`: the benchmarks of SPEC §14, each printing its headline figure
//! on the last line.

use crate::Cli;
use agora_server::api_bench::{self, ApiBenchOptions, PhaseFigures};
use agora_server::bench;
use agora_server::console_bench::{self, ConsoleBenchOptions};
use agora_server::cycle_bench::{self, CycleBenchOptions};
use agora_server::llm_bench::{self, LlmBenchOptions};
use agora_server::store::Store;
use clap::Subcommand;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Sandbox start-up: our docker launch-to-exit time over a bare `docker run --rm`
    /// of the same image (`sandbox_docker_overhead_ratio`), and the process
    /// backend's launch to first output line (`sandbox_process_start_ms`, last line).
    /// Skips the docker half when no Docker Engine answers.
    Sandbox {
        /// Timed runs of each (after one warm-up).
        #[arg(long, default_value_t = 15)]
        runs: usize,
    },
    /// Clear a random book of pending bids over four resources; prints
    /// `clearing_<n>k_ms=<median ms per clearing>`.
    Clearing {
        /// Pending bids in the book.
        #[arg(long, default_value_t = 100_000)]
        bids: usize,
        /// Clearings to time.
        #[arg(long, default_value_t = 30)]
        runs: usize,
    },
    /// Durable agent-to-agent transfers through the store (a fresh SQLite file in
    /// a temporary directory unless --database-url names another database); prints
    /// `ledger_transfers_per_s=<n>`.
    Ledger {
        #[arg(long, default_value_t = 20_000)]
        transfers: usize,
        /// Concurrent tasks issuing transfers.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Database to benchmark (it gets 16 new agents); default a temporary SQLite file.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// The System Service over loopback: a fresh world with one agent per
    /// connection, the real router in this process, and keep-alive HTTP/1.1
    /// connections sending requests back to back. Phase 1 `GET /market/prices`,
    /// phase 2 `POST /economic/transfer` of 0.000001 credits to another agent; each
    /// warms up before its timed window, only 2xx answers count, and the ledger
    /// audit must be clean afterwards. Prints `api_prices_rps=<n>` before the
    /// transfer figures and `api_transfer_rps=<n>` last.
    Api {
        /// Concurrent connections (and agents) of the prices phase.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Concurrent connections of the transfer phase. Transfers queue for the
        /// one SQLite writer, so more connections raise tail latency, not
        /// throughput (see docs/benchmarks.md).
        #[arg(long, default_value_t = 16)]
        transfer_connections: usize,
        /// Timed seconds per phase.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Untimed warm-up seconds before each phase.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Database of the world; default a temporary SQLite file.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// One full Orchestrator cycle (expire, clear, allocate, prices, cull) over a
    /// fresh world of agents running a trivial `main.py` on the process backend,
    /// each keeping several pending bids; winners launch on tasks of their own, so
    /// the agents' run time is not in the figure. Prints one line per cycle and
    /// `cycle_<agents>_agents_ms=<median ms per cycle>` last.
    Cycle {
        /// Agents in the market.
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        /// Pending bids each agent keeps (topped up between cycles).
        #[arg(long, default_value_t = 5)]
        bids_per_agent: usize,
        /// Cycles to time.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Untimed cycles first.
        #[arg(long, default_value_t = 3)]
        warmups: usize,
        /// Database of the world; default a temporary SQLite file.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// The LLM proxy's added latency: the same request to a local instant
    /// upstream directly and through the proxy of a fresh world (SQLite), one call
    /// at a time, whole answers and streams. Prints the direct and proxied
    /// percentiles, then `llm_proxy_overhead_p50_ms=<n> p99_ms=<m>` (whole
    /// answers) last.
    LlmProxy {
        /// Timed calls per mode and path.
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        /// Untimed calls per mode first.
        #[arg(long, default_value_t = 200)]
        warmup: usize,
    },
    /// The console's pages over a world grown through the store: agents in
    /// lineages, alive and dead, executions with logs, pending bids, prompts (some
    /// rated) and cycles of market and world history; the ledger audit must be
    /// clean. Then every page is requested over loopback with the operator's
    /// cookie; prints each page's p50 and p99, the slowest page, and
    /// `console_pages_p99_max_ms=<the largest p99>` last.
    Console {
        /// Agents in the world (besides the genesis agent).
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Cycles of history the world is grown over.
        #[arg(long, default_value_t = 3_000)]
        cycles: usize,
        /// Timed rounds over every page.
        #[arg(long, default_value_t = 100)]
        rounds: usize,
        /// Untimed rounds first.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Database of the world; default a temporary SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        /// Grow the world in this directory and keep it (for a look at it
        /// afterwards); default a temporary directory.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
}

pub async fn run(_cli: &Cli, cmd: &BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Clearing { bids, runs } => {
            let f = bench::clearing(*bids, *runs);
            println!("bids={} runs={} winners={}", f.bids, f.runs, f.winners);
            println!("clearing_p90_ms={:.3}", f.p90.as_secs_f64() * 1e3);
            let label = if f.bids.is_multiple_of(1000) {
                format!("{}k", f.bids / 1000)
            } else {
                f.bids.to_string()
            };
            println!("clearing_{label}_ms={:.3}", f.median.as_secs_f64() * 1e3);
        }
        BenchCommand::Ledger {
            transfers,
            concurrency,
            database_url,
        } => {
            let dir = tempfile::tempdir()?;
            let url = database_url.clone().unwrap_or_else(|| {
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                )
            });
            let store = Store::open(&url).await?;
            let f = bench::ledger(
                &store,
                &dir.path().join("workspaces"),
                *transfers,
                *concurrency,
            )
            .await?;
            store.close().await;
            println!(
                "backend={} transfers={} concurrency={} elapsed_s={:.3} audit=clean",
                store.backend().as_str(),
                f.transfers,
                f.concurrency,
                f.elapsed.as_secs_f64()
            );
            println!("ledger_transfer_p50_ms={:.3}", f.p50.as_secs_f64() * 1e3);
            println!("ledger_transfer_p99_ms={:.3}", f.p99.as_secs_f64() * 1e3);
            println!("ledger_transfers_per_s={:.0}", f.per_second);
        }
        BenchCommand::Sandbox { runs } => sandbox(*runs).await?,
        BenchCommand::Api {
            connections,
            transfer_connections,
            seconds,
            warmup,
            database_url,
        } => {
            api(
                (*connections, *transfer_connections),
                *seconds,
                *warmup,
                database_url.clone(),
            )
            .await?
        }
        BenchCommand::Cycle {
            agents,
            bids_per_agent,
            runs,
            warmups,
            database_url,
        } => {
            cycle(
                (*agents, *bids_per_agent),
                (*warmups, *runs),
                database_url.clone(),
            )
            .await?
        }
        BenchCommand::LlmProxy { calls, warmup } => llm_proxy(*calls, *warmup).await?,
        BenchCommand::Console {
            agents,
            cycles,
            rounds,
            warmup,
            database_url,
            data_dir,
        } => {
            console(
                (*agents, *cycles),
                (*warmup, *rounds),
                database_url.clone(),
                data_dir.clone(),
            )
            .await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("--{name} must be a number of seconds ≥ 0"))
}

async fn api(
    (connections, transfer_connections): (usize, usize),
    measure: f64,
    warmup: f64,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let f = api_bench::run(ApiBenchOptions {
        data_dir: dir.path().to_path_buf(),
        database_url,
        connections,
        transfer_connections,
        warmup: seconds("warmup", warmup)?,
        measure: seconds("seconds", measure)?,
    })
    .await?;
    println!(
        "backend={} agents={} connections={} transfer_connections={} seconds={measure} \
         warmup_s={warmup} audit=clean",
        f.backend, f.agents, f.connections, f.transfer_connections
    );
    print_phase("prices", &f.prices);
    print_phase("transfer", &f.transfers);
    Ok(())
}

/// Runs the LLM proxy benchmark in a temporary data directory.
async fn llm_proxy(calls: usize, warmup: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let f = llm_bench::run(LlmBenchOptions {
        data_dir: dir.path().to_path_buf(),
        calls,
        warmup,
    })
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "calls={} tokens_charged={} (= the upstream's reported usage)",
        f.calls, f.tokens_charged
    );
    for (name, m) in [("stream", &f.stream), ("whole", &f.whole)] {
        let (p50, p99) = m.overhead_ms();
        println!(
            "llm_proxy_{name}_direct_p50_ms={:.3} llm_proxy_{name}_proxied_p50_ms={:.3} \
             llm_proxy_{name}_direct_p99_ms={:.3} llm_proxy_{name}_proxied_p99_ms={:.3} \
             llm_proxy_{name}_overhead_p50_ms={p50:.3} llm_proxy_{name}_overhead_p99_ms={p99:.3}",
            ms(m.direct.p50),
            ms(m.proxied.p50),
            ms(m.direct.p99),
            ms(m.proxied.p99),
        );
    }
    let (p50, p99) = f.whole.overhead_ms();
    println!("llm_proxy_overhead_p50_ms={p50:.3} p99_ms={p99:.3}");
    Ok(())
}

/// One phase's figures, its throughput last.
fn print_phase(name: &str, p: &PhaseFigures) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "api_{name}_ok={} api_{name}_elapsed_s={:.3} api_{name}_p90_ms={:.3} api_{name}_max_ms={:.3}",
        p.ok,
        p.elapsed.as_secs_f64(),
        ms(p.p90),
        ms(p.max)
    );
    if let Some(e) = &p.first_error {
        println!("api_{name}_first_error={e:?}");
    }
    println!("api_{name}_errors={}", p.errors);
    println!("api_{name}_p50_ms={:.3}", ms(p.p50));
    println!("api_{name}_p99_ms={:.3}", ms(p.p99));
    println!("api_{name}_rps={:.0}", p.per_second);
}

/// Runs the cycle benchmark in a temporary data directory.
async fn cycle(
    (agents, bids_per_agent): (usize, usize),
    (warmups, runs): (usize, usize),
    database_url: Option<String>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let f = cycle_bench::run(CycleBenchOptions {
        data_dir: dir.path().to_path_buf(),
        database_url,
        agents,
        bids_per_agent,
        warmups,
        runs,
    })
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for r in &f.runs {
        println!(
            "cycle={} warmup={} took_ms={:.3} pending_bids={} allocated={} expired_bids={} \
             culled={} drain_ms={:.0} cpu_price={}",
            r.cycle,
            r.warmup,
            ms(r.took),
            r.pending_bids,
            r.allocated,
            r.expired_bids,
            r.culled,
            ms(r.drain),
            agora_core::Credits::from_micros(r.cpu_price)
        );
    }
    let executions: Vec<String> = f
        .executions
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect();
    println!(
        "backend={} sandbox=process bwrap={} agents={} bids_per_agent={} agents_alive={} \
         executions={} audit=clean",
        f.backend,
        f.bwrap,
        f.agents,
        f.bids_per_agent,
        f.agents_alive,
        executions.join(",")
    );
    let (min, median, max) = f.allocated;
    println!("cycle_allocated_per_cycle={median} (min {min}, max {max})");
    println!(
        "cycle_p90_ms={:.3} cycle_max_ms={:.3}",
        ms(f.p90),
        ms(f.max)
    );
    println!("cycle_{}_agents_ms={:.3}", f.agents, ms(f.median));
    Ok(())
}

/// Runs the console benchmark in a temporary data directory (or the given one).
async fn console(
    (agents, cycles): (usize, usize),
    (warmup_rounds, rounds): (usize, usize),
    database_url: Option<String>,
    data_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = data_dir.unwrap_or_else(|| temp.path().to_path_buf());
    let f = console_bench::run(ConsoleBenchOptions {
        data_dir,
        database_url,
        agents,
        cycles,
        warmup_rounds,
        rounds,
    })
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let w = &f.world;
    println!(
        "backend={} agents={} alive={} dead={} big_lineage={} cycles={} executions={} logs={} \
         pending_bids={} prompts={} rated={} waiting={} build_s={:.1} audit=clean",
        f.backend,
        w.agents,
        w.alive,
        w.dead,
        w.big_lineage,
        w.cycles,
        w.executions,
        w.logs,
        w.pending_bids,
        w.prompts_submitted,
        w.prompts_rated,
        w.prompts_waiting,
        w.build.as_secs_f64()
    );
    for p in &f.pages {
        println!(
            "console_{}_p50_ms={:.3} p99_ms={:.3} max_ms={:.3} bytes={} path={} rounds={}",
            p.name,
            ms(p.p50),
            ms(p.p99),
            ms(p.max),
            p.bytes,
            p.path,
            f.rounds
        );
    }
    let slowest = f
        .slowest()
        .ok_or_else(|| anyhow::anyhow!("no page was measured"))?;
    println!("console_slowest_page={} ({})", slowest.name, slowest.path);
    println!("console_pages_p99_max_ms={:.3}", ms(slowest.p99));
    Ok(())
}

async fn sandbox(runs: usize) -> anyhow::Result<()> {
    use agora_sandbox::bench::{bench_docker_overhead, bench_process_start};
    use agora_sandbox::{DockerOptions, DockerSandbox, ProcessOptions, ProcessSandbox};
    match DockerSandbox::connect(DockerOptions::default()).await {
        Ok(docker) => {
            let d = bench_docker_overhead(&docker, runs).await?;
            println!(
                "sandbox_docker_ours_ms={:.1} sandbox_docker_bare_ms={:.1} runs={}",
                d.ours_ms, d.bare_ms, d.runs
            );
            println!("sandbox_docker_overhead_ratio={:.2}", d.ratio);
        }
        Err(e) => println!("docker: skipped ({e})"),
    }
    let p = bench_process_start(&ProcessSandbox::new(ProcessOptions::default())?, runs).await?;
    println!("sandbox_process_bwrap={} runs={}", p.bwrap, p.runs);
    println!("sandbox_process_start_ms={:.0}", p.median_ms);
    Ok(())
}
