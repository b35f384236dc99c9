//! The ExecutionSandbox (SPEC §6): runs one execution of one agent under hard kernel
//! limits and reports how it ended.
//!
//! Two backends implement [`ExecutionSandbox`]: [`DockerSandbox`] (default; a hardened
//! container with no network and the System Service reachable only through a
//! per-execution Unix socket directory) and [`ProcessSandbox`] (fallback; a child
//! process under rlimits in its own process group, inside bubblewrap when installed).
//! Both report honestly, in the [`Outcome`] and in the log, which isolation they gave.
//!
//! **Invariant:** this crate knows nothing about the ledger, the market or HTTP. It is
//! handed a finished [`ExecutionSpec`] and gives back log lines and an [`Outcome`].

/// Launch-to-exit and launch-to-first-line benchmarks (`agora bench sandbox`).
pub mod bench;
/// The bubblewrap command line of the process backend.
mod bwrap;
/// The docker backend over the Engine API.
pub mod docker;
/// The sandbox error type.
mod error;
/// Which host uid an agent runs as, and handing its directories over to it.
mod identity;
/// Line splitting, the per-execution log file and the caller's log channel.
pub mod logs;
/// What a sandbox reports: outcome, isolation, the running-execution handle.
mod outcome;
/// The process backend: rlimits, a process group, bubblewrap when present.
pub mod process;
/// CPU time, memory and process sweeps read from /proc for the process backend.
mod procfs;
/// Finding and removing what a crashed orchestrator left behind.
mod reconcile;
/// Building the `agora-runtime:<version>` image, online or offline.
pub mod runtime_image;
/// What to run, with which limits and mounts.
mod spec;
/// From what was observed to a termination status and reason.
mod verdict;

use futures_util::future::BoxFuture;

pub use docker::{connect_docker, DockerOptions, DockerSandbox};
pub use error::SandboxError;
pub use identity::AgentUser;
pub use logs::{rfc3339, LogLine, LogStream};
pub use outcome::{IsolationReport, KillSwitch, Outcome, RunningExecution};
pub use process::{BwrapMode, ProcessOptions, ProcessSandbox};
pub use reconcile::Leftover;
pub use runtime_image::{
    build_runtime_image, runtime_image_tag, BuildPreference, ImageBuild, ImageBuildMethod,
};
pub use spec::{ExecutionSpec, Limits, ReadonlyMount, SandboxView, SOCKET_FILE};

/// One way of running executions. Object-safe so the orchestrator can hold an
/// `Arc<dyn ExecutionSandbox>` chosen at start-up.
pub trait ExecutionSandbox: Send + Sync {
    /// `"docker"` or `"process"`.
    fn backend(&self) -> &'static str;

    /// What this backend enforces on this host, before any execution runs; `agora up`
    /// prints it so the operator knows which boundary they are relying on.
    fn isolation(&self) -> IsolationReport;

    /// The workspace and socket directory as the agent will see them, so the
    /// orchestrator can write `SYSTEM_SERVICE_URL` and env.json with the right paths.
    fn view(&self, spec: &ExecutionSpec) -> SandboxView;

    /// Starts the execution. Returns once it is running; the deadline counts from then.
    /// Dropping the returned handle does not stop the execution: it still ends at its
    /// deadline and is cleaned up.
    fn launch(&self, spec: ExecutionSpec) -> BoxFuture<'_, Result<RunningExecution, SandboxError>>;

    /// Removes everything a previous run of this orchestrator left behind after a crash
    /// and says what it removed, so the orchestrator can mark those executions `lost`.
    fn reconcile(&self) -> BoxFuture<'_, Result<Vec<Leftover>, SandboxError>>;
}
