//! The `agora` binary end to end: help, `up` serving the System Service until
//! Ctrl-C, the operator token and its rotation, `audit` clean and after tampering,
//! `config` errors, and the benchmark's last line.

#![allow(clippy::unwrap_used)]

mod benches;
mod console;
mod economy;
mod observability;
mod terminal;

use sqlx::{Connection, Executor};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn agora(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_command_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let top = agora(dir.path(), &["--help"]);
    assert!(top.status.success());
    for cmd in [
        "up", "audit", "config", "token", "bench", "human", "status", "agents", "events",
    ] {
        assert!(stdout(&top).contains(cmd), "--help lists {cmd}");
        let o = agora(dir.path(), &[cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help");
        assert!(stdout(&o).len() > 80, "{cmd} --help says something");
    }
    assert!(agora(dir.path(), &["events", "export", "--help"])
        .status
        .success());
    for b in ["clearing", "ledger", "console"] {
        assert!(agora(dir.path(), &["bench", b, "--help"]).status.success());
    }
    assert!(agora(dir.path(), &["token", "rotate", "--help"])
        .status
        .success());
}

/// A running `agora up`, its System Service on a free loopback port.
struct Up {
    child: Child,
    out: BufReader<ChildStdout>,
    /// What it printed so far.
    seen: String,
}

impl Up {
    /// Starts `agora up --listen 127.0.0.1:0 --sandbox process` and waits until it
    /// says it is ready.
    fn start(data_dir: &Path) -> Up {
        Up::start_with(data_dir, &["--sandbox", "process"], &[])
    }

    /// Starts `agora up --listen 127.0.0.1:0` with more arguments and environment,
    /// and waits until it says it is ready.
    fn start_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["up", "--listen", "127.0.0.1:0"])
            .args(args)
            .env(
                "AGORA_ORCHESTRATOR__AGENT_UID_BASE",
                uid_base(data_dir).to_string(),
            )
            .envs(env.iter().copied())
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let start = Instant::now();
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "agora up ended early: {seen}"
            );
            seen.push_str(&line);
            if line.contains("Press Ctrl-C") {
                break;
            }
            // The first docker start builds the runtime image.
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "agora up never got ready"
            );
        }
        Up { child, out, seen }
    }

    /// The address of the System Service, as `agora up` printed it.
    fn addr(&self) -> String {
        let line = self
            .seen
            .lines()
            .find(|l| l.contains("System Service: http://"))
            .unwrap_or_else(|| panic!("no System Service line: {}", self.seen));
        let url = line.split("http://").nth(1).unwrap();
        url.split_whitespace().next().unwrap().to_string()
    }

    /// Interrupts it like Ctrl-C; it must exit 0 within 30 s. Returns all it printed.
    fn interrupt(mut self) -> String {
        let status = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let exit = wait_at_most(&mut self.child, Duration::from_secs(30));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        self.seen.push_str(&rest);
        assert!(exit.success(), "agora up exits 0 on Ctrl-C: {}", self.seen);
        self.seen
    }
}

/// A uid range of its own for each world the tests start, so that worlds running
/// side by side as root (nextest runs each test in its own process) never sweep
/// each other's agents; the same data dir keeps its range across restarts.
fn uid_base(data_dir: &Path) -> u32 {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BASES: Mutex<Option<HashMap<std::path::PathBuf, u32>>> = Mutex::new(None);
    let mut bases = BASES.lock().unwrap();
    let bases = bases.get_or_insert_with(HashMap::new);
    let slot = (std::process::id() % 100_000) * 16 + bases.len() as u32 % 16;
    *bases
        .entry(data_dir.to_path_buf())
        .or_insert(1_000_000 + slot * 1000)
}

/// Waits for a child to exit, killing it and failing the test after `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `agora up`, waits for it to be ready, interrupts it like Ctrl-C.
fn up_then_interrupt(data_dir: &Path) -> String {
    Up::start(data_dir).interrupt()
}

/// Sends one HTTP/1.1 request and returns the status and body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The operator token in a text, if any.
fn token_in(text: &str) -> Option<String> {
    let at = text.find("agora_o_")?;
    Some(
        text[at..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap()
            .to_string(),
    )
}

#[test]
fn up_serves_the_api_and_shows_the_operator_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path());
    let addr = up.addr();
    assert!(addr.starts_with("127.0.0.1:"), "{}", up.seen);
    assert!(up.seen.contains("(OpenAPI: /openapi.json)"), "{}", up.seen);
    assert!(
        up.seen.contains(&format!(
            "console:   http://{addr}/console (sign in with the operator token)"
        )),
        "{}",
        up.seen
    );
    assert!(
        up.seen.contains(&format!(
            "system log: {}",
            dir.path().join("system.log").display()
        )),
        "{}",
        up.seen
    );
    let token = token_in(&up.seen).expect("the new operator token is printed");
    let file = dir.path().join("operator.token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let (status, body) = http(&addr, "GET", "/healthz", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"ok""#), "{body}");
    let (status, body) = http(&addr, "GET", "/openapi.json", None);
    assert_eq!(status, 200);
    assert!(body.contains("/admin/agents"));
    let (status, body) = http(&addr, "GET", "/admin/audit", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""clean":true"#), "{body}");
    assert_eq!(http(&addr, "GET", "/admin/audit", None).0, 401);

    // A live event stream stays open; stopping does not wait for it forever.
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /admin/events/stream?after=0 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut stream, &mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let first = up.interrupt();
    assert!(first.contains("stopped cleanly"), "{first}");
    drop(stream);

    let second = up_then_interrupt(dir.path());
    assert_eq!(
        token_in(&second),
        None,
        "the token is shown only once: {second}"
    );
    assert!(
        second.contains(&format!("operator token: in {}", file.display())),
        "{second}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
}

#[test]
fn token_rotate_takes_effect_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path());
    let addr = up.addr();
    let old = token_in(&up.seen).unwrap();
    assert_eq!(http(&addr, "GET", "/admin/agents", Some(&old)).0, 200);

    let o = agora(dir.path(), &["token", "rotate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    let new = token_in(
        text.lines()
            .find(|l| l.starts_with("new operator token: "))
            .unwrap(),
    )
    .unwrap();
    assert_ne!(new, old);
    let file = dir.path().join("operator.token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), new);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let (status, body) = http(&addr, "GET", "/admin/agents", Some(&old));
    assert_eq!(status, 401, "the old token is refused at once: {body}");
    assert_eq!(http(&addr, "GET", "/admin/agents", Some(&new)).0, 200);
    up.interrupt();

    let missing = dir.path().join("nowhere");
    let o = agora(&missing, &["token", "rotate"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("run `agora up` first"));
    assert!(!missing.exists());
}

#[test]
fn up_on_a_port_in_use_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["up", "--listen", &addr])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_at_most(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot listen on {addr}: the address is already in use"
        )),
        "{err}"
    );
    // Refused before anything was created.
    assert!(!dir.path().join("agora.db").exists());
    drop(taken);
}

#[tokio::test]
async fn up_bootstraps_once_and_audit_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let first = up_then_interrupt(dir.path());
    assert!(
        first.contains("genesis:   agent 1 (created), balance 1000 credits, 50 held"),
        "{first}"
    );
    assert!(first.contains("stopped cleanly"), "{first}");
    let second = up_then_interrupt(dir.path());
    // Resumed, not created again (genesis may have executed in between).
    assert!(second.contains("genesis:   agent 1 (resumed)"), "{second}");

    let log = std::fs::read_to_string(dir.path().join("system.log")).unwrap();
    assert_eq!(log.matches("world open").count(), 2, "{log}");
    assert!(log.contains("shutting down"), "{log}");

    let clean = agora(dir.path(), &["audit"]);
    assert!(clean.status.success(), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("audit clean"));

    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", dir.path().join("agora.db").display());
    let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
    c.execute("UPDATE accounts SET balance = balance + 5 WHERE kind = 'burn'")
        .await
        .unwrap();
    c.close().await.unwrap();
    let broken = agora(dir.path(), &["audit"]);
    assert_eq!(broken.status.code(), Some(1));
    let text = stdout(&broken);
    assert!(text.contains("VIOLATION balance_mismatch: burn"), "{text}");
    assert!(text.contains("VIOLATION sum_not_zero"), "{text}");
}

#[test]
fn audit_without_a_world_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let o = agora(dir.path(), &["audit"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("run `agora up` first"));
}

#[test]
fn config_prints_the_layers_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agora.toml"), "[economy]\nspawn_cost = 3\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("config")
        .env("AGORA_ECONOMY__MESSAGE_COST", "0.5")
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("spawn_cost = \"3\""), "{text}");
    assert!(text.contains("message_cost = \"0.5\""), "{text}");
    std::fs::write(dir.path().join("agora.toml"), "[economy]\nspawn_cots = 3\n").unwrap();
    let o = agora(dir.path(), &["config"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("spawn_cots"));
}

#[test]
fn clearing_bench_prints_its_figure_last() {
    let dir = tempfile::tempdir().unwrap();
    let o = agora(
        dir.path(),
        &["bench", "clearing", "--bids", "2000", "--runs", "3"],
    );
    assert!(o.status.success());
    let text = stdout(&o);
    let last = text.lines().last().unwrap();
    let ms: f64 = last
        .strip_prefix("clearing_2k_ms=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms > 0.0);
}

/// How many transfers the database holds, read behind the store's back.
async fn count_transfers(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let Ok(mut c) = sqlx::AnyConnection::connect(url).await else {
        return 0;
    };
    // The tables do not exist until the child has migrated the database.
    let n = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM transfers")
        .fetch_one(&mut c)
        .await
        .unwrap_or(0);
    c.close().await.ok();
    n
}

/// SIGKILLs `agora bench ledger` (8 tasks with transfers in flight) four times, each
/// once more money has moved, and audits the database after each: a crash never
/// creates or loses a credit, and the store opens again after it. The kill point is
/// chosen by progress, not by time, so a slow machine cannot make it miss.
fn crash_during_transfers(url: &str, audit_dir: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut transfers_before = 0;
    for (round, more) in [20i64, 150, 400, 1000].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .args([
                "bench",
                "ledger",
                "--transfers",
                "10000000",
                "--database-url",
                url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while rt.block_on(count_transfers(url)) < transfers_before + more {
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: the benchmark ended before the kill"
            );
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "round {round}: no progress"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL, mid-flight
        child.wait().unwrap();
        let audit = agora(audit_dir, &["audit", "--database-url", url]);
        let text = stdout(&audit);
        assert!(
            audit.status.success() && text.contains("audit clean"),
            "round {round}: {text}"
        );
        let transfers = rt.block_on(count_transfers(url));
        assert!(transfers >= transfers_before + more, "round {round}");
        transfers_before = transfers;
    }
}

#[test]
fn a_killed_process_leaves_the_sqlite_ledger_exact() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("crash.db").display()
    );
    crash_during_transfers(&url, dir.path());
}

#[test]
fn a_killed_process_leaves_the_postgres_ledger_exact() {
    let Ok(admin) = std::env::var("AGORA_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("AGORA_REQUIRE_POSTGRES").is_none(),
            "PostgreSQL required"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = format!("agora_crash_{}", std::process::id());
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&admin).await.unwrap();
        c.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
            .await
            .unwrap();
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    crash_during_transfers(&format!("{base}/{name}"), dir.path());
    rt.block_on(async {
        let mut c = sqlx::AnyConnection::connect(&admin).await.unwrap();
        c.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
    });
}
