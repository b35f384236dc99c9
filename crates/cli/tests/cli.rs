//! The `agora` binary end to end: help, `up` until Ctrl-C, `audit` clean and after
//! tampering, `config` errors, and the benchmark's last line.

#![allow(clippy::unwrap_used)]

use sqlx::{Connection, Executor};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
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
    for cmd in ["up", "audit", "config", "bench"] {
        assert!(stdout(&top).contains(cmd), "--help lists {cmd}");
        let o = agora(dir.path(), &[cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help");
        assert!(stdout(&o).len() > 80, "{cmd} --help says something");
    }
    for b in ["clearing", "ledger"] {
        assert!(agora(dir.path(), &["bench", b, "--help"]).status.success());
    }
}

/// Starts `agora up`, waits for it to be ready, interrupts it like Ctrl-C.
fn up_then_interrupt(data_dir: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("up")
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
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "agora up never got ready"
        );
    }
    let status = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    seen.push_str(&rest);
    assert!(
        child.wait().unwrap().success(),
        "agora up exits 0 on Ctrl-C: {seen}"
    );
    seen
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
    assert!(
        second.contains("agent 1 (resumed), balance 1000 credits"),
        "{second}"
    );

    let log = std::fs::read_to_string(dir.path().join("logs/agora.log")).unwrap();
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
