//! What to run, with which limits and mounts: the [`ExecutionSpec`] the orchestrator
//! hands to a sandbox, checked once by [`ExecutionSpec::validate`] before any backend
//! touches the host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agora_core::{AgentId, Bundle, ExecutionId, Resource};

use crate::SandboxError;

/// Where the workspace is mounted inside a sandbox that has its own mount namespace.
pub const WORKSPACE_MOUNT: &str = "/workspace";
/// Where the per-execution socket directory is mounted inside such a sandbox.
pub const SOCKET_MOUNT: &str = "/run/agora";
/// The System Service socket's file name inside the socket directory.
pub const SOCKET_FILE: &str = "api.sock";

/// The hard limits of one execution, all enforced by the kernel or from the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// CPU time budget in milliseconds (the bundle's `cpu_seconds`, stored as ms).
    pub cpu_millis: u64,
    /// Memory in MB; for docker memory = memory+swap, for the process backend the
    /// address-space limit.
    pub memory_mb: u64,
    /// Wall-clock window, counted from the moment the execution started.
    pub wall: Duration,
    /// How many processes (threads included) the execution may have at once.
    pub pids: u32,
    /// Open file descriptors per process.
    pub nofile: u32,
    /// Size of the writable /tmp in MB.
    pub tmp_mb: u32,
    /// CPU rate limit in cores (docker `NanoCpus`), so one agent cannot starve the
    /// host's other cores while it spends its budget.
    pub cpu_rate: f64,
}

impl Limits {
    /// Default wall-clock window when a bundle names none.
    pub const DEFAULT_WALL: Duration = Duration::from_secs(60);

    /// The limits a won bundle buys; process count, descriptors and /tmp are not
    /// traded in the market, so they take the house defaults.
    pub fn from_bundle(bundle: &Bundle) -> Limits {
        Limits {
            cpu_millis: bundle.get(Resource::CpuSeconds),
            memory_mb: bundle.get(Resource::MemoryMb),
            wall: bundle
                .wall_millis()
                .map(Duration::from_millis)
                .unwrap_or(Self::DEFAULT_WALL),
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_millis: 10_000,
            memory_mb: 256,
            wall: Self::DEFAULT_WALL,
            pids: 64,
            nofile: 256,
            tmp_mb: 64,
            cpu_rate: 1.0,
        }
    }
}

/// A host file or directory made readable, read-only, inside the sandbox (the game
/// rules, the API description).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadonlyMount {
    pub host: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
}

/// Everything a sandbox needs to run one execution.
#[derive(Debug, Clone)]
pub struct ExecutionSpec {
    pub agent: AgentId,
    pub execution: ExecutionId,
    /// The agent's workspace on the host; the only persistent writable place,
    /// mounted at `/workspace` and used as the working directory.
    pub workspace: PathBuf,
    /// A per-execution host directory holding the System Service socket `api.sock`;
    /// mounted (the directory, never the socket file) read-only at `/run/agora`.
    pub socket_dir: PathBuf,
    /// The environment the agent sees, on top of a minimal base (PATH, HOME, LANG,
    /// PYTHONUNBUFFERED). The orchestrator fills AGENT_ID, EXECUTION_ID,
    /// SYSTEM_SERVICE_URL, AGORA_TOKEN, OPENAI_BASE_URL, OPENAI_API_KEY.
    pub env: Vec<(String, String)>,
    /// The entry point; `python3 main.py` unless the workspace manifest says otherwise.
    pub command: Vec<String>,
    pub limits: Limits,
    pub readonly_mounts: Vec<ReadonlyMount>,
    /// The per-execution log file; every output line is appended to it.
    pub log_path: PathBuf,
    /// Start under debugpy listening on 5678 and wait for an attach (ADR 006).
    pub debug: bool,
}

impl ExecutionSpec {
    /// A spec with the default entry point, limits and no extra mounts.
    pub fn new(
        agent: AgentId,
        execution: ExecutionId,
        workspace: impl Into<PathBuf>,
        socket_dir: impl Into<PathBuf>,
        log_path: impl Into<PathBuf>,
    ) -> ExecutionSpec {
        ExecutionSpec {
            agent,
            execution,
            workspace: workspace.into(),
            socket_dir: socket_dir.into(),
            env: Vec::new(),
            command: vec!["python3".into(), "main.py".into()],
            limits: Limits::default(),
            readonly_mounts: Vec::new(),
            log_path: log_path.into(),
            debug: false,
        }
    }

    /// Checks what can be checked before touching the host. Missing directories are an
    /// error here rather than something a backend creates: Docker would create a
    /// missing bind source as a root-owned directory and hide the mistake.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let invalid = |m: String| Err(SandboxError::InvalidSpec(m));
        if self.command.is_empty() || self.command[0].is_empty() {
            return invalid("empty command".into());
        }
        require_dir(&self.workspace, "workspace")?;
        require_dir(&self.socket_dir, "socket_dir")?;
        for m in &self.readonly_mounts {
            if !m.target.starts_with('/') || m.target.contains("..") {
                return invalid(format!("mount target {:?} must be absolute", m.target));
            }
            if !m.host.exists() {
                return invalid(format!("read-only mount source {:?} is missing", m.host));
            }
        }
        let l = &self.limits;
        if l.memory_mb < 16 {
            return invalid(format!("memory_mb {} is below 16 MB", l.memory_mb));
        }
        if l.cpu_millis == 0 || l.wall.is_zero() || l.pids == 0 || l.nofile < 16 {
            return invalid("cpu_millis, wall and pids must be positive, nofile >= 16".into());
        }
        if !(l.cpu_rate > 0.0 && l.cpu_rate <= 64.0) {
            return invalid(format!("cpu_rate {} out of range", l.cpu_rate));
        }
        for (k, _) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return invalid(format!("bad environment variable name {k:?}"));
            }
        }
        if self.debug && self.command[0] != "python3" {
            return invalid("debug mode needs a `python3 …` command".into());
        }
        Ok(())
    }

    /// The command line to run: under debugpy (waiting for an attach on 5678) in debug
    /// mode, as given otherwise.
    pub(crate) fn effective_command(&self) -> Vec<String> {
        if !self.debug {
            return self.command.clone();
        }
        let mut cmd: Vec<String> = [
            "python3",
            "-m",
            "debugpy",
            "--listen",
            "0.0.0.0:5678",
            "--wait-for-client",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cmd.extend(self.command.iter().skip(1).cloned());
        cmd
    }
}

/// The environment under the orchestrator's: unbuffered Python so each line reaches
/// the log as it is printed, a writable HOME, nothing inherited from the host.
pub(crate) fn base_env(home: &str) -> Vec<(String, String)> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", home),
        ("LANG", "C.UTF-8"),
        ("PYTHONUNBUFFERED", "1"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn require_dir(path: &Path, what: &str) -> Result<(), SandboxError> {
    if !path.is_absolute() {
        return Err(SandboxError::InvalidSpec(format!(
            "{what} {path:?} must be an absolute path"
        )));
    }
    if !path.is_dir() {
        return Err(SandboxError::InvalidSpec(format!(
            "{what} {path:?} is not an existing directory"
        )));
    }
    Ok(())
}

/// The workspace and socket directory as the agent sees them. The docker backend and
/// the process backend inside bubblewrap mount them at fixed paths; the bare process
/// backend has no mount namespace, so the agent sees the host paths.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxView {
    pub workspace: PathBuf,
    pub socket_dir: PathBuf,
}

impl SandboxView {
    /// The `SYSTEM_SERVICE_URL` an agent in this sandbox should use.
    pub fn system_service_url(&self) -> String {
        format!("unix://{}", self.socket_dir.join(SOCKET_FILE).display())
    }

    pub(crate) fn mounted() -> SandboxView {
        SandboxView {
            workspace: PathBuf::from(WORKSPACE_MOUNT),
            socket_dir: PathBuf::from(SOCKET_MOUNT),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> ExecutionSpec {
        ExecutionSpec::new(AgentId(1), ExecutionId(2), dir, dir, dir.join("log"))
    }

    #[test]
    fn validate_rejects_missing_workspace_and_bad_limits() {
        let dir = tempfile::tempdir().unwrap();
        assert!(spec(dir.path()).validate().is_ok());

        let mut s = spec(dir.path());
        s.workspace = dir.path().join("nope");
        assert!(matches!(s.validate(), Err(SandboxError::InvalidSpec(_))));

        let mut s = spec(dir.path());
        s.limits.memory_mb = 4;
        assert!(s.validate().is_err());

        let mut s = spec(dir.path());
        s.command.clear();
        assert!(s.validate().is_err());

        let mut s = spec(dir.path());
        s.env.push(("A=B".into(), "x".into()));
        assert!(s.validate().is_err());
    }

    #[test]
    fn debug_mode_wraps_python_in_debugpy() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path());
        s.debug = true;
        assert_eq!(
            s.effective_command().join(" "),
            "python3 -m debugpy --listen 0.0.0.0:5678 --wait-for-client main.py"
        );
        s.command = vec!["sh".into(), "run.sh".into()];
        assert!(s.validate().is_err());
    }

    #[test]
    fn view_names_the_socket() {
        assert_eq!(
            SandboxView::mounted().system_service_url(),
            "unix:///run/agora/api.sock"
        );
    }
}
