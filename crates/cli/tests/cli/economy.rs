//! A living economy through `agora up` (SPEC §8, §9): the genesis agent executing
//! cycle after cycle and earning from a scripted human, spawning children that run
//! on their own bids, law 2 and expiry killing agents, the loop never waiting for the
//! human, docker executions in real containers, and SIGKILLs at random moments that
//! leave the ledger exact and nothing behind.

use super::{agora, http, stdout, wait_at_most, Up};
use serde_json::{json, Value};
use sqlx::Connection;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request with an optional JSON body; the status and the JSON answer
/// (Null when the body is not JSON).
pub fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Installs the shipped genesis agent, with `strategy` merged into its
/// strategy.json, as the workspace of a world not yet started in `dir`: the first
/// start leaves a workspace that has files alone. Tests whose subject is not the
/// population's dynamics use it to keep genesis from spawning, so that no child can
/// outbid it into being culled on a slow machine.
pub fn seed_genesis(dir: &Path, strategy: &Value) -> std::path::PathBuf {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agents/genesis");
    let ws = dir.join("workspaces/agent-1");
    std::fs::create_dir_all(&ws).unwrap();
    for file in ["main.py", "services.py"] {
        std::fs::copy(template.join(file), ws.join(file)).unwrap();
    }
    let mut merged: Value =
        serde_json::from_str(&std::fs::read_to_string(template.join("strategy.json")).unwrap())
            .unwrap();
    for (k, v) in strategy.as_object().unwrap() {
        merged[k] = v.clone();
    }
    std::fs::write(ws.join("strategy.json"), merged.to_string()).unwrap();
    ws
}

/// A running world: `agora up` with the operator's view of it.
pub struct World {
    pub up: Up,
    pub addr: String,
    pub token: String,
}

impl World {
    /// `agora up` on the process backend with a 200 ms cycle, plus `args`/`env`.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> World {
        let mut all = vec!["--cycle-interval-ms", "200"];
        if !args.contains(&"--sandbox") {
            all.extend(["--sandbox", "process"]);
        }
        all.extend(args);
        let up = Up::start_with(dir, &all, env);
        let addr = up.addr();
        let token = std::fs::read_to_string(dir.join("operator.token"))
            .unwrap()
            .trim()
            .to_string();
        World { up, addr, token }
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, v) = call(&self.addr, "GET", path, &self.token, None);
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        call(&self.addr, "POST", path, &self.token, Some(body))
    }

    pub fn agent(&self, id: i64) -> Value {
        self.get(&format!("/admin/agents/{id}"))
    }

    fn agents(&self) -> Vec<Value> {
        self.get("/admin/agents?limit=1000")
            .as_array()
            .unwrap()
            .clone()
    }

    /// The scripted human: rates the active prompt, if any, with `score` on all
    /// three scales. Returns whether it rated one.
    fn rate_active(&self, score: i64) -> bool {
        let q = self.get("/human/queue");
        let Some(id) = q["active"]["id"].as_i64() else {
            return false;
        };
        let (status, v) = self.post(
            "/human/reward",
            &json!({"prompt_id": id, "interesting": score, "useful": score,
                    "understandable": score, "reason": "scripted human"}),
        );
        // The prompt can expire or be rated between the two requests.
        assert!(
            status == 200 || status == 201 || status == 409,
            "reward: {status} {v}"
        );
        status != 409
    }

    /// Polls `done` every 100 ms (rating prompts when `human` is set) until it holds;
    /// fails with `what` after `limit`.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        human: Option<i64>,
        mut done: impl FnMut(&World) -> bool,
    ) {
        let start = Instant::now();
        while !done(self) {
            if let Some(score) = human {
                self.rate_active(score);
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; {}",
                self.summary()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The world in a few lines, for failure messages: each agent's status, death
    /// reason, executions and balance, and genesis's newest executions.
    pub fn summary(&self) -> String {
        let mut out = format!("world at cycle {}:", self.cycle());
        for a in self.agents() {
            let g = &a["agent"];
            out.push_str(&format!(
                "\n  agent {} {} {} after {} executions, {} cr available",
                g["id"],
                g["status"],
                g["death_reason"],
                g["execution_count"],
                a["balance"]["available"]
            ));
        }
        for e in self.agent(1)["executions"]
            .as_array()
            .into_iter()
            .flatten()
            .take(5)
        {
            out.push_str(&format!(
                "\n  genesis execution {} (cycle {}): {} {}",
                e["id"], e["cycle"], e["status"], e["termination_reason"]
            ));
        }
        out
    }

    /// The last cycle that began, from `/metrics`.
    fn cycle(&self) -> i64 {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .find(|l| l.starts_with("agora_current_cycle "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no agora_current_cycle in /metrics")) as i64
    }
}

fn balance(agent: &Value) -> f64 {
    agent["balance"]["balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn executions(agent: &Value) -> i64 {
    agent["agent"]["execution_count"].as_i64().unwrap()
}

fn audit_clean(dir: &Path) {
    let o = agora(dir, &["audit"]);
    assert!(
        o.status.success() && stdout(&o).contains("audit clean"),
        "{}",
        stdout(&o)
    );
}

fn docker_available() -> bool {
    let ok = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || std::env::var_os("AGORA_REQUIRE_DOCKER").is_none(),
        "Docker is required (AGORA_REQUIRE_DOCKER is set) but does not answer"
    );
    ok
}

#[test]
fn genesis_lives_on_the_process_backend_and_earns_from_the_human() {
    let dir = tempfile::tempdir().unwrap();
    // Spawning is another test's subject; here a child could outbid genesis for
    // the CPU until its bid expires (a cull) before it reached ten executions.
    seed_genesis(dir.path(), &json!({"spawn": false}));
    let w = World::start(dir.path(), &[], &[]);
    let rated = std::cell::Cell::new(0);
    w.wait_for(
        "10 executions of genesis",
        Duration::from_secs(120),
        None,
        |w| {
            if w.rate_active(10) {
                rated.set(rated.get() + 1);
            }
            executions(&w.agent(1)) >= 10
        },
    );
    let g = w.agent(1);
    assert_eq!(g["agent"]["status"], "alive", "{g}");
    assert!(rated.get() >= 1, "genesis prompted the human at least once");
    // Each well-rated prompt mints 1,500 credits; what genesis spent on ten
    // executions and its prompts is far less.
    assert!(balance(&g) > 1000.0, "balance rose: {g}");
    let earned: f64 = g["agent"]["total_credits_earned"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(earned >= 1500.0, "{g}");
    let out = w.up.interrupt();
    assert!(out.contains("backend=process"), "{out}");
    audit_clean(dir.path());
    // A clean stop leaves nothing scheduled or running.
    let log = std::fs::read_to_string(dir.path().join("system.log")).unwrap();
    assert!(
        log.contains("[genesis]"),
        "the agent's reasoning is in system.log"
    );
    assert!(log.contains("cycle 1:"), "one line per cycle");
}

#[test]
fn genesis_spawns_children_that_live_on_their_own_bids() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(dir.path(), &[], &[]);
    w.wait_for(
        "3 agents alive at once, a child executed, a transfer between agents",
        Duration::from_secs(240),
        Some(10),
        |w| {
            let agents = w.agents();
            let alive = agents
                .iter()
                .filter(|a| a["agent"]["status"] == "alive")
                .count();
            let child_ran = agents.iter().any(|a| {
                a["agent"]["parent"].is_i64() && a["agent"]["execution_count"].as_i64() > Some(0)
            });
            let transfers = w.get("/admin/transactions?limit=1000");
            let transferred = transfers
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["kind"] == "transfer");
            alive >= 3 && child_ran && transferred
        },
    );
    // The children woke on bids they (or their parent, at spawn) placed.
    let child = w
        .agents()
        .into_iter()
        .find(|a| a["agent"]["parent"] == 1 && a["agent"]["execution_count"].as_i64() > Some(0))
        .unwrap();
    let detail = w.agent(child["agent"]["id"].as_i64().unwrap());
    assert!(
        detail["executions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["status"] == "succeeded"),
        "{detail}"
    );
    w.up.interrupt();
    audit_clean(dir.path());
}

#[test]
fn law_two_and_expiry_kill_agents() {
    let dir = tempfile::tempdir().unwrap();
    // Memory supply 1000 MB: a bundle of 2000 MB is valid but never fits.
    let w = World::start(
        dir.path(),
        &[],
        &[
            ("AGORA_MARKET__MEMORY_MB__SUPPLY", "1000"),
            ("AGORA_ECONOMY__BID_TTL_CYCLES", "5"),
        ],
    );
    let create = |files: Value, memory: u64| {
        let (status, v) = w.post(
            "/admin/agents",
            &json!({"files": files,
                    "initial_credits": "500",
                    "bid": {"bundle": {"cpu_seconds": 0.5, "memory_mb": memory}, "amount": "300"}}),
        );
        assert_eq!(status, 201, "{v}");
        v["agent"]["id"]
            .as_i64()
            .or_else(|| v["id"].as_i64())
            .unwrap_or_else(|| panic!("{v}"))
    };
    let main = |code: &str| json!({"path": "main.py", "content": code});
    let quitter = create(json!([main("print('leaving without a bid')\n")]), 64);
    let stranded = create(json!([main("print('never runs')\n")]), 2000);
    // A workspace that cannot be started is the agent's failure, not the runtime's:
    // no refund, no restored bid, so it dies like one that crashed.
    let broken = create(
        json!([main("pass\n"), {"path": "agent.toml", "content": "command = 5\n"}]),
        64,
    );
    w.wait_for("all three dead", Duration::from_secs(60), None, |w| {
        [quitter, stranded, broken]
            .iter()
            .all(|a| w.agent(*a)["agent"]["status"] == "dead")
    });
    let b = w.agent(broken);
    assert_eq!(b["agent"]["death_reason"], "no_bid", "{b}");
    let e = &b["executions"][0];
    assert_eq!(e["status"], "failed", "{b}");
    assert!(
        e["termination_reason"]
            .as_str()
            .unwrap()
            .contains("agent.toml"),
        "{b}"
    );
    assert_eq!(
        balance(&b),
        200.0,
        "paid 300 for the execution, nothing refunded"
    );
    let q = w.agent(quitter);
    assert_eq!(q["agent"]["death_reason"], "no_bid", "{q}");
    assert_eq!(executions(&q), 1, "{q}");
    let s = w.agent(stranded);
    assert_eq!(executions(&s), 0, "{s}");
    assert_eq!(s["agent"]["death_reason"], "culled", "{s}");
    assert!(
        s["bids"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "expired"),
        "{s}"
    );
    w.up.interrupt();
    audit_clean(dir.path());
}

#[test]
fn the_loop_never_waits_for_the_human() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(dir.path(), &[], &[]);
    // Wait until genesis has a prompt in front of the human, and never rate it.
    w.wait_for("a prompt waiting", Duration::from_secs(60), None, |w| {
        w.get("/human/queue")["active"].is_object()
    });
    let (c0, t0) = (w.cycle(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (c1, dt) = (w.cycle(), t0.elapsed());
    let expected = dt.as_millis() as i64 / 200;
    assert!(
        c1 - c0 >= expected * 7 / 10,
        "{} cycles in {dt:?} with a 200 ms interval while a prompt waited",
        c1 - c0
    );
    assert!(w.get("/human/queue")["active"].is_object(), "still unrated");
    w.up.interrupt();
}

#[test]
fn genesis_executes_in_real_containers() {
    if !docker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(dir.path(), &["--sandbox", "docker"], &[]);
    w.wait_for(
        "3 executions in containers",
        Duration::from_secs(180),
        Some(10),
        |w| executions(&w.agent(1)) >= 3,
    );
    let g = w.agent(1);
    assert_eq!(g["agent"]["status"], "alive", "{g}");
    let id = g["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "succeeded")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, log) = http(
        &w.addr,
        "GET",
        &format!("/admin/executions/{id}/log"),
        Some(&w.token),
    );
    assert_eq!(status, 200, "{log}");
    assert!(
        log.contains("backend=docker") && log.contains("[genesis]"),
        "{log}"
    );
    let out = w.up.interrupt();
    assert!(out.contains("backend=docker"), "{out}");
    audit_clean(dir.path());
    assert_no_leftovers(dir.path());
}

/// No container labelled with this world and no agent process is left.
fn assert_no_leftovers(dir: &Path) {
    let ws = dir.join("workspaces");
    let ps = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    let procs = String::from_utf8_lossy(&ps.stdout);
    let left: Vec<&str> = procs
        .lines()
        .filter(|l| l.contains("main.py") && l.contains(&*ws.to_string_lossy()))
        .collect();
    assert!(left.is_empty(), "agent processes left: {left:?}");
    if Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        let instance = agora_server::orchestrator::backend::instance_name(dir);
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=agora.instance={instance}"),
            ])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "containers left for {instance}"
        );
    }
}

/// SIGKILLs `agora up` at pseudo-random moments across the cycle's phases, `rounds`
/// times, restarting it each time; the ledger stays exact, nothing is left scheduled or
/// running, no agent process or container survives, and the economy carries on.
/// Waits until system.log, read from byte `from`, holds `n` cycle lines that
/// allocated at least one execution (a tight poll: the launch that follows takes
/// only milliseconds), or 3 s when nothing is allocated.
fn wait_for_allocating_cycles(log: &Path, from: u64, n: u64) {
    let start = Instant::now();
    loop {
        let mut text = Vec::new();
        if let Ok(mut f) = std::fs::File::open(log) {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(from)).unwrap();
            f.read_to_end(&mut text).unwrap();
        }
        let fresh = String::from_utf8_lossy(&text);
        let seen = fresh
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["component"] == "orchestrator")
            .filter_map(|l| l["message"].as_str().map(str::to_string))
            .filter(|m| {
                m.starts_with("cycle ")
                    && m.split(", ")
                        .find_map(|part| part.strip_suffix(" allocated"))
                        .and_then(|k| k.rsplit(' ').next()?.parse::<u64>().ok())
                        .is_some_and(|k| k > 0)
            })
            .count() as u64;
        if seen >= n {
            return;
        }
        // A world where nobody bids any more (genesis may have died of its
        // debts) allocates nothing: kill it anyway after 15 cycles.
        if start.elapsed() > Duration::from_secs(3) {
            return;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn crash_repeatedly(sandbox: &str, rounds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--sandbox", sandbox];
    // Genesis starts rich enough that no run of unlucky ratings can starve it
    // during the test: its death would then be the crashes' doing, which must never
    // happen (a lost execution is refunded and its bid restored).
    let env = [("AGORA_ECONOMY__INITIAL_GENESIS_CREDITS", "1000000")];
    // Alone: no child competes with genesis for the market's two CPU seconds.
    let ws = seed_genesis(dir.path(), &json!({"spawn": false}));
    // Warm up: the world exists and genesis has executed once.
    let w = World::start(dir.path(), &args, &env);
    assert_eq!(w.agent(1)["workspace"], ws.display().to_string());
    w.wait_for("a first execution", Duration::from_secs(120), None, |w| {
        executions(&w.agent(1)) >= 1
    });
    w.up.interrupt();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for round in 0..rounds {
        let log = dir.path().join("system.log");
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut w = World::start(dir.path(), &args, &env);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if round % 2 == 0 {
            // Aimed at the moment a winner is paid for but not yet started: the
            // cycle's summary line is written once its allocations are committed,
            // and the launch (socket, token, spawn, start record) takes some
            // milliseconds after it. Kill on the first to third such line.
            let nth = seed % 3 + 1;
            wait_for_allocating_cycles(&log, log_start, nth);
        } else {
            // Anywhere, mostly while executions run.
            std::thread::sleep(Duration::from_millis(seed % 1300));
        }
        if round % 3 == 0 {
            w.rate_active(10);
        }
        w.up.child.kill().unwrap(); // SIGKILL
        wait_at_most(&mut w.up.child, Duration::from_secs(10));
        audit_clean(dir.path());
    }
    // The economy carries on after the last crash: genesis lived through every
    // kill and executes again.
    let w = World::start(dir.path(), &args, &env);
    let before = executions(&w.agent(1));
    w.wait_for(
        "genesis executing again",
        Duration::from_secs(120),
        None,
        |w| {
            let g = w.agent(1);
            assert_eq!(g["agent"]["status"], "alive", "{}", w.summary());
            executions(&g) > before
        },
    );
    w.up.interrupt();
    audit_clean(dir.path());
    assert_no_leftovers(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("agora.db").display()
        );
        let store = agora_server::store::Store::open(&url).await.unwrap();
        let active = store.active_executions().await.unwrap();
        assert!(active.is_empty(), "stuck executions: {active:?}");
        store.close().await;
        // The kills did land while executions were scheduled or running.
        let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
        let lost: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'lost'")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert!(lost > 0, "no kill hit an execution");
        let scheduled: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM executions WHERE status = 'lost' AND started_at IS NULL",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        eprintln!("{lost} executions lost to the kills, {scheduled} of them unstarted");
        // In the long run, some kills landed between a winner's payment and its
        // start: inside a cycle or right after it. Those were refunded (the audit
        // checked it). A few rounds (docker) need not hit one.
        assert!(
            scheduled > 0 || rounds < 20,
            "no kill hit an allocated, unstarted execution"
        );
    });
}

#[test]
fn sigkill_at_random_moments_leaves_the_economy_exact_on_the_process_backend() {
    crash_repeatedly("process", 24);
}

#[test]
fn sigkill_with_containers_running_leaves_none_behind() {
    if !docker_available() {
        return;
    }
    crash_repeatedly("docker", 6);
}

#[test]
fn up_prints_where_everything_is() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(dir.path(), &[], &[]);
    let out = w.up.interrupt();
    for what in [
        "System Service: http://",
        "system log:",
        "operator token:",
        "sandbox:",
        "LLM proxy:",
        "genesis:",
    ] {
        assert!(out.contains(what), "{what} in {out}");
    }
    // A restart resumes the same world.
    let w = World::start(dir.path(), &[], &[]);
    let out = w.up.interrupt();
    assert!(out.contains("genesis:   agent 1 (resumed)"), "{out}");
}

/// A minimal OpenAI-shaped upstream on a free loopback port: `/v1/models` and a
/// non-streaming `/v1/chat/completions` whose answer and usage are fixed. Returns
/// its base URL and a counter of completions served.
fn mock_llm() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = if request_line.contains("/v1/models") {
                json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]})
            } else {
                count.fetch_add(1, Ordering::SeqCst);
                json!({"id": "c1", "object": "chat.completion", "model": "mock-model",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant",
                                                "content": "Why prices fall\nIdle markets get cheaper every cycle."}}],
                       "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132}})
            }
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (base, served)
}

#[test]
fn genesis_writes_with_the_llm_through_the_proxy() {
    let (base, served) = mock_llm();
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(
        dir.path(),
        &[],
        &[
            ("AGORA_LLM__BASE_URL", &base),
            ("AGORA_LLM__API_KEY_ENV", ""),
        ],
    );
    w.wait_for(
        "a prompt written by the LLM",
        Duration::from_secs(60),
        None,
        |w| {
            let q = w.get("/human/queue");
            std::iter::once(&q["active"])
                .chain(q["pending"].as_array().unwrap().iter())
                .any(|p| {
                    p["content"]["kind"] == "llm" && p["content"]["title"] == "Why prices fall"
                })
        },
    );
    assert!(served.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let out = w.up.interrupt();
    assert!(
        out.contains(&format!("LLM proxy: {base}")) || out.contains(&base),
        "{out}"
    );
    audit_clean(dir.path());
}
