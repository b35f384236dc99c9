//! `agora bench api`: the System Service under load over loopback (SPEC §14).
//!
//! A fresh world is opened in a given data directory, agents are given running
//! executions and tokens, and the real router is served on `127.0.0.1:0` in this
//! process. Then many keep-alive HTTP/1.1 connections, one task each, send requests
//! back to back through a bare hyper client (no pool, no retries, so the client adds
//! as little as possible to what is measured). Each phase warms up first; only
//! requests started inside the timed window count, and only 2xx answers count as
//! successes. After the phases the ledger audit must be clean.

use crate::api::{self, ApiState};
use crate::config::{Config, DatabaseUrl};
use crate::store::{NewAgent, NewBid, Store};
use crate::world;
use agora_core::{AgentId, Bundle, BundleSpec, Credits, ExecutionId};
use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What to run.
#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    /// The data directory of the fresh world (SQLite file, operator token, workspaces).
    pub data_dir: PathBuf,
    /// Another database than the SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Concurrent keep-alive connections of the prices phase; each speaks for its
    /// own agent.
    pub connections: usize,
    /// Concurrent connections of the transfer phase. Every transfer waits for the
    /// store's one SQLite writer, so with `n` connections the mean latency is
    /// `n / throughput` (Little's law): this is the knob between throughput and
    /// tail latency.
    pub transfer_connections: usize,
    /// Untimed requests before each phase, on the same connections.
    pub warmup: Duration,
    /// The timed part of each phase.
    pub measure: Duration,
}

/// The figures of one phase.
#[derive(Debug, Clone)]
pub struct PhaseFigures {
    /// 2xx answers to requests started in the timed window.
    pub ok: usize,
    /// Non-2xx answers and transport failures in the timed window.
    pub errors: usize,
    /// The first failure seen, for the report.
    pub first_error: Option<String>,
    /// From the window's start to the last counted answer.
    pub elapsed: Duration,
    pub per_second: f64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The figures of the whole benchmark.
#[derive(Debug, Clone)]
pub struct ApiFigures {
    pub backend: &'static str,
    pub agents: usize,
    pub connections: usize,
    pub transfer_connections: usize,
    pub prices: PhaseFigures,
    pub transfers: PhaseFigures,
}

/// A small bundle: one CPU second, 16 MB, 100 tokens and the given share of the
/// human's attention. The benchmark's agents have no attention, so any number of
/// them fit one cycle.
pub fn small_bundle(config: &Config, attention_share: f64) -> anyhow::Result<Bundle> {
    let spec = BundleSpec {
        cpu_seconds: 1.0,
        memory_mb: 16.0,
        tokens: 100.0,
        attention_share,
        wall_seconds: None,
    };
    Ok(Bundle::parse(&spec, &config.bundle_limits())?)
}

/// An agent inside a scheduled execution, as an agent process would be.
#[derive(Debug, Clone)]
pub struct RunningAgent {
    pub id: AgentId,
    pub execution: ExecutionId,
    /// Its execution token.
    pub token: String,
}

/// Creates an agent holding `credits` after it won `bundle` (paid on top), with its
/// execution scheduled and a token issued, the way the orchestrator prepares a
/// winner: grant, bid, a new cycle, allocation, token.
pub async fn running_agent(
    store: &Store,
    config: &Config,
    bundle: Bundle,
    credits: Credits,
) -> anyhow::Result<RunningAgent> {
    let bid_amount = Credits::from_micros(20_000_000);
    let id = store
        .create_agent(NewAgent {
            parent: None,
            workspaces_root: world::workspaces_root(config),
        })
        .await?;
    let total = Credits::from_micros(credits.micros().saturating_add(bid_amount.micros()));
    store.grant(id, total, "benchmark").await?;
    let bid = store
        .place_bid(NewBid {
            payer: id,
            beneficiary: id,
            bundle,
            amount: bid_amount,
            ttl_cycles: config.economy.bid_ttl_cycles,
            max_pending: config.economy.max_pending_bids,
        })
        .await?;
    let cycle = store.begin_cycle().await?;
    let exec = store
        .allocate(bid.id, cycle)
        .await?
        .context("the agent's bid was not allocated")?;
    let token = store.issue_token(exec.id).await?;
    Ok(RunningAgent {
        id,
        execution: exec.id,
        token,
    })
}

/// Opens a fresh world in `data_dir` (on `database_url` if given) for a benchmark or
/// a test fixture. The CPU supply is fixed so that figures do not depend on the
/// host's core count.
pub async fn fresh_world(
    data_dir: &Path,
    database_url: Option<String>,
) -> anyhow::Result<world::World> {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    if let Some(url) = database_url {
        config.database_url = DatabaseUrl(url);
    }
    config.market.cpu_seconds.supply = Some(10.0);
    Ok(world::open(config).await?)
}

/// A running System Service on loopback; stops when dropped.
pub struct LocalServer {
    pub addr: SocketAddr,
    pub state: ApiState,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalServer {
    /// Serves the real router over `store` on 127.0.0.1 at a free port.
    pub async fn start(store: Store, config: Config) -> anyhow::Result<LocalServer> {
        let state = ApiState::new(store, config);
        let (router, _) = api::router(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(api::serve_tcp(listener, router, async move {
            let _ = rx.await;
        }));
        Ok(LocalServer {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }

    /// Stops accepting, ends event streams, and waits for answers in flight.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.state.stop();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.state.stop();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One request a connection sends, again and again.
#[derive(Clone)]
struct Call {
    method: Method,
    path: &'static str,
    token: String,
    body: Option<Bytes>,
}

impl Call {
    fn request(&self, host: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let builder = Request::builder()
            .method(self.method.clone())
            .uri(self.path)
            .header(HOST, host)
            .header(AUTHORIZATION, format!("Bearer {}", self.token));
        Ok(match &self.body {
            Some(b) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(b.clone()))?,
            None => builder.body(Full::new(Bytes::new()))?,
        })
    }
}

/// What one connection saw in the timed window.
#[derive(Default)]
struct ConnectionLog {
    latencies: Vec<Duration>,
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    last_answer: Option<Instant>,
}

impl ConnectionLog {
    fn failure(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

/// One keep-alive HTTP/1.1 connection to `addr` (no Nagle delay), its driver
/// spawned; the benchmarks' client.
pub(crate) async fn connect<B>(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends `call` back to back on one keep-alive connection until `end`, logging the
/// requests started at or after `start`. A broken connection is counted as an
/// error and reopened.
async fn drive(
    addr: SocketAddr,
    call: Call,
    start: Instant,
    end: Instant,
) -> anyhow::Result<ConnectionLog> {
    let host = addr.to_string();
    let mut log = ConnectionLog::default();
    let mut sender = connect(addr).await?;
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let timed = sent >= start;
        let outcome = async {
            sender.ready().await?;
            let response = sender.send_request(call.request(&host)?).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        }
        .await;
        let done = Instant::now();
        match outcome {
            Ok((status, body)) => {
                if timed {
                    log.latencies.push(done - sent);
                    log.last_answer = Some(done);
                    if status.is_success() {
                        log.ok += 1;
                    } else {
                        log.failure(format!("{status}: {}", String::from_utf8_lossy(&body)));
                    }
                }
            }
            Err(e) => {
                if timed {
                    log.last_answer = Some(done);
                    log.failure(format!("transport: {e:#}"));
                }
                sender = connect(addr).await?;
            }
        }
    }
    Ok(log)
}

/// Runs one phase: every connection sends its call through the warm-up and the
/// timed window.
async fn phase(
    addr: SocketAddr,
    calls: Vec<Call>,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<PhaseFigures> {
    let start = Instant::now() + warmup;
    let end = start + measure;
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|call| tokio::spawn(drive(addr, call, start, end)))
        .collect();
    let mut latencies = Vec::new();
    let (mut ok, mut errors, mut first_error, mut last) = (0, 0, None, start);
    for t in tasks {
        let log = t.await.context("a client task failed")??;
        latencies.extend(log.latencies);
        ok += log.ok;
        errors += log.errors;
        first_error = first_error.or(log.first_error);
        last = last.max(log.last_answer.unwrap_or(start));
    }
    latencies.sort_unstable();
    let at = |q: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len() - 1);
        latencies[i]
    };
    let elapsed = (last - start).max(measure);
    Ok(PhaseFigures {
        ok,
        errors,
        first_error,
        elapsed,
        per_second: ok as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}

/// Runs the benchmark: prices, then transfers.
pub async fn run(opts: ApiBenchOptions) -> anyhow::Result<ApiFigures> {
    let connections = opts.connections.max(2);
    let transfer_connections = opts.transfer_connections.max(2);
    let w = fresh_world(&opts.data_dir, opts.database_url.clone()).await?;
    let store = w.store.clone();
    let n = connections.max(transfer_connections);
    let mut agents = Vec::with_capacity(n);
    let bundle = small_bundle(&w.config, 0.0)?;
    let credits = Credits::from_micros(1_000_000_000_000);
    for _ in 0..n {
        agents.push(running_agent(&store, &w.config, bundle, credits).await?);
    }
    let server = LocalServer::start(store.clone(), w.config.clone()).await?;
    let addr = server.addr;

    let prices = agents[..connections]
        .iter()
        .map(|a| Call {
            method: Method::GET,
            path: "/market/prices",
            token: a.token.clone(),
            body: None,
        })
        .collect();
    let prices = phase(addr, prices, opts.warmup, opts.measure).await?;

    let payers = &agents[..transfer_connections];
    let transfers = payers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let to = payers[(i + 1) % payers.len()].id;
            let body = format!(r#"{{"to":{},"amount":"0.000001"}}"#, to.0);
            Call {
                method: Method::POST,
                path: "/economic/transfer",
                token: a.token.clone(),
                body: Some(Bytes::from(body)),
            }
        })
        .collect();
    let transfers = phase(addr, transfers, opts.warmup, opts.measure).await?;

    server.stop().await?;
    let report = store.audit().await?;
    if !report.is_clean() {
        bail!("audit failed after the benchmark: {:?}", report.violations);
    }
    let backend = store.backend().as_str();
    store.close().await;
    Ok(ApiFigures {
        backend,
        agents: agents.len(),
        connections,
        transfer_connections,
        prices,
        transfers,
    })
}
