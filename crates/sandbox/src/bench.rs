//! The sandbox benchmarks behind `agora bench sandbox` (§14): the docker backend's
//! launch-to-exit time against a bare `docker run --rm` of the same image and script
//! (goal ≤ 1.2×), and the process backend's launch-to-first-line time (goal < 50 ms).
//! Medians, so one slow outlier on a busy 2-core machine does not decide the figure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use agora_core::{AgentId, ExecutionId};

use crate::{DockerSandbox, ExecutionSandbox, ExecutionSpec, ProcessSandbox, SandboxError};

/// Agent ids used by the benchmarks; far from real agents' ids.
const BENCH_AGENT: i64 = 900_000;

/// The docker overhead figure.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerOverhead {
    pub runs: usize,
    /// Median launch-to-exit of [`DockerSandbox`], in ms.
    pub ours_ms: f64,
    /// Median wall time of `docker run --rm` of the same image and script, in ms.
    pub bare_ms: f64,
    /// `ours_ms / bare_ms`: printed as `sandbox_docker_overhead_ratio`.
    pub ratio: f64,
}

/// The process start figure.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStart {
    pub runs: usize,
    /// Median launch-to-first-line, in ms: printed as `sandbox_process_start_ms`.
    pub median_ms: f64,
    pub bwrap: bool,
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Scratch, SandboxError> {
        let dir = std::env::temp_dir().join(format!("agora-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["ws", "sock"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| SandboxError::io(format!("create {}", dir.display()), e))?;
        }
        std::fs::write(dir.join("ws/main.py"), "print('ready')\n")
            .map_err(|e| SandboxError::io("write bench script", e))?;
        Ok(Scratch(dir))
    }

    fn spec(&self, n: usize) -> ExecutionSpec {
        let mut s = ExecutionSpec::new(
            AgentId(BENCH_AGENT),
            ExecutionId(n as i64),
            self.0.join("ws"),
            self.0.join("sock"),
            self.0.join("log"),
        );
        s.limits.wall = Duration::from_secs(30);
        s
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs the trivial script `runs` times each way (interleaved, after one warm-up of
/// each) and compares medians.
pub async fn bench_docker_overhead(
    sandbox: &DockerSandbox,
    runs: usize,
) -> Result<DockerOverhead, SandboxError> {
    let scratch = Scratch::new("docker")?;
    let image = sandbox.options().image.clone();
    let ws = scratch.path().join("ws");
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for i in 0..=runs {
        let t = Instant::now();
        let outcome = sandbox.launch(scratch.spec(i)).await?.wait().await?;
        let ours_ms = t.elapsed().as_secs_f64() * 1000.0;
        if outcome.exit_code != Some(0) {
            return Err(SandboxError::InvalidSpec(format!(
                "bench execution failed: {}",
                outcome.reason
            )));
        }

        let t = Instant::now();
        let status = tokio::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{}:/workspace", ws.display()))
            .args(["-w", "/workspace", &image, "python3", "main.py"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|e| SandboxError::io("run docker CLI", e))?;
        let bare_ms = t.elapsed().as_secs_f64() * 1000.0;
        if !status.success() {
            return Err(SandboxError::InvalidSpec(format!(
                "bare docker run: {status}"
            )));
        }
        // Run 0 warms caches for both and is not counted.
        if i > 0 {
            ours.push(ours_ms);
            bare.push(bare_ms);
        }
    }
    let (ours_ms, bare_ms) = (median(ours), median(bare));
    Ok(DockerOverhead {
        runs,
        ours_ms,
        bare_ms,
        ratio: ours_ms / bare_ms,
    })
}

/// Launches the trivial script `runs` times (after one warm-up) and takes the median
/// time from calling `launch` to receiving its first line of output.
pub async fn bench_process_start(
    sandbox: &ProcessSandbox,
    runs: usize,
) -> Result<ProcessStart, SandboxError> {
    let scratch = Scratch::new("process")?;
    let mut times = Vec::new();
    for i in 0..=runs {
        let t = Instant::now();
        let mut running = sandbox.launch(scratch.spec(i)).await?;
        let mut logs = running
            .take_logs()
            .ok_or_else(|| SandboxError::InvalidSpec("logs already taken".into()))?;
        let mut first = None;
        while let Some(line) = logs.recv().await {
            if line.stream == crate::LogStream::Stdout {
                first = Some(t.elapsed());
                break;
            }
        }
        drop(logs);
        running.wait().await?;
        let first = first
            .ok_or_else(|| SandboxError::InvalidSpec("bench execution printed nothing".into()))?;
        if i > 0 {
            times.push(first.as_secs_f64() * 1000.0);
        }
    }
    Ok(ProcessStart {
        runs,
        median_ms: median(times),
        bwrap: sandbox.uses_bwrap(),
    })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
