//! Turning what was observed about an ended execution into its termination status and
//! a reason sentence; one pure function shared by both backends so the rules cannot
//! drift apart.

use std::time::Duration;

use agora_core::lifecycle::ExecutionStatus;

/// Why the sandbox itself killed an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KillReason {
    /// The wall-clock window ended.
    Deadline,
    /// The CPU time budget was used up (measured from the host).
    CpuBudget,
    /// Resident memory went over the limit (process backend's host check).
    Memory,
    /// The orchestrator asked (shutdown).
    Requested,
}

/// What was seen when the execution ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Evidence {
    pub killed_for: Option<KillReason>,
    pub exit_code: Option<i64>,
    /// Terminating signal, when the backend sees the raw wait status.
    pub signal: Option<i32>,
    /// The kernel reported an OOM kill (Docker's OOMKilled flag, a cgroup oom_kill
    /// event) or the agent died of a failed allocation under RLIMIT_AS.
    pub oom: bool,
    /// Docker: an exit of 137 that the sandbox did not cause is an OOM kill (§6
    /// pitfalls); with `Init`, docker-init reports its child's SIGKILL as 137.
    pub exit_137_means_oom: bool,
    pub wall: Duration,
    pub cpu_budget_ms: u64,
    pub memory_mb: u64,
}

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

/// The status and reason for `e`. A kill the sandbox made explains the end better than
/// anything observed after it, so it is checked first.
pub(crate) fn verdict(e: &Evidence) -> (ExecutionStatus, String) {
    use ExecutionStatus as S;
    match e.killed_for {
        Some(KillReason::Deadline) => {
            return (
                S::TimedOut,
                format!("wall-clock window of {} ms ended", e.wall.as_millis()),
            )
        }
        Some(KillReason::CpuBudget) => {
            return (
                S::CpuExceeded,
                format!("CPU time budget of {} ms used up", e.cpu_budget_ms),
            )
        }
        Some(KillReason::Memory) => {
            return (
                S::OomKilled,
                format!("resident memory went over {} MB", e.memory_mb),
            )
        }
        Some(KillReason::Requested) => {
            return (S::Failed, "killed by the orchestrator".to_string());
        }
        None => {}
    }
    if e.signal == Some(SIGXCPU) {
        return (
            S::CpuExceeded,
            format!("RLIMIT_CPU reached (budget {} ms)", e.cpu_budget_ms),
        );
    }
    if e.oom {
        return (
            S::OomKilled,
            format!("out of memory (limit {} MB)", e.memory_mb),
        );
    }
    if e.exit_137_means_oom && e.exit_code == Some(137) {
        return (
            S::OomKilled,
            format!(
                "exit 137 (SIGKILL) not caused by the sandbox: out of memory (limit {} MB)",
                e.memory_mb
            ),
        );
    }
    match (e.exit_code, e.signal) {
        (Some(0), None) => (S::Succeeded, "exited with code 0".to_string()),
        (_, Some(SIGKILL)) => (S::Failed, "killed by SIGKILL from outside".to_string()),
        (_, Some(sig)) => (S::Failed, format!("killed by signal {sig}")),
        (Some(code), None) => (S::Failed, format!("exited with code {code}")),
        (None, None) => (S::Failed, "ended without an exit code".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(f: impl FnOnce(&mut Evidence)) -> ExecutionStatus {
        let mut e = Evidence {
            exit_code: Some(0),
            ..Evidence::default()
        };
        f(&mut e);
        verdict(&e).0
    }

    #[test]
    fn sandbox_kills_take_precedence() {
        use ExecutionStatus as S;
        assert_eq!(ev(|_| {}), S::Succeeded);
        assert_eq!(
            ev(|e| {
                e.killed_for = Some(KillReason::Deadline);
                e.oom = true;
                e.exit_code = Some(137);
            }),
            S::TimedOut
        );
        assert_eq!(
            ev(|e| e.killed_for = Some(KillReason::CpuBudget)),
            S::CpuExceeded
        );
        assert_eq!(
            ev(|e| e.killed_for = Some(KillReason::Requested)),
            S::Failed
        );
    }

    #[test]
    fn oom_is_recognised_by_flag_or_by_137() {
        use ExecutionStatus as S;
        // A child OOM kill can leave exit 0 with the flag set (§6 pitfall).
        assert_eq!(ev(|e| e.oom = true), S::OomKilled);
        assert_eq!(
            ev(|e| {
                e.exit_code = Some(137);
                e.exit_137_means_oom = true;
            }),
            S::OomKilled
        );
        // Without the docker rule, a bare 137 is just a failure.
        assert_eq!(ev(|e| e.exit_code = Some(137)), S::Failed);
    }

    #[test]
    fn signals_and_codes() {
        use ExecutionStatus as S;
        assert_eq!(
            ev(|e| {
                e.exit_code = None;
                e.signal = Some(SIGXCPU);
            }),
            S::CpuExceeded
        );
        assert_eq!(ev(|e| e.exit_code = Some(3)), S::Failed);
        assert_eq!(
            ev(|e| {
                e.exit_code = Some(128 + 15);
                e.signal = Some(15);
            }),
            S::Failed
        );
    }
}
