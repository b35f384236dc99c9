//! The supervisor of one running container: enforces the wall-clock deadline and the
//! CPU time budget from the host (SIGKILL), waits for the "not-running" condition (a
//! wait for the *next* exit hangs if the container already exited), reads state and
//! output, then removes the container itself and reports the [`Outcome`].
//!
//! Transitions are logged as `running -> <status>` with the container id.

use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use agora_core::{AgentId, ExecutionId};
use bollard::container::LogOutput;
use bollard::query_parameters::{KillContainerOptions, StatsOptions, WaitContainerOptions};
use bollard::Docker;
use futures_util::{Stream, StreamExt};

use super::cgroup::{CgroupProbe, Sample};
use super::{remove, timed};
use crate::logs::{Ending, LineSender, LineSplitter, LogPump, LogStream};
use crate::verdict::{verdict, Evidence, KillReason};
use crate::{IsolationReport, KillSwitch, Limits, Outcome};

/// The attached output of a container.
pub(crate) type Output =
    Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// After a SIGKILL the container should be gone within milliseconds; if `wait` has not
/// returned by then the daemon is in trouble and we stop waiting and force-remove.
const KILL_GRACE: Duration = Duration::from_secs(15);

/// Output still in flight when the container exits is drained for at most this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// With no cgroup on this host to read, the stats API is polled at most this often.
const STATS_API_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) struct Supervisor {
    pub docker: Docker,
    pub id: String,
    pub agent: AgentId,
    pub execution: ExecutionId,
    pub limits: Limits,
    pub deadline: Instant,
    pub started_at: SystemTime,
    pub poll_interval: Duration,
    pub kill: KillSwitch,
    pub isolation: IsolationReport,
}

/// Latest and peak figures from the cgroup or the stats API.
#[derive(Default)]
struct Usage {
    last: Option<Sample>,
    peak_memory: Option<u64>,
}

impl Usage {
    fn record(&mut self, s: Sample) {
        self.peak_memory = self.peak_memory.max(s.memory_bytes);
        self.last = Some(s);
    }
}

impl Supervisor {
    pub(crate) async fn run(self, output: Output, pump: LogPump) -> Outcome {
        let sender = pump.sender();
        let reader = tokio::spawn(read_output(output, sender.clone()));
        let probe = self.locate_probe().await;
        let budget_ns = self.limits.cpu_millis.saturating_mul(1_000_000);

        let mut usage = Usage::default();
        let mut killed_for: Option<KillReason> = None;
        let mut killed_at = Instant::now();
        let (docker, id) = (self.docker.clone(), self.id.clone());
        let wait = async move { wait_not_running(&docker, &id).await };
        tokio::pin!(wait);
        let interval = if probe.is_some() {
            self.poll_interval
        } else {
            self.poll_interval.max(STATS_API_INTERVAL)
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = tokio::time::Instant::from_std(self.deadline);

        let exit_code = loop {
            let kill_now = tokio::select! {
                code = &mut wait => break code,
                _ = tokio::time::sleep_until(deadline), if killed_for.is_none() => {
                    Some(KillReason::Deadline)
                }
                _ = self.kill.killed(), if killed_for.is_none() => Some(KillReason::Requested),
                _ = tick.tick() => {
                    if let Some(s) = self.sample(probe.as_ref()).await {
                        usage.record(s);
                        (killed_for.is_none() && s.cpu_ns >= budget_ns)
                            .then_some(KillReason::CpuBudget)
                    } else {
                        None
                    }
                }
                _ = tokio::time::sleep_until(
                    tokio::time::Instant::from_std(killed_at + KILL_GRACE)
                ), if killed_for.is_some() => {
                    tracing::warn!(component = "sandbox", container = %self.id, "no exit after SIGKILL; giving up waiting");
                    break None;
                }
            };
            if let Some(reason) = kill_now {
                killed_for = Some(reason);
                killed_at = Instant::now();
                self.send_kill().await;
            }
        };

        // The cgroup may still be readable for a moment after exit; a last sample
        // catches an OOM kill that happened between ticks.
        if let Some(s) = probe.as_ref().and_then(CgroupProbe::sample) {
            usage.record(s);
        }
        let state = timed(
            "inspect container",
            self.docker.inspect_container(&self.id, None),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|i| i.state);
        let oom_flag = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        let exit_code = exit_code.or_else(|| state.as_ref().and_then(|s| s.exit_code));

        if tokio::time::timeout(DRAIN_TIMEOUT, reader).await.is_err() {
            tracing::warn!(component = "sandbox", container = %self.id, "output stream did not end after exit");
        }
        if let Err(e) = remove(&self.docker, &self.id).await {
            // reconcile() at the next start removes it; the outcome is still valid.
            tracing::warn!(component = "sandbox", container = %self.id, error = %e, "could not remove container");
        }

        let evidence = Evidence {
            killed_for,
            exit_code,
            signal: None,
            oom: oom_flag || usage.last.is_some_and(|s| s.oom_kills > 0),
            exit_137_means_oom: true,
            wall: self.limits.wall,
            cpu_budget_ms: self.limits.cpu_millis,
            memory_mb: self.limits.memory_mb,
        };
        let (status, reason) = verdict(&evidence);
        let cpu_used_ms = usage.last.map(|s| s.cpu_ns / 1_000_000);
        let peak_memory_mb = usage.peak_memory.map(|b| b.div_ceil(1024 * 1024));
        tracing::info!(
            component = "sandbox",
            agent = %self.agent, execution = %self.execution, container = %self.id,
            exit_code, %reason, "execution running -> {}", status.as_str()
        );
        drop(sender);
        pump.conclude(Ending {
            agent: self.agent,
            execution: self.execution,
            status,
            exit_code,
            reason,
            cpu_used_ms,
            peak_memory_mb,
            isolation: self.isolation,
            container_id: Some(self.id),
            started_at: self.started_at,
        })
        .await
    }

    /// The container's cgroup, through its init process, when the daemon runs on
    /// this host; otherwise samples come from the stats API.
    async fn locate_probe(&self) -> Option<CgroupProbe> {
        let pid = timed(
            "inspect container",
            self.docker.inspect_container(&self.id, None),
        )
        .await
        .ok()?
        .ok()?
        .state?
        .pid
        .filter(|p| *p > 0)?;
        CgroupProbe::locate(std::path::Path::new("/sys/fs/cgroup"), pid)
    }

    async fn sample(&self, probe: Option<&CgroupProbe>) -> Option<Sample> {
        if let Some(p) = probe {
            return p.sample();
        }
        let opts = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stats = self.docker.stats(&self.id, Some(opts));
        let s = tokio::time::timeout(Duration::from_secs(3), stats.next())
            .await
            .ok()??
            .ok()?;
        let cpu_ns = s.cpu_stats?.cpu_usage?.total_usage?;
        let mem = s.memory_stats;
        Some(Sample {
            cpu_ns,
            memory_bytes: mem.and_then(|m| m.max_usage.or(m.usage)),
            oom_kills: 0,
        })
    }

    async fn send_kill(&self) {
        let opts = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        // A container that exited in the meantime answers 409/404; the wait returns
        // its real exit either way.
        if let Ok(Err(e)) = timed(
            "kill container",
            self.docker.kill_container(&self.id, Some(opts)),
        )
        .await
        {
            tracing::debug!(component = "sandbox", container = %self.id, error = %e, "kill");
        }
    }
}

/// Waits until the container is not running and returns its exit code; `None` when
/// the container vanished. Transient API errors are retried.
async fn wait_not_running(docker: &Docker, id: &str) -> Option<i64> {
    loop {
        let opts = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut s = docker.wait_container(id, Some(opts));
        match s.next().await {
            Some(Ok(r)) => return Some(r.status_code),
            // bollard turns a non-zero exit into this error.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                return Some(code)
            }
            Some(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })) => return None,
            Some(Err(e)) => {
                tracing::debug!(component = "sandbox", container = %id, error = %e, "wait failed; retrying")
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Splits the multiplexed attach stream into stdout and stderr lines.
async fn read_output(mut output: Output, sender: LineSender) {
    let mut out = LineSplitter::default();
    let mut err = LineSplitter::default();
    while let Some(Ok(chunk)) = output.next().await {
        let (stream, split, bytes) = match chunk {
            LogOutput::StdOut { message } => (LogStream::Stdout, &mut out, message),
            LogOutput::StdErr { message } => (LogStream::Stderr, &mut err, message),
            LogOutput::Console { message } => (LogStream::Stdout, &mut out, message),
            LogOutput::StdIn { .. } => continue,
        };
        let mut lines = Vec::new();
        split.push(&bytes, |l| lines.push(l));
        for l in lines {
            sender.send(stream, l).await;
        }
    }
    for (stream, split) in [(LogStream::Stdout, &mut out), (LogStream::Stderr, &mut err)] {
        let mut last = None;
        split.finish(|l| last = Some(l));
        if let Some(l) = last {
            sender.send(stream, l).await;
        }
    }
}
