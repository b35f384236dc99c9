//! `agora bench console`: how fast the console's pages answer over a large world
//! (SPEC §12; the goal is every page under 50 ms with 10,000 agents).
//!
//! A fresh world is grown cycle by cycle through the store's own methods, as the
//! Orchestrator and the agents would have written it: agents are created and
//! spawned into lineages (one big lineage a few levels deep, many small ones),
//! each keeps a pending bid, a quarter of them win executions (some with log
//! files, some submitting a prompt to the human, who rates one every few
//! cycles), and about a third die along the way, of law 2 after a last execution
//! or culled after withdrawing their bid. Every cycle expires bids and records
//! prices and the world's totals (`record_cycle`), so the charts have thousands of
//! cycles of history. The ledger audit must be clean afterwards.
//!
//! Then the real router is served on `127.0.0.1:0` and every console page is
//! requested over one keep-alive HTTP/1.1 connection with the operator's session
//! cookie, in rounds after a warm-up; each answer must be a 200 with HTML.

use crate::api::operator::{self, Ensured};
use crate::api_bench::{connect, fresh_world, LocalServer};
use crate::console::COOKIE;
use crate::store::{
    CycleRecord, ExecutionEnd, NewBid, Newest, Rejection, RootAgent, SpawnRequest, Store,
    StoreError,
};
use agora_core::attention::Scores;
use agora_core::lifecycle::ExecutionStatus;
use agora_core::pricing::next_prices;
use agora_core::{AgentId, BidId, Bundle, BundleSpec, Credits, ExecutionId, Resource, ResourceVec};
use anyhow::{bail, Context};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, COOKIE as COOKIE_HEADER, HOST};
use hyper::Request;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct ConsoleBenchOptions {
    /// The data directory of the fresh world (SQLite file, operator token, logs).
    pub data_dir: PathBuf,
    /// Another database than the SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Agents created besides the genesis agent.
    pub agents: usize,
    /// Cycles of history the world is grown over.
    pub cycles: usize,
    /// Untimed rounds over every page first.
    pub warmup_rounds: usize,
    /// Timed rounds over every page.
    pub rounds: usize,
}

/// What the grown world holds.
#[derive(Debug, Clone, Default)]
pub struct WorldShape {
    pub agents: i64,
    pub alive: i64,
    pub dead: i64,
    pub cycles: usize,
    pub executions: usize,
    pub logs: usize,
    pub pending_bids: i64,
    pub prompts_submitted: usize,
    pub prompts_rated: usize,
    pub prompts_waiting: i64,
    /// Agents in the big lineage (its root included).
    pub big_lineage: usize,
    /// How long growing the world took.
    pub build: Duration,
}

/// One page's latencies over the timed rounds.
#[derive(Debug, Clone)]
pub struct PageFigures {
    pub name: &'static str,
    pub path: String,
    /// Size of the last answer's body.
    pub bytes: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The figures of the whole benchmark.
#[derive(Debug, Clone)]
pub struct ConsoleFigures {
    pub backend: &'static str,
    pub world: WorldShape,
    pub rounds: usize,
    /// In the order they were requested.
    pub pages: Vec<PageFigures>,
}

impl ConsoleFigures {
    /// The page with the largest p99.
    pub fn slowest(&self) -> Option<&PageFigures> {
        self.pages.iter().max_by_key(|p| p.p99)
    }
}

/// A small deterministic generator (SplitMix64), so that every run grows the
/// same world.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// How a mortal agent dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// A last execution ends with no pending bid left (law 2).
    NoBid,
    /// It withdraws its bid and the cull takes it.
    Culled,
}

/// One agent's life, planned before the world is grown.
#[derive(Debug, Clone, Default)]
struct Life {
    parent: Option<usize>,
    birth: usize,
    death: Option<(usize, Death)>,
    /// Cycles in which it runs an execution (sorted).
    runs: Vec<usize>,
}

/// The share of agents in the one big lineage.
const BIG_LINEAGE_SHARE: usize = 2;
/// Children per agent in the big lineage (it is a complete tree of this degree).
const BIG_BRANCHING: usize = 3;
/// Agents per small lineage (a binary tree under one root agent).
const SMALL_LINEAGE: usize = 60;
/// Executions of the busy agent (more than the agent page's 50 rows).
const BUSY_RUNS: usize = 60;
/// The human rates the active prompt every this many cycles.
const RATE_EVERY: usize = 3;

/// Plans every agent's parent, birth, executions and death. Agents are born
/// evenly over the first 90% of the cycles; a parent is always born before its
/// children and dies only after the last of them is born.
fn plan(n: usize, cycles: usize, rng: &mut Rng) -> (Vec<Life>, usize) {
    let mut lives = vec![Life::default(); n];
    let last_birth = (cycles * 9 / 10).max(1);
    let mut big = Vec::new();
    let mut small = Vec::new();
    for (j, life) in lives.iter_mut().enumerate() {
        life.birth = 1 + j * last_birth / n.max(1);
        if j % BIG_LINEAGE_SHARE == 0 {
            let k = big.len();
            life.parent = (k > 0).then(|| big[(k - 1) / BIG_BRANCHING]);
            big.push(j);
        } else {
            let k = small.len();
            let local = k % SMALL_LINEAGE;
            life.parent = (local > 0).then(|| small[k - local + (local - 1) / 2]);
            small.push(j);
        }
    }
    let busy = big.get(1).copied().unwrap_or(0);
    let mut last_child = vec![0usize; n];
    for life in &lives {
        if let Some(p) = life.parent {
            last_child[p] = last_child[p].max(life.birth);
        }
    }
    for (j, life) in lives.iter_mut().enumerate() {
        if j != 0 && j != busy && rng.chance(0.33) {
            let at = (life.birth + 20 + rng.below(400) as usize).max(last_child[j] + 1);
            if at < cycles {
                let how = if rng.chance(0.5) {
                    Death::NoBid
                } else {
                    Death::Culled
                };
                life.death = Some((at, how));
            }
        }
        let end = life.death.map(|(c, _)| c).unwrap_or(cycles + 1);
        let runs = if j == busy {
            BUSY_RUNS
        } else if rng.chance(0.25) {
            1 + rng.below(6) as usize
        } else {
            0
        };
        let span = end.saturating_sub(life.birth + 1) as u64;
        if span > 0 {
            life.runs = (0..runs)
                .map(|_| life.birth + 1 + rng.below(span) as usize)
                .collect();
            life.runs.sort_unstable();
        }
    }
    (lives, busy)
}

/// The bundle every bid asks for: a small one.
fn bench_bundle(config: &crate::config::Config) -> anyhow::Result<Bundle> {
    let spec = BundleSpec {
        cpu_seconds: 0.5,
        memory_mb: 16.0,
        tokens: 500.0,
        attention_share: 0.0,
        wall_seconds: None,
    };
    Ok(Bundle::parse(&spec, &config.bundle_limits())?)
}

/// A market's utilisation in a cycle: what the cycle's executions used plus
/// noise, except that a price 3× away from where it started is pulled back, so
/// prices wander without running off (and bids stay above the reserve).
fn load(rng: &mut Rng, used: f64, price: i64, initial: i64) -> f64 {
    if price > initial.saturating_mul(3) {
        0.0
    } else if price.saturating_mul(3) < initial {
        1.0
    } else {
        (used + (rng.below(1000) as f64) / 1000.0).min(1.0)
    }
}

/// Lines of an agent's output, about `bytes` long.
fn log_text(exec: ExecutionId, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 100);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "[exec {}] step {i}: read the market, thought about prices, placed nothing new\n",
            exec.0
        ));
        i += 1;
    }
    out
}

/// A bid refused for being below the reserve is placed again a quarter above
/// the reserve it was told, as an agent would; any other refusal is an error.
fn above_reserve(e: StoreError) -> anyhow::Result<Credits> {
    match e {
        StoreError::Rejected(Rejection::BelowReserve { reserve, .. }) => Ok(Credits::from_micros(
            reserve.micros() + reserve.micros() / 4,
        )),
        other => Err(other.into()),
    }
}

/// Grows the world; see the module's documentation.
struct Grower {
    store: Store,
    config: crate::config::Config,
    bundle: Bundle,
    ttl_cycles: i64,
    rng: Rng,
    logs_dir: PathBuf,
    shape: WorldShape,
    /// The planned agent's id, once born.
    ids: Vec<Option<AgentId>>,
    /// Each alive agent's pending bid.
    bid_of: Vec<Option<BidId>>,
    /// The busy agent's executions, for the execution page.
    busy_executions: Vec<ExecutionId>,
}

impl Grower {
    /// Grants the agent what it misses of `needed` available credits (plus a
    /// margin), as an operator keeping a benchmark world funded would.
    async fn fund(&mut self, agent: AgentId, needed: Credits) -> anyhow::Result<()> {
        let available = self.store.balance(agent).await?.available;
        if available < needed {
            let top_up = needed.micros() - available.micros() + 500_000_000;
            self.store
                .grant(agent, Credits::from_micros(top_up), "benchmark top-up")
                .await?;
        }
        Ok(())
    }

    /// What an agent offers: a random amount, but at least a quarter above the
    /// reserve at today's prices, as an agent reading `/market/prices` would.
    async fn bid_amount(&mut self) -> anyhow::Result<Credits> {
        let reserve = self.store.prices().await?.reserve(&self.bundle).micros();
        let offer = 15_000_000 + self.rng.below(30) as i64 * 1_000_000;
        Ok(Credits::from_micros(offer.max(reserve + reserve / 4)))
    }

    async fn place_bid(&mut self, j: usize, agent: AgentId) -> anyhow::Result<()> {
        let mut amount = self.bid_amount().await?;
        for _ in 0..3 {
            self.fund(agent, amount).await?;
            let placed = self
                .store
                .place_bid(NewBid {
                    payer: agent,
                    beneficiary: agent,
                    bundle: self.bundle,
                    amount,
                    ttl_cycles: self.ttl_cycles,
                    max_pending: self.config.economy.max_pending_bids,
                })
                .await;
            match placed {
                Ok(bid) => {
                    self.bid_of[j] = Some(bid.id);
                    return Ok(());
                }
                Err(e) => amount = above_reserve(e)?,
            }
        }
        bail!("agent {agent} could not bid above the reserve")
    }

    /// Creates (root) or spawns (child) agent `j` with its first bid.
    async fn birth(&mut self, j: usize, life: &Life) -> anyhow::Result<AgentId> {
        let amount = self.bid_amount().await?;
        let root = crate::world::workspaces_root(&self.config);
        let (id, bid) = match life.parent {
            None => {
                let (id, bid, _) = self
                    .store
                    .create_root_agent(
                        RootAgent {
                            workspaces_root: root,
                            initial_credits: Credits::from_micros(5_000_000_000),
                            first_bid: Some((self.bundle, amount)),
                            bid_ttl_cycles: self.ttl_cycles,
                            max_pending_bids: self.config.economy.max_pending_bids,
                        },
                        None,
                    )
                    .await?;
                (id, bid)
            }
            Some(p) => {
                let parent = self.ids[p].context("a parent is born before its child")?;
                let endowment =
                    Credits::from_micros(100_000_000 + self.rng.below(300) as i64 * 1_000_000);
                let cost = self.config.economy.spawn_cost;
                self.fund(
                    parent,
                    Credits::from_micros(endowment.micros() + cost.micros()),
                )
                .await?;
                let mut amount = amount;
                let mut spawned = None;
                for _ in 0..3 {
                    let outcome = self
                        .store
                        .spawn_with_bid(
                            SpawnRequest {
                                parent,
                                initial_credits: endowment,
                                spawn_cost: cost,
                                workspaces_root: root.clone(),
                            },
                            Some(NewBid {
                                payer: parent,
                                beneficiary: parent,
                                bundle: self.bundle,
                                amount,
                                ttl_cycles: self.ttl_cycles,
                                max_pending: self.config.economy.max_pending_bids,
                            }),
                            None,
                        )
                        .await;
                    match outcome {
                        Ok((id, bid, _)) => {
                            spawned = Some((id, bid));
                            break;
                        }
                        Err(e) => amount = above_reserve(e)?,
                    }
                }
                spawned.with_context(|| format!("agent {parent} could not spawn"))?
            }
        };
        self.ids[j] = Some(id);
        self.bid_of[j] = bid.map(|b| b.id);
        Ok(id)
    }

    /// Runs one execution of agent `j`: its pending bid wins, the execution
    /// starts (with a log file for some), may submit a prompt, and ends; with
    /// `rebid` the agent bids again while it runs and so stays alive.
    async fn run(
        &mut self,
        j: usize,
        cycle: agora_core::Cycle,
        rebid: bool,
        busy: bool,
    ) -> anyhow::Result<ResourceVec> {
        let agent = self.ids[j].context("an execution of an unborn agent")?;
        let bid = self.bid_of[j]
            .take()
            .context("an agent runs only on a pending bid")?;
        let exec = self
            .store
            .allocate(bid, cycle)
            .await?
            .context("the agent's bid was not pending")?;
        self.shape.executions += 1;
        let log_path = self.logs_dir.join(format!("exec-{}.log", exec.id.0));
        if busy || self.rng.chance(0.5) {
            let bytes = if busy {
                4_096 + self.rng.below(60_000) as usize
            } else {
                256 + self.rng.below(8_000) as usize
            };
            std::fs::write(&log_path, log_text(exec.id, bytes))?;
            self.shape.logs += 1;
        }
        self.store
            .start_execution(exec.id, "process", None, &log_path.to_string_lossy())
            .await?;
        if self.rng.chance(0.15) {
            let amount = Credits::from_micros(1_000_000 + self.rng.below(20) as i64 * 1_000_000);
            self.fund(agent, amount).await?;
            let content = serde_json::json!({
                "title": format!("Agent {} on cycle {}", agent.0, cycle.0),
                "body": "I watched the CPU price for a while. ".repeat(1 + self.rng.below(30) as usize),
            });
            self.store
                .submit_prompt(agent, exec.id, content, amount)
                .await?;
            self.shape.prompts_submitted += 1;
        }
        if rebid {
            self.place_bid(j, agent).await?;
        }
        let (status, code, reason) = match self.rng.below(10) {
            0 => (
                ExecutionStatus::Failed,
                Some(1),
                Some("exit status 1".into()),
            ),
            1 => (ExecutionStatus::TimedOut, None, Some("wall clock".into())),
            _ => (ExecutionStatus::Succeeded, Some(0), None),
        };
        self.store
            .end_execution(
                exec.id,
                ExecutionEnd {
                    status,
                    exit_code: code,
                    reason,
                    cpu_used_ms: Some(20 + self.rng.below(400) as i64),
                    peak_memory_mb: Some(8 + self.rng.below(8) as i64),
                },
            )
            .await?;
        if busy {
            self.busy_executions.push(exec.id);
        }
        Ok(*exec.bundle.quantities())
    }

    /// The human rates the active prompt, if there is one.
    async fn rate(&mut self) -> anyhow::Result<()> {
        let queue = self.store.attention_queue(1).await?;
        let Some(p) = queue
            .first()
            .filter(|p| p.status == agora_core::PromptStatus::Active)
        else {
            return Ok(());
        };
        let mut score = || u8::try_from(self.rng.below(11)).unwrap_or(0);
        let scores = Scores {
            interesting: score(),
            useful: score(),
            understandable: score(),
        };
        let reason = if self.rng.chance(0.5) {
            "clear, and it taught me something".to_string()
        } else {
            String::new()
        };
        self.store
            .reward_prompt(p.id, scores, reason, self.config.reward_rates())
            .await?;
        self.shape.prompts_rated += 1;
        Ok(())
    }
}

/// What the pages are requested about.
struct Subjects {
    busy: AgentId,
    big_root: AgentId,
    execution: ExecutionId,
}

/// Grows the world of `opts` in `store`.
async fn grow(
    store: &Store,
    config: &crate::config::Config,
    opts: &ConsoleBenchOptions,
) -> anyhow::Result<(WorldShape, Subjects)> {
    let began = Instant::now();
    let n = opts.agents.max(2);
    let cycles = opts.cycles.max(10);
    let mut rng = Rng(0x5EED_C0DE);
    let (lives, busy) = plan(n, cycles, &mut rng);
    let logs_dir = opts.data_dir.join("logs");
    std::fs::create_dir_all(&logs_dir)?;
    let mut g = Grower {
        store: store.clone(),
        config: config.clone(),
        bundle: bench_bundle(config)?,
        ttl_cycles: config.economy.bid_ttl_cycles,
        rng,
        logs_dir,
        shape: WorldShape {
            cycles,
            big_lineage: n.div_ceil(BIG_LINEAGE_SHARE),
            ..WorldShape::default()
        },
        ids: vec![None; n],
        bid_of: vec![None; n],
        busy_executions: Vec::new(),
    };
    // What happens in each cycle, by agent index.
    let mut births: Vec<Vec<usize>> = vec![Vec::new(); cycles + 1];
    let mut runs: Vec<Vec<usize>> = vec![Vec::new(); cycles + 1];
    let mut deaths: Vec<Vec<(usize, Death)>> = vec![Vec::new(); cycles + 1];
    for (j, life) in lives.iter().enumerate() {
        births[life.birth.min(cycles)].push(j);
        for &c in &life.runs {
            runs[c.min(cycles)].push(j);
        }
        if let Some((c, how)) = life.death {
            deaths[c].push((j, how));
        }
    }
    let markets = store.markets().await?;
    let initial: Vec<i64> = store.prices().await?.0.iter().map(|p| p.0).collect();
    let capacity: Vec<f64> = Resource::ALL
        .iter()
        .map(|r| {
            markets
                .iter()
                .find(|m| m.resource == r.as_str())
                .map(|m| m.capacity.max(1) as f64)
                .unwrap_or(1.0)
        })
        .collect();
    let policy = config.price_policy();
    let bounds = config.price_bounds();
    for c in 1..=cycles {
        let cycle = store.begin_cycle().await?;
        store.expire_bids(cycle).await?;
        for &j in &births[c] {
            let id = g.birth(j, &lives[j]).await?;
            if j == busy || j == 0 {
                // The agent page lists the workspace; these two have one.
                let ws = PathBuf::from(store.agent(id).await?.workspace);
                std::fs::create_dir_all(&ws)?;
                std::fs::write(ws.join("main.py"), "print('hello')\n")?;
                std::fs::write(ws.join("notes.md"), "# Notes\n\nPrices rise at noon.\n")?;
            }
        }
        let mut allocated = ResourceVec::default();
        for &j in &runs[c] {
            // An agent that dies this cycle of law 2 runs its last execution below.
            if g.bid_of[j].is_none() {
                continue;
            }
            let q = g.run(j, cycle, true, j == busy).await?;
            allocated = allocated.saturating_add(&q);
        }
        let mut cull = false;
        for &(j, how) in &deaths[c] {
            let Some(agent) = g.ids[j] else { continue };
            match how {
                Death::NoBid => {
                    let q = g.run(j, cycle, false, false).await?;
                    allocated = allocated.saturating_add(&q);
                }
                Death::Culled => {
                    if let Some(bid) = g.bid_of[j].take() {
                        store.withdraw_bid(agent, bid).await?;
                    }
                    cull = true;
                }
            }
        }
        // The Orchestrator culls every cycle; here only the cycles with an agent
        // left without a bid could cull anyone, so the others are skipped.
        if cull {
            store.cull(cycle).await?;
        }
        if c % RATE_EVERY == 0 {
            g.rate().await?;
        }
        let prices = store.prices().await?;
        let mut utilisation = [0.0; 4];
        for r in Resource::ALL {
            let i = r.index();
            let used = allocated.get(r) as f64 / capacity[i];
            utilisation[i] = load(&mut g.rng, used, prices.0[i].0, initial[i]);
        }
        store
            .record_cycle(CycleRecord {
                cycle,
                allocated,
                utilisation,
                new_prices: next_prices(&prices, &utilisation, &policy, &bounds),
            })
            .await?;
    }
    let stats = store.stats().await?;
    let mut shape = g.shape;
    shape.agents = stats.agents_alive + stats.agents_dead;
    shape.alive = stats.agents_alive;
    shape.dead = stats.agents_dead;
    shape.pending_bids = stats.pending_bids;
    shape.prompts_waiting = stats.pending_prompts;
    shape.build = began.elapsed();
    let execution = *g
        .busy_executions
        .last()
        .context("the busy agent ran no execution")?;
    // The execution page shows the last MiB of a log; this one is longer.
    let log = g.logs_dir.join(format!("exec-{}.log", execution.0));
    std::fs::write(&log, log_text(execution, 1_200_000))?;
    let subjects = Subjects {
        busy: g.ids[busy].context("the busy agent was never born")?,
        big_root: g.ids[0].context("the big lineage's root was never born")?,
        execution,
    };
    Ok((shape, subjects))
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Requests one page and reads the whole answer; fails unless it is a 200 with
/// an HTML page.
async fn fetch(
    sender: &mut Sender,
    host: &str,
    cookie: &str,
    path: &str,
) -> anyhow::Result<(Duration, usize)> {
    let request = Request::get(path)
        .header(HOST, host)
        .header(COOKIE_HEADER, cookie)
        .body(Empty::new())?;
    let sent = Instant::now();
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let kind = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.into_body().collect().await?.to_bytes();
    let took = sent.elapsed();
    if status != hyper::StatusCode::OK {
        bail!(
            "{path} answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    if !kind.starts_with("text/html") || !body.starts_with(b"<!DOCTYPE html>") {
        bail!("{path} answered {kind:?}, not an HTML page");
    }
    Ok((took, body.len()))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i]
}

/// Runs the benchmark.
pub async fn run(opts: ConsoleBenchOptions) -> anyhow::Result<ConsoleFigures> {
    let mut w = fresh_world(&opts.data_dir, opts.database_url.clone()).await?;
    // Bids of the benchmark's agents outlive the run, as if each agent re-bid
    // before its bid expired: re-bidding 10,000 agents every 20 cycles would
    // multiply the time to grow the world without changing what the pages read.
    w.config.economy.bid_ttl_cycles = i64::try_from(opts.cycles.max(10) + 100)?;
    let (store, config) = (w.store.clone(), w.config.clone());
    let (world, subjects) = grow(&store, &config, &opts).await?;
    let audit = store.audit().await?;
    if !audit.is_clean() {
        bail!("the ledger audit is not clean after growing the world: {audit:?}");
    }
    let token = match operator::ensure(&config.data_dir)? {
        Ensured::Created(t) => t,
        Ensured::Existing => std::fs::read_to_string(operator::token_path(&config.data_dir))?
            .trim()
            .to_string(),
    };
    let cookie = format!("{COOKIE}={token}");
    let deep_page = (world.agents / 100 / 2).clamp(1, 50);
    // The busy agent's second page of transactions ("older →").
    let older = store
        .history(subjects.busy, Newest::first(50))
        .await?
        .last()
        .map_or(1, |t| t.id);
    let pages: Vec<(&'static str, String)> = vec![
        ("attention", "/console".into()),
        ("agents", "/console/agents".into()),
        ("agents_by_balance", "/console/agents?sort=balance".into()),
        (
            "agents_deep_page",
            format!("/console/agents?page={deep_page}"),
        ),
        ("agent_busy", format!("/console/agents/{}", subjects.busy.0)),
        (
            "agent_busy_older",
            format!(
                "/console/agents/{}?transactions_before={older}",
                subjects.busy.0
            ),
        ),
        (
            "agent_lineage_root",
            format!("/console/agents/{}", subjects.big_root.0),
        ),
        (
            "execution",
            format!("/console/executions/{}", subjects.execution.0),
        ),
        ("market", "/console/market".into()),
        ("economy", "/console/economy".into()),
    ];
    let server = LocalServer::start(store.clone(), config.clone()).await?;
    let host = server.addr.to_string();
    let mut sender = connect(server.addr).await?;
    let mut latencies = vec![Vec::with_capacity(opts.rounds); pages.len()];
    let mut bytes = vec![0; pages.len()];
    for round in 0..opts.warmup_rounds + opts.rounds.max(1) {
        for (i, (_, path)) in pages.iter().enumerate() {
            let (took, size) = fetch(&mut sender, &host, &cookie, path).await?;
            if round >= opts.warmup_rounds {
                latencies[i].push(took);
                bytes[i] = size;
            }
        }
    }
    server.stop().await?;
    let pages = pages
        .into_iter()
        .zip(latencies)
        .zip(bytes)
        .map(|(((name, path), mut l), bytes)| {
            l.sort_unstable();
            PageFigures {
                name,
                path,
                bytes,
                p50: percentile(&l, 0.50),
                p99: percentile(&l, 0.99),
                max: l.last().copied().unwrap_or_default(),
            }
        })
        .collect();
    let backend = store.backend().as_str();
    store.close().await;
    Ok(ConsoleFigures {
        backend,
        world,
        rounds: opts.rounds.max(1),
        pages,
    })
}
