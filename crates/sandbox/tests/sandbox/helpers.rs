//! Test harness: a per-test workspace, socket directory and log, a fake System Service
//! on the socket, running a script to its end while collecting its lines, and the
//! Docker gate (skip only without Docker and without `AGORA_REQUIRE_DOCKER`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use agora_core::{AgentId, ExecutionId};
use agora_sandbox::runtime_image::BuildPreference;
use agora_sandbox::{
    DockerOptions, DockerSandbox, ExecutionSandbox, ExecutionSpec, LogLine, LogStream, Outcome,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The instance label of this test binary's containers.
pub const INSTANCE: &str = "sandboxtest";

/// Agent ids are unique per test, also across the test processes a runner such as
/// nextest starts at once (hence the pid), so that per-agent uids, the uid sweep of
/// the process backend and container names never touch another test's execution.
static NEXT_AGENT: AtomicI64 = AtomicI64::new(1);

pub fn next_agent() -> AgentId {
    let n = NEXT_AGENT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 256, "too many agents for one test process");
    AgentId((i64::from(std::process::id()) << 8) | n)
}

/// A throwaway workspace, socket directory and log for one execution.
pub struct Case {
    pub _root: tempfile::TempDir,
    pub spec: ExecutionSpec,
}

impl Case {
    /// A case whose `main.py` is `script`.
    pub fn new(script: &str) -> Case {
        let root = tempfile::tempdir().unwrap();
        // The agent's uid must be able to traverse to its directories (bwrap resolves
        // bind sources as that uid), as it would under a real data dir.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ws = root.path().join("ws");
        let sock = root.path().join("sock");
        std::fs::create_dir(&ws).unwrap();
        std::fs::create_dir(&sock).unwrap();
        std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(ws.join("main.py"), script).unwrap();
        let mut spec = ExecutionSpec::new(
            next_agent(),
            ExecutionId(1),
            &ws,
            &sock,
            root.path().join("logs/exec.log"),
        );
        spec.limits.wall = Duration::from_secs(30);
        spec.limits.memory_mb = 128;
        spec.limits.cpu_millis = 5_000;
        Case { _root: root, spec }
    }

    pub fn workspace(&self) -> &Path {
        &self.spec.workspace
    }

    pub fn socket_dir(&self) -> &Path {
        &self.spec.socket_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.spec.log_path
    }

    /// Runs to the end; returns the outcome, every line, and how long it took.
    pub async fn run(&self, sandbox: &dyn ExecutionSandbox) -> Run {
        let t = Instant::now();
        let mut running = sandbox.launch(self.spec.clone()).await.unwrap();
        let mut logs = running.take_logs().unwrap();
        let collect = tokio::spawn(async move {
            let mut lines = Vec::new();
            while let Some(l) = logs.recv().await {
                lines.push(l);
            }
            lines
        });
        let outcome = running.wait().await.unwrap();
        let elapsed = t.elapsed();
        let lines = collect.await.unwrap();
        Run {
            outcome,
            lines,
            elapsed,
        }
    }
}

pub struct Run {
    pub outcome: Outcome,
    pub lines: Vec<LogLine>,
    pub elapsed: Duration,
}

impl Run {
    pub fn stdout(&self) -> Vec<&str> {
        self.stream(LogStream::Stdout)
    }

    pub fn stream(&self, s: LogStream) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.stream == s)
            .map(|l| l.line.as_str())
            .collect()
    }

    /// The value printed as `key=value` on stdout.
    pub fn value(&self, key: &str) -> String {
        let prefix = format!("{key}=");
        self.stdout()
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key}= in output: {}", self.dump()))
            .to_string()
    }

    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        let mut s = format!(
            "status={} exit={:?} reason={} elapsed={:?}\n",
            self.outcome.status.as_str(),
            self.outcome.exit_code,
            self.outcome.reason,
            self.elapsed
        );
        for l in &self.lines {
            s.push_str(&format!("  [{}] {}\n", l.stream.as_str(), l.line));
        }
        s
    }
}

/// A fake System Service: answers every HTTP request on `<dir>/api.sock` with a fixed
/// JSON body. Returns the task so the caller can keep it alive.
pub fn serve_socket(dir: &Path) -> tokio::task::JoinHandle<()> {
    let path = dir.join("api.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"service":"agora-test"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    })
}

/// Python that asks the socket's HTTP server for `/health` and prints `service=<body>`.
pub const SOCKET_CLIENT: &str = r#"
import os, socket
url = os.environ["SYSTEM_SERVICE_URL"]
path = url[len("unix://"):]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(path)
s.sendall(b"GET /health HTTP/1.1\r\nHost: agora\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print("service=" + data.split(b"\r\n\r\n", 1)[1].decode())
"#;

/// Python that tries TCP connections to each `host:port` in argv and prints
/// `<addr>=connected` or `<addr>=<errno name>`.
pub const TCP_PROBE: &str = r#"
import socket, sys, errno
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, int(port)))
        print(f"{target}=connected")
    except OSError as e:
        print(f"{target}=" + (errno.errorcode.get(e.errno, "timeout") if e.errno else "timeout"))
    finally:
        s.close()
try:
    socket.getaddrinfo("deb.debian.org", 80)
    print("dns=resolved")
except OSError as e:
    print("dns=failed")
"#;

/// The host's IPv4 addresses other than loopback (the docker bridge, the uplink).
pub fn host_ipv4s() -> Vec<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
        .collect()
}

/// Host processes whose command line contains `marker`.
pub fn host_processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
        })
        .collect()
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Image readiness, shared by all docker tests: `Ok` once built, `Err(skip reason)`
/// when there is no Docker and it is not required.
static IMAGE: tokio::sync::OnceCell<Result<(), String>> = tokio::sync::OnceCell::const_new();

pub fn docker_required() -> bool {
    std::env::var_os("AGORA_REQUIRE_DOCKER").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A docker sandbox for this test, or `None` (skip) when Docker is absent and not
/// required. Builds the runtime image on first use; a failed build always fails.
pub async fn docker() -> Option<DockerSandbox> {
    docker_with(INSTANCE).await
}

pub async fn docker_with(instance: &str) -> Option<DockerSandbox> {
    let ready = IMAGE
        .get_or_init(|| async {
            let client = match agora_sandbox::docker::connect_docker().await {
                Ok(c) => c,
                Err(e) if !docker_required() => return Err(format!("no docker: {e}")),
                Err(e) => panic!("AGORA_REQUIRE_DOCKER is set but Docker is unavailable: {e}"),
            };
            let mut progress = |line: &str| eprintln!("runtime image: {line}");
            let build = agora_sandbox::build_runtime_image(
                &client,
                BuildPreference::from_env(),
                &mut progress,
            )
            .await
            .unwrap_or_else(|e| panic!("runtime image build failed: {e}"));
            eprintln!(
                "runtime image {} ready ({:?}) in {:.1} s",
                build.tag,
                build.method,
                build.elapsed.as_secs_f64()
            );
            Ok(())
        })
        .await;
    match ready {
        Ok(()) => Some(
            DockerSandbox::connect(DockerOptions {
                instance: instance.to_string(),
                ..DockerOptions::default()
            })
            .await
            .unwrap(),
        ),
        Err(reason) => {
            eprintln!("skipping docker test: {reason}");
            None
        }
    }
}

/// Where a host path would be, so scripts can check it is absent.
pub fn py_str(p: &Path) -> String {
    format!("{:?}", p.to_string_lossy())
}
