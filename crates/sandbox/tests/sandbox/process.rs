//! The process backend: rlimits, deadline, process-group kill, cleared environment,
//! and, where bubblewrap is installed, the same boundary checks as docker. Tests of
//! bubblewrap's boundaries fail (rather than skip) when `AGORA_REQUIRE_BWRAP` is set.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use agora_core::lifecycle::ExecutionStatus;
use agora_sandbox::process::BwrapMode;
use agora_sandbox::{ExecutionSandbox, LogStream, ProcessOptions, ProcessSandbox};

use super::docker::{
    check_rules_read_only, check_service_answers, check_writes, ALLOCATE, BUSY, FILL_TMP,
    FORK_BOMB, PRIVILEGES,
};
use super::helpers::*;

fn sandbox() -> ProcessSandbox {
    ProcessSandbox::new(ProcessOptions::default()).unwrap()
}

fn bare() -> ProcessSandbox {
    ProcessSandbox::new(ProcessOptions {
        bwrap: BwrapMode::Off,
        ..ProcessOptions::default()
    })
    .unwrap()
}

/// The bubblewrap sandbox, or `None` (skip) when bwrap is missing and not required.
fn bwrapped() -> Option<ProcessSandbox> {
    match ProcessSandbox::new(ProcessOptions {
        bwrap: BwrapMode::Required,
        ..ProcessOptions::default()
    }) {
        Ok(s) => Some(s),
        Err(e) if std::env::var_os("AGORA_REQUIRE_BWRAP").is_none() => {
            eprintln!("skipping bubblewrap test: {e}");
            None
        }
        Err(e) => panic!("AGORA_REQUIRE_BWRAP is set: {e}"),
    }
}

#[tokio::test]
async fn environment_is_cleared_and_cwd_is_the_workspace() {
    // cargo sets this for the test process; it must not leak into the agent.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let script = r#"
import os
print("leaked=%s" % ("CARGO_MANIFEST_DIR" in os.environ))
print("agent_id=" + os.environ.get("AGENT_ID", "missing"))
print("unbuffered=" + os.environ.get("PYTHONUNBUFFERED", "0"))
print("has_main=%s" % os.path.exists("main.py"))
"#;
    for sb in [sandbox(), bare()] {
        let mut case = Case::new(script);
        case.spec
            .env
            .push(("AGENT_ID".into(), case.spec.agent.to_string()));
        let run = case.run(&sb).await;
        assert_eq!(
            run.outcome.status,
            ExecutionStatus::Succeeded,
            "{}",
            run.dump()
        );
        assert_eq!(run.value("leaked"), "False");
        assert_eq!(run.value("agent_id"), case.spec.agent.to_string());
        assert_eq!(run.value("unbuffered"), "1");
        assert_eq!(run.value("has_main"), "True");
    }
}

#[tokio::test]
async fn rlimits_are_set() {
    let script = r#"
for line in open("/proc/self/limits").read().splitlines()[1:]:
    name = line[:26].strip().replace(" ", "_")
    soft = line[26:47].strip()
    print(name + "=" + soft)
"#;
    let mut case = Case::new(script);
    case.spec.limits.memory_mb = 200;
    case.spec.limits.cpu_millis = 2_500;
    case.spec.limits.pids = 40;
    case.spec.limits.nofile = 77;
    let run = case.run(&sandbox()).await;
    assert_eq!(
        run.value("Max_address_space"),
        (200u64 << 20).to_string(),
        "{}",
        run.dump()
    );
    assert_eq!(run.value("Max_cpu_time"), "3");
    assert_eq!(run.value("Max_processes"), "40");
    assert_eq!(run.value("Max_open_files"), "77");
    assert_eq!(run.value("Max_core_file_size"), "0");
}

#[tokio::test]
async fn sleeping_past_the_deadline_is_timed_out() {
    let mut case = Case::new("import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n");
    case.spec.limits.wall = Duration::from_millis(1500);
    let run = case.run(&sandbox()).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::TimedOut,
        "{}",
        run.dump()
    );
    assert!(run.elapsed >= Duration::from_millis(1500));
    assert!(run.elapsed < Duration::from_secs(8), "{}", run.dump());
}

/// Leaves a grandchild in the group and one that escaped it with setsid, then sleeps.
const SPAWNER: &str = r#"
import os, subprocess, time
# Markers come through the environment so that only the sleeps carry them in argv.
subprocess.Popen(["sleep", os.environ["IN_GROUP"]])
subprocess.Popen(["sleep", os.environ["ESCAPED"]], start_new_session=True)
print("spawned", flush=True)
time.sleep(120)
"#;

async fn check_group_kill(sb: ProcessSandbox, in_group_secs: u32, escaped_secs: u32) {
    // The markers carry this test process's pid, so that a sleep left on the host by
    // another run (an interrupted one, or a concurrent test binary) never counts.
    // The trailing `s` (GNU sleep's unit) ends the marker: `1.12s` is not in `1.123s`.
    let pid = std::process::id();
    let in_group = &format!("{in_group_secs}.{pid}s");
    let escaped = &format!("{escaped_secs}.{pid}s");
    let mut case = Case::new(SPAWNER);
    case.spec.env.push(("IN_GROUP".into(), in_group.into()));
    case.spec.env.push(("ESCAPED".into(), escaped.into()));
    case.spec.limits.wall = Duration::from_secs(3);
    let mut running = sb.launch(case.spec.clone()).await.unwrap();
    let mut logs = running.take_logs().unwrap();
    let mut seen = Vec::new();
    loop {
        match logs.recv().await {
            Some(l) if l.line == "spawned" => break,
            Some(l) => seen.push(l.line),
            None => panic!("the agent ended before spawning: {seen:?}"),
        }
    }
    // Control: the grandchildren really run, so their absence later means something.
    for marker in [in_group, escaped] {
        let found = host_processes_with(marker);
        assert_eq!(
            found.len(),
            1,
            "processes running `sleep {marker}`: {found:?}"
        );
    }
    drop(logs);
    let outcome = running.wait().await.unwrap();
    assert_eq!(outcome.status, ExecutionStatus::TimedOut);
    assert!(
        host_processes_with(in_group).is_empty(),
        "grandchild survived"
    );
    if is_root() {
        // Only a per-agent uid lets the sandbox find a process that left its group.
        assert!(
            host_processes_with(escaped).is_empty(),
            "setsid grandchild survived"
        );
    }
}

#[tokio::test]
async fn deadline_kills_the_whole_process_group_including_grandchildren() {
    check_group_kill(bare(), 301, 302).await;
}

#[tokio::test]
async fn deadline_kills_grandchildren_inside_bubblewrap() {
    let Some(sb) = bwrapped() else { return };
    check_group_kill(sb, 303, 304).await;
}

#[tokio::test]
async fn busy_loop_past_the_cpu_budget_is_cpu_exceeded() {
    let mut case = Case::new(BUSY);
    case.spec.limits.cpu_millis = 600;
    case.spec.limits.wall = Duration::from_secs(20);
    let run = case.run(&sandbox()).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::CpuExceeded,
        "{}",
        run.dump()
    );
    assert!(run.elapsed < Duration::from_secs(10), "{}", run.dump());
}

#[tokio::test]
async fn forked_workers_share_one_cpu_budget() {
    // RLIMIT_CPU alone would give each of 4 workers its own 1 s; the group check
    // must stop them together.
    let script = r#"
import os
for _ in range(3):
    if os.fork() == 0:
        break
while True:
    pass
"#;
    let mut case = Case::new(script);
    case.spec.limits.cpu_millis = 1_000;
    case.spec.limits.wall = Duration::from_secs(20);
    let run = case.run(&sandbox()).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::CpuExceeded,
        "{}",
        run.dump()
    );
    // Without the group check each worker would burn its own RLIMIT_CPU second
    // (about 4 s in all) before dying; the group check stops them near 1 s in total.
    let used = run.outcome.cpu_used_ms.unwrap();
    assert!(used < 2_500, "group used {used} ms: {}", run.dump());
}

#[tokio::test]
async fn allocating_twice_the_memory_limit_is_oom_killed() {
    let mut case = Case::new(ALLOCATE);
    case.spec.limits.memory_mb = 128;
    case.spec.command.push("256".into());
    let run = case.run(&sandbox()).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::OomKilled,
        "{}",
        run.dump()
    );
    assert!(!run.stdout().contains(&"allocated"));
}

#[tokio::test]
async fn fork_bomb_stops_at_the_process_limit() {
    let mut case = Case::new(FORK_BOMB);
    case.spec.limits.pids = 16;
    let run = case.run(&sandbox()).await;
    assert_eq!(run.value("limit_hit"), "True", "{}", run.dump());
    assert!(run.value("forked").parse::<u32>().unwrap() < 16);
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
}

#[tokio::test]
async fn runs_unprivileged_when_the_orchestrator_is_root() {
    if !is_root() {
        return;
    }
    for sb in [sandbox(), bare()] {
        let run = Case::new(PRIVILEGES).run(&sb).await;
        assert_ne!(run.value("uid"), "0", "{}", run.dump());
        assert_eq!(run.value("capeff"), "0000000000000000");
        assert_eq!(run.value("nonewprivs"), "1");
    }
}

#[tokio::test]
async fn isolation_is_reported_honestly() {
    // /proc/net/dev lists the interfaces of the process's network namespace (bwrap
    // mounts no /sys).
    let script = "ifs = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\nprint('ifaces=' + ','.join(sorted(ifs)))\n";
    // Without bubblewrap the report admits there is no network isolation, and indeed
    // the host's interfaces are visible.
    let sb = bare();
    assert!(!sb.isolation().network_isolated && !sb.isolation().filesystem_isolated);
    let run = Case::new(script).run(&sb).await;
    assert_ne!(run.value("ifaces"), "lo", "{}", run.dump());
    let first = &run.stream(LogStream::Sandbox)[0];
    assert!(first.contains("network_isolated=false"), "{first}");
    assert!(first.contains("bubblewrap not installed"), "{first}");
    assert!(!run.outcome.isolation.bwrap);

    let Some(sb) = bwrapped() else { return };
    assert!(sb.isolation().network_isolated && sb.isolation().pid_isolated);
    let run = Case::new(script).run(&sb).await;
    assert_eq!(run.value("ifaces"), "lo", "{}", run.dump());
    assert!(run.outcome.isolation.bwrap);
    assert!(run.stream(LogStream::Sandbox)[0].contains("bwrap=true"));
}

#[tokio::test]
async fn bwrap_host_ports_outside_addresses_and_dns_are_unreachable() {
    let Some(sb) = bwrapped() else { return };
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let mut targets = vec![format!("127.0.0.1:{port}")];
    targets.extend(host_ipv4s().into_iter().map(|a| format!("{a}:{port}")));
    let mut case = Case::new(TCP_PROBE);
    case.spec.command.extend(targets.iter().cloned());
    let run = case.run(&sb).await;
    for t in &targets {
        assert_ne!(run.value(t), "connected", "{t}: {}", run.dump());
    }
    assert_eq!(run.value("dns"), "failed");
    assert!(
        listener.accept().is_err(),
        "the host listener saw a connection"
    );

    // Control: the same probe without bubblewrap does reach the host's port.
    let mut case = Case::new(TCP_PROBE);
    case.spec.command.push(format!("127.0.0.1:{port}"));
    let run = case.run(&bare()).await;
    assert_eq!(
        run.value(&format!("127.0.0.1:{port}")),
        "connected",
        "{}",
        run.dump()
    );
}

#[tokio::test]
async fn system_service_answers_over_the_socket() {
    for sb in [sandbox(), bare()] {
        check_service_answers(&sb).await;
    }
}

#[tokio::test]
async fn bwrap_writes_outside_workspace_and_tmp_fail() {
    let Some(sb) = bwrapped() else { return };
    check_writes(&sb).await;
}

#[tokio::test]
async fn bwrap_game_rules_are_readable_but_read_only() {
    let Some(sb) = bwrapped() else { return };
    check_rules_read_only(&sb).await;
}

#[tokio::test]
async fn bwrap_tmp_is_size_limited() {
    let Some(sb) = bwrapped() else { return };
    let mut case = Case::new(FILL_TMP);
    case.spec.limits.tmp_mb = 8;
    let run = case.run(&sb).await;
    assert_eq!(run.value("tmp"), "full", "{}", run.dump());
}

#[tokio::test]
async fn bwrap_hides_other_agents_and_the_host() {
    let Some(sb) = bwrapped() else { return };
    let other = Case::new("print('other')\n");
    let _other_server = serve_socket(other.socket_dir());
    let script = format!(
        r#"
import os
for p in [{ws}, {sock}, "/root", "/etc/passwd", "/etc/shadow", "/var/run/docker.sock"]:
    print(p + "=" + str(os.path.exists(p)))
pids = [p for p in os.listdir("/proc") if p.isdigit()]
print("pids=%d" % len(pids))
"#,
        ws = py_str(other.workspace()),
        sock = py_str(other.socket_dir()),
    );
    let run = Case::new(&script).run(&sb).await;
    for p in [other.workspace(), other.socket_dir()] {
        assert_eq!(run.value(&p.to_string_lossy()), "False", "{}", run.dump());
    }
    for p in [
        "/root",
        "/etc/passwd",
        "/etc/shadow",
        "/var/run/docker.sock",
    ] {
        assert_eq!(run.value(p), "False", "{p}: {}", run.dump());
    }
    // bwrap's init and the agent: the host's processes are not visible.
    assert!(
        run.value("pids").parse::<u32>().unwrap() <= 3,
        "{}",
        run.dump()
    );
}

#[tokio::test]
async fn another_agents_workspace_is_unreadable_without_bwrap_when_root() {
    if !is_root() {
        return;
    }
    // No mount namespace here: the per-agent uid and the 0700 workspace are the
    // boundary.
    let other = Case::new("print('other')\n");
    std::fs::write(other.workspace().join("secret.txt"), "s3cret").unwrap();
    let first = other.run(&bare()).await;
    assert_eq!(first.outcome.status, ExecutionStatus::Succeeded);
    let script = format!(
        "try:\n    open({}).read()\n    print('read=yes')\nexcept OSError:\n    print('read=no')\n",
        py_str(&other.workspace().join("secret.txt"))
    );
    let run = Case::new(&script).run(&bare()).await;
    assert_eq!(run.value("read"), "no", "{}", run.dump());
}

#[tokio::test]
async fn lines_stream_live_and_land_in_the_log_file() {
    let case = Case::new(
        "import sys, time\nprint('one')\nprint('err', file=sys.stderr)\ntime.sleep(2)\nprint('two')\n",
    );
    let t0 = std::time::SystemTime::now();
    let run = case.run(&sandbox()).await;
    assert_eq!(run.stdout(), ["one", "two"], "{}", run.dump());
    assert_eq!(run.stream(LogStream::Stderr), ["err"]);
    let one = run.lines.iter().find(|l| l.line == "one").unwrap();
    let two = run.lines.iter().find(|l| l.line == "two").unwrap();
    // "one" arrived as printed, not when the process ended two seconds later.
    assert!(two.at.duration_since(one.at).unwrap() >= Duration::from_millis(1900));
    assert!(one.at.duration_since(t0).unwrap() < Duration::from_millis(1800));
    let file = std::fs::read_to_string(case.log_path()).unwrap();
    assert!(
        file.contains(" stdout one\n") && file.contains(" stderr err\n"),
        "{file}"
    );
    assert!(file.contains("status=succeeded"), "{file}");
}

#[tokio::test]
async fn kill_switch_stops_an_execution() {
    let mut case = Case::new("import time\nprint('up', flush=True)\ntime.sleep(60)\n");
    case.spec.limits.wall = Duration::from_secs(60);
    let mut running = sandbox().launch(case.spec.clone()).await.unwrap();
    let mut logs = running.take_logs().unwrap();
    while let Some(l) = logs.recv().await {
        if l.line == "up" {
            break;
        }
    }
    running.kill_switch().kill();
    drop(logs);
    let outcome = tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(outcome.reason, "killed by the orchestrator");
}
