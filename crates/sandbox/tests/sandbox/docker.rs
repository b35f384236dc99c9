//! The docker backend against a real Docker Engine: each §6 boundary is crossed by a
//! script inside a container, and the container's fate is checked from outside.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use agora_core::lifecycle::ExecutionStatus;
use agora_sandbox::runtime_image::{self, BuildPreference};
use agora_sandbox::{ExecutionSandbox, ImageBuildMethod, LogStream, ReadonlyMount};

use super::helpers::*;

#[tokio::test]
async fn runtime_image_build_is_idempotent() {
    let Some(sb) = docker().await else { return };
    let mut lines = Vec::new();
    let again = agora_sandbox::build_runtime_image(
        sb.client(),
        BuildPreference::Offline,
        &mut |l: &str| lines.push(l.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(again.method, ImageBuildMethod::AlreadyPresent);
    assert!(again.elapsed < Duration::from_secs(5));
    assert!(runtime_image::runtime_image_present(sb.client())
        .await
        .unwrap());
    let img = sb.client().inspect_image(&again.tag).await.unwrap();
    let cfg = img.config.unwrap();
    assert_eq!(
        cfg.user.as_deref(),
        Some("65534:65534"),
        "image must not default to root"
    );
}

#[tokio::test]
async fn success_failure_and_logs_are_reported() {
    let Some(sb) = docker().await else { return };
    let case = Case::new(
        "import sys, time\nprint('first', flush=True)\nprint('to stderr', file=sys.stderr)\ntime.sleep(1.5)\nprint('second')\nsys.exit(3)\n",
    );
    let t0 = std::time::SystemTime::now();
    let run = case.run(&sb).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::Failed,
        "{}",
        run.dump()
    );
    assert_eq!(run.outcome.exit_code, Some(3));
    assert_eq!(run.stdout(), ["first", "second"]);
    assert_eq!(run.stream(LogStream::Stderr), ["to stderr"]);
    // Lines arrive as produced: the first came well before the end.
    let first = run.lines.iter().find(|l| l.line == "first").unwrap();
    let first_after = first.at.duration_since(t0).unwrap();
    let end_after = run.outcome.ended_at.duration_since(t0).unwrap();
    assert!(
        end_after - first_after > Duration::from_secs(1),
        "{}",
        run.dump()
    );
    assert!(run.lines.iter().all(|l| l.agent == case.spec.agent));
    let file = std::fs::read_to_string(case.log_path()).unwrap();
    assert!(
        file.contains(" stdout first\n") && file.contains(" stderr to stderr\n"),
        "{file}"
    );
    assert!(
        file.contains(" sandbox isolation: backend=docker"),
        "{file}"
    );
    assert!(file.contains("status=failed"), "{file}");
    // The container is gone once the outcome is known.
    let id = run.outcome.container_id.clone().unwrap();
    assert!(sb.client().inspect_container(&id, None).await.is_err());

    let ok = Case::new("print('fine')\n").run(&sb).await;
    assert_eq!(
        ok.outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        ok.dump()
    );
    assert_eq!(ok.outcome.exit_code, Some(0));
}

#[tokio::test]
async fn only_loopback_exists() {
    let Some(sb) = docker().await else { return };
    let run = Case::new(
        "import os\nprint('ifaces=' + ','.join(sorted(os.listdir('/sys/class/net'))))\nprint('routes=%d' % (len(open('/proc/net/route').read().splitlines()) - 1))\n",
    )
    .run(&sb)
    .await;
    assert_eq!(run.value("ifaces"), "lo", "{}", run.dump());
    assert_eq!(run.value("routes"), "0");
}

#[tokio::test]
async fn host_ports_outside_addresses_and_dns_are_unreachable() {
    let Some(sb) = docker().await else { return };
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let mut targets = vec![format!("127.0.0.1:{port}")];
    targets.extend(host_ipv4s().into_iter().map(|a| format!("{a}:{port}")));
    // Control: from the host every target is reachable, so a failure inside the
    // sandbox is the sandbox's doing.
    for t in &targets {
        std::net::TcpStream::connect_timeout(&t.parse().unwrap(), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("control connect to {t} failed: {e}"));
    }
    while listener.accept().is_ok() {}

    let mut case = Case::new(TCP_PROBE);
    case.spec.command.extend(targets.iter().cloned());
    let run = case.run(&sb).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        run.dump()
    );
    for t in &targets {
        let r = run.value(t);
        assert_ne!(
            r,
            "connected",
            "{t} reachable from the sandbox: {}",
            run.dump()
        );
    }
    assert_eq!(run.value("dns"), "failed");
    assert!(
        listener.accept().is_err(),
        "the host listener saw a connection"
    );
}

/// The System Service, served on the execution's socket by the test, answers the
/// agent at the URL the sandbox gives it.
pub async fn check_service_answers(sb: &dyn ExecutionSandbox) {
    let mut case = Case::new(SOCKET_CLIENT);
    let _server = serve_socket(case.socket_dir());
    let url = sb.view(&case.spec).system_service_url();
    case.spec.env.push(("SYSTEM_SERVICE_URL".into(), url));
    let run = case.run(sb).await;
    assert_eq!(
        run.value("service"),
        r#"{"service":"agora-test"}"#,
        "{}",
        run.dump()
    );
}

#[tokio::test]
async fn system_service_answers_over_the_socket() {
    let Some(sb) = docker().await else { return };
    check_service_answers(&sb).await;
}

#[tokio::test]
async fn another_agents_socket_and_workspace_are_invisible() {
    let Some(sb) = docker().await else { return };
    let other = Case::new("print('other')\n");
    std::fs::write(other.workspace().join("secret.txt"), "s3cret").unwrap();
    let _other_server = serve_socket(other.socket_dir());
    let script = format!(
        r#"
import os
for p in [{ws}, {sock}, {sock} + "/api.sock", {ws} + "/secret.txt"]:
    print("visible=" + str(os.path.exists(p)))
print("run_agora=" + ",".join(sorted(os.listdir("/run/agora"))))
print("workspace=" + ",".join(sorted(os.listdir("/workspace"))))
"#,
        ws = py_str(other.workspace()),
        sock = py_str(other.socket_dir()),
    );
    let case = Case::new(&script);
    let run = case.run(&sb).await;
    assert!(
        run.stdout()
            .iter()
            .filter(|l| l.starts_with("visible="))
            .count()
            == 4
    );
    assert!(!run.stdout().contains(&"visible=True"), "{}", run.dump());
    assert_eq!(run.value("run_agora"), "");
    assert_eq!(run.value("workspace"), "main.py");
}

pub const PRIVILEGES: &str = r#"
import os
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print("uid=%d" % os.getuid())
print("capeff=" + status["CapEff"].strip())
print("capbnd=" + status["CapBnd"].strip())
print("nonewprivs=" + status["NoNewPrivs"].strip())
print("seccomp=" + status["Seccomp"].strip())
"#;

#[tokio::test]
async fn runs_unprivileged() {
    let Some(sb) = docker().await else { return };
    let run = Case::new(PRIVILEGES).run(&sb).await;
    assert_ne!(run.value("uid"), "0", "{}", run.dump());
    assert_eq!(run.value("capeff"), "0000000000000000");
    assert_eq!(run.value("capbnd"), "0000000000000000");
    assert_eq!(run.value("nonewprivs"), "1");
    // Mode 2 is a seccomp filter; the report must say what the kernel says.
    let filtered = if sb.isolation().seccomp { "2" } else { "0" };
    assert_eq!(run.value("seccomp"), filtered, "{}", run.dump());
}

pub const WRITES: &str = r##"
import os, subprocess
for p in ["/workspace/ok.txt", "/tmp/ok.txt", "/x.txt", "/etc/x.txt", "/usr/x.txt", "/run/agora/x.txt", "/var/tmp/x.txt", "/home/x.txt"]:
    try:
        with open(p, "w") as f:
            f.write("x")
        print(p + "=written")
    except OSError as e:
        print(p + "=refused")
with open("/tmp/run.sh", "w") as f:
    f.write("#!/bin/sh\necho ran\n")
os.chmod("/tmp/run.sh", 0o755)
try:
    subprocess.run(["/tmp/run.sh"], check=True)
    print("tmp_exec=ran")
except OSError:
    print("tmp_exec=refused")
"##;

/// Only /workspace and /tmp are writable; returns the run for further checks.
pub async fn check_writes(sb: &dyn ExecutionSandbox) -> Run {
    let case = Case::new(WRITES);
    let run = case.run(sb).await;
    assert_eq!(run.value("/workspace/ok.txt"), "written", "{}", run.dump());
    assert_eq!(run.value("/tmp/ok.txt"), "written");
    for p in [
        "/x.txt",
        "/etc/x.txt",
        "/usr/x.txt",
        "/run/agora/x.txt",
        "/var/tmp/x.txt",
        "/home/x.txt",
    ] {
        assert_eq!(run.value(p), "refused", "{p}: {}", run.dump());
    }
    assert!(case.workspace().join("ok.txt").exists());
    run
}

#[tokio::test]
async fn writes_outside_workspace_and_tmp_fail() {
    let Some(sb) = docker().await else { return };
    let run = check_writes(&sb).await;
    assert_eq!(run.value("tmp_exec"), "refused", "/tmp must be noexec");
}

pub const RULES: &str = r#"
print("rules=" + open("/agora/RULES.md").read().strip())
try:
    with open("/agora/RULES.md", "a") as f:
        f.write("cheat")
    print("rules_write=written")
except OSError:
    print("rules_write=refused")
"#;

/// Mounts a game-rules file read-only at /agora/RULES.md, as the orchestrator will;
/// the returned directory holds the host file.
pub fn with_rules(case: &mut Case) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("RULES.md");
    std::fs::write(&rules, "play fair\n").unwrap();
    // World-writable on the host, so only the read-only mount can refuse the write.
    let perms = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o666);
    std::fs::set_permissions(&rules, perms).unwrap();
    case.spec.readonly_mounts.push(ReadonlyMount {
        host: rules,
        target: "/agora/RULES.md".into(),
    });
    dir
}

/// The game rules, mounted read-only, can be read and not changed.
pub async fn check_rules_read_only(sb: &dyn ExecutionSandbox) {
    let mut case = Case::new(RULES);
    let dir = with_rules(&mut case);
    let run = case.run(sb).await;
    assert_eq!(run.value("rules"), "play fair", "{}", run.dump());
    assert_eq!(run.value("rules_write"), "refused", "{}", run.dump());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("RULES.md")).unwrap(),
        "play fair\n"
    );
}

#[tokio::test]
async fn game_rules_are_readable_but_read_only() {
    let Some(sb) = docker().await else { return };
    check_rules_read_only(&sb).await;
}

pub const FILL_TMP: &str = r#"
written = 0
try:
    with open("/tmp/fill", "wb") as f:
        for _ in range(64):
            f.write(b"\0" * (1 << 20))
            f.flush()
            written += 1
    print("tmp=unlimited")
except OSError as e:
    print("tmp=full")
print("written_mb=%d" % written)
"#;

#[tokio::test]
async fn tmp_is_size_limited() {
    let Some(sb) = docker().await else { return };
    let mut case = Case::new(FILL_TMP);
    case.spec.limits.tmp_mb = 8;
    let run = case.run(&sb).await;
    assert_eq!(run.value("tmp"), "full", "{}", run.dump());
    assert!(run.value("written_mb").parse::<u32>().unwrap() <= 8);
}

pub const ALLOCATE: &str = r#"
import sys, time
mb = int(sys.argv[1])
print("allocating %d MB" % mb, flush=True)
block = bytearray(mb * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
print("allocated", flush=True)
time.sleep(5)
"#;

#[tokio::test]
async fn allocating_twice_the_memory_limit_is_oom_killed() {
    let Some(sb) = docker().await else { return };
    let mut case = Case::new(ALLOCATE);
    case.spec.limits.memory_mb = 64;
    case.spec.command.push("128".into());
    let run = case.run(&sb).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::OomKilled,
        "{}",
        run.dump()
    );
    assert!(!run.stdout().contains(&"allocated"));
}

pub const BUSY: &str = "print('spinning', flush=True)\nwhile True:\n    pass\n";

#[tokio::test]
async fn busy_loop_past_the_cpu_budget_is_cpu_exceeded() {
    let Some(sb) = docker().await else { return };
    let mut case = Case::new(BUSY);
    case.spec.limits.cpu_millis = 700;
    case.spec.limits.wall = Duration::from_secs(20);
    let run = case.run(&sb).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::CpuExceeded,
        "{}",
        run.dump()
    );
    let used = run.outcome.cpu_used_ms.unwrap();
    assert!((700..3_000).contains(&used), "cpu used {used} ms");
    assert!(run.elapsed < Duration::from_secs(15), "{}", run.dump());
}

#[tokio::test]
async fn sleeping_past_the_deadline_is_timed_out() {
    let Some(sb) = docker().await else { return };
    let mut case = Case::new("import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n");
    case.spec.limits.wall = Duration::from_secs(2);
    let run = case.run(&sb).await;
    assert_eq!(
        run.outcome.status,
        ExecutionStatus::TimedOut,
        "{}",
        run.dump()
    );
    assert!(run.elapsed >= Duration::from_secs(2));
    assert!(run.elapsed < Duration::from_secs(10), "{}", run.dump());
    assert_eq!(run.stdout(), ["sleeping"]);
}

pub const FORK_BOMB: &str = r#"
import os, sys, time
children = []
limit_hit = False
for i in range(500):
    try:
        pid = os.fork()
    except OSError:
        limit_hit = True
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print("forked=%d" % len(children))
print("limit_hit=%s" % limit_hit, flush=True)
for pid in children:
    os.kill(pid, 9)
"#;

#[tokio::test]
async fn fork_bomb_stops_at_the_pids_limit_and_the_host_is_fine() {
    let Some(sb) = docker().await else { return };
    let mut case = Case::new(FORK_BOMB);
    case.spec.limits.pids = 24;
    let run = case.run(&sb).await;
    assert_eq!(run.value("limit_hit"), "True", "{}", run.dump());
    let forked: u32 = run.value("forked").parse().unwrap();
    assert!(forked < 24, "forked {forked}");
    // The host still forks, and the next sandbox still starts.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    let next = Case::new("print('alive')\n").run(&sb).await;
    assert_eq!(next.stdout(), ["alive"]);
}

#[tokio::test]
async fn concurrent_sandboxes_cannot_see_each_other() {
    let Some(sb) = docker().await else { return };
    let script = r#"
import os, sys, time
# The other's marker comes through the environment: only argv shows in cmdline.
me, other = sys.argv[1], os.environ["OTHER"]
open("/tmp/marker-" + me, "w").write(me)
time.sleep(2)
def cmdlines():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                out.append(open("/proc/%s/cmdline" % p, "rb").read().decode(errors="replace"))
            except OSError:
                pass
    return out
lines = cmdlines()
print("sees_self=%s" % any(me in l for l in lines))
print("sees_other=%s" % any(other in l for l in lines))
print("other_tmp=%s" % os.path.exists("/tmp/marker-" + other))
print("pids=%d" % len(lines))
"#;
    let mut a = Case::new(script);
    a.spec.command.push("MARKER_AAA".into());
    a.spec.env.push(("OTHER".into(), "MARKER_BBB".into()));
    let mut b = Case::new(script);
    b.spec.command.push("MARKER_BBB".into());
    b.spec.env.push(("OTHER".into(), "MARKER_AAA".into()));
    let (ra, rb) = tokio::join!(a.run(&sb), b.run(&sb));
    for r in [&ra, &rb] {
        assert_eq!(r.value("sees_self"), "True", "{}", r.dump());
        assert_eq!(r.value("sees_other"), "False", "{}", r.dump());
        assert_eq!(r.value("other_tmp"), "False");
    }
    // Both really overlapped in time.
    assert!(
        ra.outcome.started_at < rb.outcome.ended_at && rb.outcome.started_at < ra.outcome.ended_at
    );
}

#[tokio::test]
async fn debug_mode_publishes_debugpy_on_loopback_and_waits() {
    let Some(sb) = docker().await else { return };
    let mut case = Case::new("print('attached')\n");
    case.spec.debug = true;
    case.spec.limits.wall = Duration::from_secs(30);
    let running = sb.launch(case.spec.clone()).await.unwrap();
    let id = running.container_id().unwrap().to_string();
    let info = sb.client().inspect_container(&id, None).await.unwrap();
    let ports = info.host_config.unwrap().port_bindings.unwrap();
    let binding = ports["5678/tcp"].as_ref().unwrap();
    assert_eq!(binding[0].host_ip.as_deref(), Some("127.0.0.1"));
    // debugpy speaks the Debug Adapter Protocol on the published port while the
    // script waits: the handshake VS Code's attach configuration starts with.
    let mut answer = String::new();
    for _ in 0..50 {
        if let Some(a) = dap_initialize("127.0.0.1:5678").await {
            answer = a;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let compact = answer.replace(' ', "");
    assert!(
        compact.contains(r#""command":"initialize""#),
        "no DAP answer: {answer:?}"
    );
    assert!(compact.contains(r#""success":true"#), "{answer}");
    running.kill();
    let outcome = running.wait().await.unwrap();
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(outcome.reason, "killed by the orchestrator");
    assert!(!std::fs::read_to_string(case.log_path())
        .unwrap()
        .contains("stdout attached"));
}

/// Sends a DAP `initialize` request and returns the raw answer, if any.
async fn dap_initialize(addr: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    let body = r#"{"seq":1,"type":"request","command":"initialize","arguments":{"clientID":"agora-test","adapterID":"debugpy"}}"#;
    let msg = format!("Content-Length: {}\r\n\r\n{body}", body.len());
    conn.write_all(msg.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains("\"initialize\"") {
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    (!text.is_empty()).then_some(text)
}

/// Run in a child process by `reconcile_removes_a_leftover_after_a_crash`: launches a
/// long execution, prints its container id, then waits to be SIGKILLed.
#[tokio::test]
#[ignore = "helper run by reconcile_removes_a_leftover_after_a_crash"]
async fn leftover_child() {
    let Ok(instance) = std::env::var("AGORA_SANDBOX_LEFTOVER_INSTANCE") else {
        return;
    };
    let sb = docker_with(&instance).await.unwrap();
    let mut case = Case::new("import time\ntime.sleep(300)\n");
    case.spec.limits.wall = Duration::from_secs(300);
    let running = sb.launch(case.spec.clone()).await.unwrap();
    println!("LEFTOVER {}", running.container_id().unwrap());
    tokio::time::sleep(Duration::from_secs(300)).await;
}

#[tokio::test]
async fn reconcile_removes_a_leftover_after_a_crash() {
    let instance = format!("leftover{}", std::process::id());
    let Some(sb) = docker_with(&instance).await else {
        return;
    };
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sandbox::docker::leftover_child",
            "--ignored",
            "--nocapture",
        ])
        .env("AGORA_SANDBOX_LEFTOVER_INSTANCE", &instance)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let id = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(id) = l.strip_prefix("LEFTOVER ") {
                return id.to_string();
            }
        }
        panic!("child ended without launching");
    })
    .await
    .unwrap();
    // The orchestrating process dies mid-run; its container keeps running.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let state = sb
        .client()
        .inspect_container(&id, None)
        .await
        .unwrap()
        .state
        .unwrap();
    assert_eq!(
        state.running,
        Some(true),
        "the leftover should still be running"
    );

    let removed = sb.reconcile().await.unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].id, id);
    assert!(removed[0].agent.is_some() && removed[0].execution.is_some());
    assert!(
        sb.client().inspect_container(&id, None).await.is_err(),
        "container still exists"
    );
    assert!(sb.reconcile().await.unwrap().is_empty());
}
