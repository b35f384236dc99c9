//! The process backend (SPEC §6 fallback, and fast tests): the agent runs as a child
//! process, started through three small exec wrappers so that no `unsafe` pre-exec hook
//! is needed (the workspace forbids unsafe code):
//!
//! ```text
//! setpriv --reuid U --regid U --clear-groups --no-new-privs --bounding-set -all …
//!   prlimit --as=… --cpu=… --nproc=… --nofile=… --core=0 --
//!     [bwrap --unshare-all --die-with-parent … --]  python3 main.py
//! ```
//!
//! setpriv and prlimit (util-linux, always present on Debian) set the uid, capabilities,
//! no-new-privileges and rlimits in the child and exec the next stage, which is exactly
//! what a pre_exec closure would have done, at the cost of two execs (~2 ms). The
//! child gets its own process group, a cleared environment and the workspace as cwd;
//! the host kills the group at the deadline and checks the group's CPU time and
//! resident memory from /proc, because RLIMIT_CPU and RLIMIT_AS count per process.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::process::Command;
use tokio::sync::oneshot;

use crate::logs::{Ending, LogPump, LogStream};
use crate::procfs;
use crate::reconcile::Leftover;
use crate::spec::{base_env, SandboxView};
use crate::verdict::{verdict, Evidence, KillReason};
use crate::{
    AgentUser, ExecutionSandbox, ExecutionSpec, IsolationReport, KillSwitch, Outcome,
    RunningExecution, SandboxError,
};
use tracing::Instrument;

/// Whether to wrap executions in bubblewrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BwrapMode {
    /// Use it when `bwrap` is on PATH.
    #[default]
    Auto,
    /// Never (e.g. to measure the bare start time).
    Off,
    /// Fail to construct the sandbox when it is missing.
    Required,
}

/// How to run processes.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    pub bwrap: BwrapMode,
    /// How often group CPU time and memory are read from /proc.
    pub poll_interval: Duration,
    /// First uid of agents when running as root (see [`AgentUser`]).
    pub agent_uid_base: u32,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            bwrap: BwrapMode::Auto,
            poll_interval: Duration::from_millis(100),
            agent_uid_base: crate::identity::AGENT_UID_BASE,
        }
    }
}

/// Output still in flight after the group was killed is drained for at most this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The process backend.
#[derive(Debug, Clone)]
pub struct ProcessSandbox {
    opts: ProcessOptions,
    setpriv: PathBuf,
    prlimit: PathBuf,
    bwrap: Option<PathBuf>,
}

/// Finds an executable on PATH, then in /usr/bin and /bin.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl ProcessSandbox {
    /// Finds the wrappers; fails when util-linux's setpriv/prlimit are missing, or
    /// bubblewrap is required and missing.
    pub fn new(opts: ProcessOptions) -> Result<ProcessSandbox, SandboxError> {
        let setpriv = which("setpriv").ok_or(SandboxError::MissingTool("setpriv"))?;
        let prlimit = which("prlimit").ok_or(SandboxError::MissingTool("prlimit"))?;
        let bwrap = match opts.bwrap {
            BwrapMode::Off => None,
            BwrapMode::Auto => which("bwrap"),
            BwrapMode::Required => Some(which("bwrap").ok_or(SandboxError::MissingTool("bwrap"))?),
        };
        Ok(ProcessSandbox {
            opts,
            setpriv,
            prlimit,
            bwrap,
        })
    }

    /// Whether executions run inside bubblewrap.
    pub fn uses_bwrap(&self) -> bool {
        self.bwrap.is_some()
    }

    fn report(&self, user: Option<&AgentUser>) -> IsolationReport {
        let bwrap = self.bwrap.is_some();
        let separated = user.map_or(rustix::process::geteuid().is_root(), |u| u.separated);
        let mut notes = Vec::new();
        if !bwrap {
            notes.push(
                "bubblewrap not installed: no network, mount or PID isolation; the agent \
                 can use the network and read world-readable host files"
                    .to_string(),
            );
        }
        if !separated {
            notes.push(
                "orchestrator is not root: agents share its uid, so RLIMIT_NPROC counts \
                 all of that uid's processes and agents can read each other's files"
                    .to_string(),
            );
        }
        notes.push("memory is an address-space rlimit: allocations fail beyond it".into());
        IsolationReport {
            backend: "process",
            uid: user.map(|u| u.uid),
            non_root: user.map_or(separated, |u| u.uid != 0),
            uid_per_agent: separated,
            no_privileges: true,
            memory_limit: "rlimit_as",
            cpu_limit: "rlimit+procfs",
            process_limit: "rlimit_nproc",
            network_isolated: bwrap,
            filesystem_isolated: bwrap,
            pid_isolated: bwrap,
            bwrap,
            seccomp: false,
            notes,
        }
    }

    /// The full wrapped command line.
    fn command_line(&self, spec: &ExecutionSpec, user: &AgentUser) -> Vec<OsString> {
        let l = &spec.limits;
        let mut a: Vec<OsString> = vec![self.setpriv.clone().into()];
        if user.separated {
            a.extend(
                [
                    format!("--reuid={}", user.uid),
                    format!("--regid={}", user.gid),
                    "--clear-groups".into(),
                    "--bounding-set=-all".into(),
                    "--inh-caps=-all".into(),
                ]
                .map(OsString::from),
            );
        }
        // pdeathsig: if the orchestrator dies, the child (or bwrap) dies with it
        // instead of running on unsupervised.
        a.extend(["--no-new-privs", "--pdeathsig=KILL", "--"].map(OsString::from));
        let mem = l.memory_mb.saturating_mul(1024 * 1024);
        // RLIMIT_CPU has whole-second resolution: SIGXCPU at the budget rounded up,
        // SIGKILL a second later. The host check below is the precise one.
        let cpu = l.cpu_millis.div_ceil(1000).max(1);
        a.push(self.prlimit.clone().into());
        a.extend(
            [
                format!("--as={mem}:{mem}"),
                format!("--cpu={cpu}:{}", cpu + 1),
                format!("--nproc={0}:{0}", l.pids),
                format!("--nofile={0}:{0}", l.nofile),
                "--core=0:0".into(),
                "--".into(),
            ]
            .map(OsString::from),
        );
        if let Some(bwrap) = &self.bwrap {
            a.push(bwrap.clone().into());
            a.extend(crate::bwrap::args(spec));
        }
        a.extend(spec.effective_command().into_iter().map(OsString::from));
        a
    }

    async fn launch_inner(&self, spec: ExecutionSpec) -> Result<RunningExecution, SandboxError> {
        spec.validate()?;
        if spec.debug {
            return Err(SandboxError::InvalidSpec(
                "debug mode needs the docker backend (ADR 006)".into(),
            ));
        }
        let user = AgentUser::for_agent(spec.agent, self.opts.agent_uid_base)?;
        {
            let (ws, sock) = (spec.workspace.clone(), spec.socket_dir.clone());
            tokio::task::spawn_blocking(move || user.hand_over(&ws, &sock))
                .await
                .map_err(|_| SandboxError::SupervisorGone)??;
        }
        if user.separated {
            // Anything still running under this agent's uid was left by a crashed
            // orchestrator; it must not share the new execution's limits. A /proc scan
            // blocks, so it runs off the async workers.
            let uid = user.uid;
            let _ = tokio::task::spawn_blocking(move || procfs::kill_uid(uid)).await;
        }
        let isolation = self.report(Some(&user));
        let (pump, log_rx) = LogPump::start(spec.agent, spec.execution, &spec.log_path).await?;

        let argv = self.command_line(&spec, &user);
        let home = if self.bwrap.is_some() {
            "/tmp".to_string()
        } else {
            spec.workspace.to_string_lossy().into_owned()
        };
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(base_env(&home))
            .envs(spec.env.iter().cloned())
            .current_dir(&spec.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| SandboxError::io("spawn agent process", e))?;
        let started = Instant::now();
        let started_at = SystemTime::now();
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| SandboxError::io("agent pid", std::io::Error::other("no pid")))?;
        tracing::info!(component = "sandbox", agent = %spec.agent, execution = %spec.execution, pid, "execution created -> running");

        let sender = pump.sender();
        sender
            .send(
                LogStream::Sandbox,
                format!("isolation: {}", isolation.summary()),
            )
            .await;
        let memory_error = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            let s = sender.clone();
            readers.push(tokio::spawn(async move {
                s.pump(LogStream::Stdout, out, |_| {}).await
            }));
        }
        if let Some(err) = child.stderr.take() {
            let s = sender.clone();
            let flag = memory_error.clone();
            readers.push(tokio::spawn(async move {
                s.pump(LogStream::Stderr, err, |l| {
                    // Under RLIMIT_AS an allocation fails instead of being killed; a
                    // Python agent then dies with MemoryError, a C one with ENOMEM.
                    if l.contains("MemoryError") || l.contains("Cannot allocate memory") {
                        flag.store(true, Ordering::Relaxed);
                    }
                })
                .await
            }));
        }
        drop(sender);

        let (tx, rx) = oneshot::channel();
        let kill = KillSwitch::default();
        let sup = Supervisor {
            child,
            pid,
            user,
            spec_limits: spec.limits.clone(),
            agent: spec.agent,
            execution: spec.execution,
            deadline: started + spec.limits.wall,
            started_at,
            poll_interval: self.opts.poll_interval,
            kill: kill.clone(),
            bwrap: self.bwrap.is_some(),
            isolation,
            memory_error,
        };
        // In the caller's span (the execution's): the supervisor's lines carry its ids.
        tokio::spawn(
            async move {
                let outcome = sup.run(pump, readers).await;
                let _ = tx.send(outcome);
            }
            .in_current_span(),
        );
        Ok(RunningExecution::new(
            spec.agent,
            spec.execution,
            None,
            log_rx,
            rx,
            kill,
        ))
    }
}

struct Supervisor {
    child: tokio::process::Child,
    pid: i32,
    user: AgentUser,
    spec_limits: crate::Limits,
    agent: agora_core::AgentId,
    execution: agora_core::ExecutionId,
    deadline: Instant,
    started_at: SystemTime,
    poll_interval: Duration,
    kill: KillSwitch,
    bwrap: bool,
    isolation: IsolationReport,
    memory_error: Arc<AtomicBool>,
}

impl Supervisor {
    async fn run(mut self, pump: LogPump, readers: Vec<tokio::task::JoinHandle<()>>) -> Outcome {
        let l = self.spec_limits.clone();
        let mut killed_for = None;
        let mut cpu_ms = 0u64;
        let mut peak_rss = 0u64;
        let mut tick = tokio::time::interval(self.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let status = loop {
            let kill_now = tokio::select! {
                st = self.child.wait() => break st.ok(),
                _ = tokio::time::sleep_until(deadline), if killed_for.is_none() => Some(KillReason::Deadline),
                _ = self.kill.killed(), if killed_for.is_none() => Some(KillReason::Requested),
                _ = tick.tick() => {
                    let pid = self.pid;
                    // A /proc scan blocks; with many executions polling at once it
                    // must not hold up the async workers the store and API run on.
                    let u = tokio::task::spawn_blocking(move || procfs::group_usage(pid))
                        .await
                        .unwrap_or_default();
                    cpu_ms = cpu_ms.max(u.cpu_ms);
                    peak_rss = peak_rss.max(u.rss_bytes);
                    if killed_for.is_some() {
                        None
                    } else if u.cpu_ms >= l.cpu_millis {
                        Some(KillReason::CpuBudget)
                    } else if u.rss_bytes > l.memory_mb.saturating_mul(1024 * 1024) {
                        Some(KillReason::Memory)
                    } else {
                        None
                    }
                }
            };
            if let Some(reason) = kill_now {
                killed_for = Some(reason);
                procfs::kill_group(self.pid);
            }
        };
        // The execution ends when its main process does: whatever it left running in
        // its group dies now, and, when the uid is the agent's own, so does anything
        // that left the group with setsid.
        procfs::kill_group(self.pid);
        let swept = if self.user.separated {
            let uid = self.user.uid;
            tokio::task::spawn_blocking(move || procfs::kill_uid(uid))
                .await
                .unwrap_or(0)
        } else {
            0
        };
        for r in readers {
            if tokio::time::timeout(DRAIN_TIMEOUT, r).await.is_err() {
                tracing::warn!(
                    component = "sandbox",
                    pid = self.pid,
                    "agent output did not close after kill"
                );
            }
        }

        let (mut exit_code, mut signal) = match status {
            Some(s) => (s.code().map(i64::from), s.signal()),
            None => (None, None),
        };
        if let Some(sig) = signal {
            exit_code = Some(128 + i64::from(sig));
        } else if self.bwrap {
            // bwrap reports a child killed by a signal as exit 128 + signal.
            if let Some(c) = exit_code.filter(|c| (129..=159).contains(c)) {
                signal = i32::try_from(c - 128).ok();
            }
        }
        // RLIMIT_CPU's hard limit ends with SIGKILL, which would otherwise look like a
        // kill from outside.
        if killed_for.is_none() && signal == Some(9) && cpu_ms + 1000 >= l.cpu_millis {
            killed_for = Some(KillReason::CpuBudget);
        }
        let evidence = Evidence {
            killed_for,
            exit_code,
            signal,
            oom: exit_code != Some(0) && self.memory_error.load(Ordering::Relaxed),
            exit_137_means_oom: false,
            wall: l.wall,
            cpu_budget_ms: l.cpu_millis,
            memory_mb: l.memory_mb,
        };
        let (status, reason) = verdict(&evidence);
        let peak_memory_mb = (peak_rss > 0).then(|| peak_rss.div_ceil(1024 * 1024));
        tracing::info!(
            component = "sandbox",
            agent = %self.agent, execution = %self.execution, pid = self.pid,
            exit_code, %reason, swept, "execution running -> {}", status.as_str()
        );
        pump.conclude(Ending {
            agent: self.agent,
            execution: self.execution,
            status,
            exit_code,
            reason,
            cpu_used_ms: Some(cpu_ms),
            peak_memory_mb,
            isolation: self.isolation,
            container_id: None,
            started_at: self.started_at,
        })
        .await
    }
}

impl ExecutionSandbox for ProcessSandbox {
    fn backend(&self) -> &'static str {
        "process"
    }

    fn isolation(&self) -> IsolationReport {
        self.report(None)
    }

    fn view(&self, spec: &ExecutionSpec) -> SandboxView {
        if self.bwrap.is_some() {
            SandboxView::mounted()
        } else {
            SandboxView {
                workspace: spec.workspace.clone(),
                socket_dir: spec.socket_dir.clone(),
            }
        }
    }

    fn launch(&self, spec: ExecutionSpec) -> BoxFuture<'_, Result<RunningExecution, SandboxError>> {
        self.launch_inner(spec).boxed()
    }

    /// Children die with the orchestrator (pdeathsig, and bwrap's die-with-parent takes
    /// its whole PID namespace along), so there is nothing to remove after a crash.
    /// Grandchildren of an agent that escaped its group and runs without bwrap are the
    /// exception; they are swept by uid when that agent's next execution starts.
    fn reconcile(&self) -> BoxFuture<'_, Result<Vec<Leftover>, SandboxError>> {
        async { Ok(Vec::new()) }.boxed()
    }
}
