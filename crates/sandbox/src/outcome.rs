//! What a sandbox reports: the [`Outcome`] of an execution, the [`IsolationReport`] of
//! what was enforced, and the [`RunningExecution`] handle the orchestrator holds while
//! it runs.

use std::time::SystemTime;

use agora_core::lifecycle::ExecutionStatus;
use agora_core::{AgentId, ExecutionId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{LogLine, SandboxError};

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub agent: AgentId,
    pub execution: ExecutionId,
    /// One of succeeded, failed, timed_out, oom_killed, cpu_exceeded, lost.
    pub status: ExecutionStatus,
    /// The exit code, or 128 + signal for a process killed by a signal.
    pub exit_code: Option<i64>,
    /// A sentence for the operator: why this status.
    pub reason: String,
    /// CPU time used, when the backend could measure it.
    pub cpu_used_ms: Option<u64>,
    /// Peak resident memory, when the backend could measure it.
    pub peak_memory_mb: Option<u64>,
    pub isolation: IsolationReport,
    pub container_id: Option<String>,
    pub started_at: SystemTime,
    pub ended_at: SystemTime,
    /// Lines of output (including the sandbox's own) written to the log.
    pub log_lines: u64,
}

/// The last line a sandbox writes to an execution's log: how it ended, in one line
/// that both backends spell the same way.
pub(crate) fn ended_line(
    status: ExecutionStatus,
    exit_code: Option<i64>,
    reason: &str,
    cpu_used_ms: Option<u64>,
    peak_memory_mb: Option<u64>,
) -> String {
    let or = |v: Option<String>, none: &str| v.unwrap_or_else(|| none.to_string());
    format!(
        "ended: status={} exit_code={} reason={reason} cpu_used_ms={} peak_memory_mb={}",
        status.as_str(),
        or(exit_code.map(|c| c.to_string()), "none"),
        or(cpu_used_ms.map(|c| c.to_string()), "unknown"),
        or(peak_memory_mb.map(|c| c.to_string()), "unknown"),
    )
}

/// What a backend enforced, stated per boundary so nobody has to guess (§6: "reports
/// honestly what isolation it provided").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IsolationReport {
    pub backend: &'static str,
    /// The uid the agent runs as (None when unknown before launch).
    pub uid: Option<u32>,
    /// The agent does not run as root.
    pub non_root: bool,
    /// Each agent has its own uid (orchestrator runs as root).
    pub uid_per_agent: bool,
    /// All capabilities dropped and no-new-privileges set.
    pub no_privileges: bool,
    /// Memory limit kind: "cgroup" (kill on excess) or "rlimit_as" (allocation fails).
    pub memory_limit: &'static str,
    /// CPU budget kind: "cgroup" or "rlimit+procfs".
    pub cpu_limit: &'static str,
    /// Process count kind: "pids_cgroup" or "rlimit_nproc".
    pub process_limit: &'static str,
    /// No network but loopback (and, in debug mode, docker's bridge).
    pub network_isolated: bool,
    /// Only the workspace and /tmp writable; other agents' files not visible.
    pub filesystem_isolated: bool,
    /// Own PID namespace.
    pub pid_isolated: bool,
    /// Bubblewrap was used (process backend).
    pub bwrap: bool,
    /// A seccomp filter restricts system calls (docker: the daemon's default profile).
    pub seccomp: bool,
    /// Anything else the operator should know.
    pub notes: Vec<String>,
}

impl IsolationReport {
    /// One line for logs: `backend=process uid=100003 network_isolated=true …`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "backend={} uid={} non_root={} uid_per_agent={} no_privileges={} memory={} cpu={} processes={} network_isolated={} filesystem_isolated={} pid_isolated={} bwrap={} seccomp={}",
            self.backend,
            self.uid.map_or_else(|| "?".to_string(), |u| u.to_string()),
            self.non_root,
            self.uid_per_agent,
            self.no_privileges,
            self.memory_limit,
            self.cpu_limit,
            self.process_limit,
            self.network_isolated,
            self.filesystem_isolated,
            self.pid_isolated,
            self.bwrap,
            self.seccomp,
        );
        for n in &self.notes {
            s.push_str("; ");
            s.push_str(n);
        }
        s
    }
}

/// Stops a running execution from anywhere (orchestrator shutdown). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct KillSwitch(CancellationToken);

impl KillSwitch {
    /// Kills the execution now; its outcome is `failed` with reason "killed".
    pub fn kill(&self) {
        self.0.cancel();
    }

    pub(crate) async fn killed(&self) {
        self.0.cancelled().await
    }
}

/// A launched execution. The supervisor enforcing its limits runs in its own task;
/// dropping this handle neither stops the execution nor leaks it.
pub struct RunningExecution {
    agent: AgentId,
    execution: ExecutionId,
    container_id: Option<String>,
    logs: Option<mpsc::Receiver<LogLine>>,
    outcome: oneshot::Receiver<Outcome>,
    kill: KillSwitch,
}

impl RunningExecution {
    pub(crate) fn new(
        agent: AgentId,
        execution: ExecutionId,
        container_id: Option<String>,
        logs: mpsc::Receiver<LogLine>,
        outcome: oneshot::Receiver<Outcome>,
        kill: KillSwitch,
    ) -> Self {
        RunningExecution {
            agent,
            execution,
            container_id,
            logs: Some(logs),
            outcome,
            kill,
        }
    }

    pub fn agent(&self) -> AgentId {
        self.agent
    }

    pub fn execution(&self) -> ExecutionId {
        self.execution
    }

    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }

    /// The live output. Take it before [`wait`](Self::wait) to see lines as they are
    /// produced; if nobody takes it, lines still go to the log file.
    pub fn take_logs(&mut self) -> Option<mpsc::Receiver<LogLine>> {
        self.logs.take()
    }

    pub fn kill_switch(&self) -> KillSwitch {
        self.kill.clone()
    }

    /// Kills the execution now.
    pub fn kill(&self) {
        self.kill.kill();
    }

    /// Waits for the end. Lines not taken with [`take_logs`](Self::take_logs) are
    /// discarded from the channel (they are in the log file).
    pub async fn wait(mut self) -> Result<Outcome, SandboxError> {
        // Dropping the receiver we hold ensures the writer never blocks on a channel
        // nobody reads while we wait.
        self.logs.take();
        self.outcome.await.map_err(|_| SandboxError::SupervisorGone)
    }
}
