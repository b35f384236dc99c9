//! One execution from allocation to its recorded end (SPEC §6, §8): a socket
//! directory with the System Service on it, a token, env.json, the launch, the
//! agent's output into system.log, and the outcome into the store. An execution the
//! runtime could not start is `lost` (refunded, its bid restored); one whose own
//! workspace made it unstartable (a malformed `agent.toml`) has `failed`, as a
//! crash of its program would have.

use super::environment::{entry_point, write_fresh, EnvInput, ExecutionEnv, PREVIOUS_LOG};
use super::template::{API_FILE, RULES_FILE, SHARED_MOUNT};
use super::Inner;
use crate::api::UnixServer;
use crate::store::{ExecutionEnd, ExecutionRecord};
use agora_core::lifecycle::ExecutionStatus;
use agora_sandbox::{ExecutionSpec, Limits, LogLine, Outcome, ReadonlyMount, RunningExecution};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Runs one allocated execution to its end; never fails: every way it can go wrong
/// ends as a recorded status.
pub(super) async fn run(inner: Arc<Inner>, exec: ExecutionRecord) {
    let id = exec.id;
    let socket_dir = inner.run_dir.join(format!("exec-{}", id.0));
    let started = {
        let Ok(_permit) = inner.launches.acquire().await else {
            return;
        };
        if inner.stopping.is_cancelled() {
            Err(NotStarted::Runtime(
                "agora stopped before it started".into(),
            ))
        } else {
            launch(&inner, &exec, &socket_dir).await
        }
    };
    match started {
        Ok(l) => {
            supervise(&inner, &exec, l.running, &l.log_path, &l.workspace).await;
            l.server.stop().await;
        }
        Err(not_started) => {
            let recorded = match not_started {
                NotStarted::Runtime(why) => {
                    tracing::warn!(component = "orchestrator", agent = %exec.agent, execution = %id, reason = %why, "execution did not start");
                    inner.store.abandon_execution(id, why, inner.rebid()).await
                }
                NotStarted::Agent(why) => {
                    tracing::info!(component = "orchestrator", agent = %exec.agent, execution = %id, reason = %why, "execution failed before it ran");
                    let end = ExecutionEnd::new(ExecutionStatus::Failed, None, Some(why));
                    inner.store.end_execution(id, end).await
                }
            };
            if let Err(e) = recorded {
                tracing::error!(component = "orchestrator", execution = %id, error = %e, "cannot record an execution that did not start");
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&socket_dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(component = "orchestrator", path = %socket_dir.display(), error = %e, "cannot remove a socket directory");
        }
    }
}

/// Why an execution never ran, and whose failure that was.
enum NotStarted {
    /// The runtime's: the execution is lost, refunded, its bid restored.
    Runtime(String),
    /// The agent's own workspace: the execution failed.
    Agent(String),
}

impl From<String> for NotStarted {
    fn from(why: String) -> Self {
        NotStarted::Runtime(why)
    }
}

/// Everything before the agent runs; an `Err` is why it never started.
async fn launch(
    inner: &Arc<Inner>,
    exec: &ExecutionRecord,
    socket_dir: &Path,
) -> Result<Launched, NotStarted> {
    let store = &inner.store;
    let agent = store.agent(exec.agent).await.map_err(|e| e.to_string())?;
    let workspace = PathBuf::from(&agent.workspace);
    let log_path = inner.logs_dir.join(format!("execution-{}.log", exec.id.0));
    let mut spec = ExecutionSpec::new(exec.agent, exec.id, &workspace, socket_dir, &log_path);
    spec.command = entry_point(&workspace).map_err(NotStarted::Agent)?;
    spec.limits = limits(inner, exec);
    spec.readonly_mounts = vec![ReadonlyMount {
        host: inner.shared_dir.clone(),
        target: SHARED_MOUNT.to_string(),
    }];
    spec.debug = inner.take_debug(exec.agent);
    std::fs::create_dir_all(socket_dir).map_err(|e| format!("socket directory: {e}"))?;
    let sandbox = inner.current_sandbox();
    let view = sandbox.view(&spec);
    // Without a mount namespace the agent sees host paths.
    let shared = if view.workspace == workspace {
        inner.shared_dir.clone()
    } else {
        PathBuf::from(SHARED_MOUNT)
    };
    let token = store
        .issue_token(exec.id)
        .await
        .map_err(|e| e.to_string())?;
    let credits = store.balance(exec.agent).await.map_err(|e| e.to_string())?;
    let env = ExecutionEnv::new(EnvInput {
        agent: exec.agent,
        execution: exec.id,
        cycle: exec.cycle,
        credits,
        bundle: &exec.bundle,
        wall: spec.limits.wall,
        system_service_url: view.system_service_url(),
        token,
        rules_path: shared.join(RULES_FILE).display().to_string(),
        api_description_path: shared.join(API_FILE).display().to_string(),
    });
    env.write(&workspace)
        .map_err(|e| format!("cannot write env.json: {e}"))?;
    spec.env = env.variables();
    // Requests on this socket come from this execution: they run in its span.
    let router = crate::api::trace::within(inner.router.clone(), tracing::Span::current());
    let server = UnixServer::bind(&socket_dir.join(agora_sandbox::SOCKET_FILE), router)
        .map_err(|e| format!("cannot serve the System Service socket: {e}"))?;
    let running = match sandbox.launch(spec).await {
        Ok(r) => r,
        Err(e) => {
            server.stop().await;
            return Err(format!("sandbox: {e}").into());
        }
    };
    let recorded = store
        .start_execution(
            exec.id,
            sandbox.backend(),
            running.container_id(),
            &log_path.display().to_string(),
        )
        .await;
    if !matches!(recorded, Ok(true)) {
        // Ended meanwhile (shutdown) or unrecordable: it must not run unrecorded.
        running.kill();
        let _ = running.wait().await;
        server.stop().await;
        return Err(NotStarted::Runtime(match recorded {
            Err(e) => format!("cannot record the start: {e}"),
            Ok(_) => "ended before it started".into(),
        }));
    }
    tracing::info!(component = "sandbox", agent = %exec.agent, execution = %exec.id, cycle = exec.cycle,
        backend = sandbox.backend(), container = running.container_id().unwrap_or("-"), "execution started");
    Ok(Launched {
        running,
        server,
        log_path,
        workspace,
    })
}

/// A started execution and what it holds until it ends.
struct Launched {
    running: RunningExecution,
    /// The System Service on the execution's socket.
    server: UnixServer,
    log_path: PathBuf,
    workspace: PathBuf,
}

/// The limits a won bundle buys, with the configured wall-clock default and cap.
fn limits(inner: &Inner, exec: &ExecutionRecord) -> Limits {
    let l = &inner.config.limits;
    let wall = exec
        .bundle
        .wall_millis()
        .map(|ms| ms as f64 / 1000.0)
        .unwrap_or(l.default_wall_seconds)
        .min(l.max_wall_seconds)
        .max(0.001);
    Limits {
        wall: Duration::from_secs_f64(wall),
        ..Limits::from_bundle(&exec.bundle)
    }
}

/// Waits for the end, forwarding output to system.log, then records the outcome.
async fn supervise(
    inner: &Arc<Inner>,
    exec: &ExecutionRecord,
    mut running: RunningExecution,
    log_path: &Path,
    workspace: &Path,
) {
    let id = exec.id;
    inner.register(id, running.kill_switch());
    let forward = running.take_logs().map(|mut rx| {
        tokio::spawn(
            async move {
                while let Some(line) = rx.recv().await {
                    agent_line(&line);
                }
            }
            .in_current_span(),
        )
    });
    let waited = running.wait().await;
    let killed_by_shutdown = !inner.unregister(id);
    if let Some(f) = forward {
        let _ = f.await;
    }
    let recorded = match waited {
        Ok(_) if killed_by_shutdown => {
            let why = "agora stopped while it ran".to_string();
            inner.store.abandon_execution(id, why, inner.rebid()).await
        }
        Ok(outcome) => {
            let end = end_of(&outcome);
            tracing::info!(component = "orchestrator", agent = %exec.agent, execution = %id, cycle = exec.cycle,
                status = outcome.status.as_str(), exit_code = ?outcome.exit_code, reason = %outcome.reason,
                cpu_used_ms = ?outcome.cpu_used_ms, "execution finished");
            inner.store.end_execution(id, end).await
        }
        Err(e) => {
            inner
                .store
                .abandon_execution(id, format!("sandbox supervisor lost: {e}"), inner.rebid())
                .await
        }
    };
    match recorded {
        Ok(Some(ended)) => {
            if let Some(death) = ended.death {
                tracing::info!(component = "orchestrator", agent = %exec.agent, execution = %id, reason = death.as_str(), "agent died");
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(component = "orchestrator", execution = %id, error = %e, "cannot record an execution's end")
        }
    }
    if let Err(e) = keep_previous_log(workspace, log_path) {
        tracing::warn!(component = "orchestrator", execution = %id, error = %e, "cannot copy the log into the workspace");
    }
}

fn end_of(o: &Outcome) -> ExecutionEnd {
    let as_i64 = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
    ExecutionEnd {
        status: o.status,
        exit_code: o.exit_code,
        reason: Some(o.reason.clone()),
        cpu_used_ms: as_i64(o.cpu_used_ms),
        peak_memory_mb: as_i64(o.peak_memory_mb),
    }
}

/// One line of agent output into system.log, tagged with its ids.
fn agent_line(l: &LogLine) {
    tracing::info!(component = "agent", agent = %l.agent, execution = %l.execution, stream = ?l.stream, "{}", l.line);
}

/// Copies the execution's log to `.agora/previous_execution.log` in the workspace,
/// so the agent can read it on its next execution. The agent owns that folder, so
/// nothing in it is followed: a symlink it planted is replaced, never written through.
fn keep_previous_log(workspace: &Path, log: &Path) -> std::io::Result<()> {
    let target = workspace.join(PREVIOUS_LOG);
    let Some(dir) = target.parent() else {
        return Ok(());
    };
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            std::fs::remove_file(dir)?;
            std::fs::create_dir(dir)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(dir)?,
        Err(e) => return Err(e),
    }
    let contents = std::fs::read(log)?;
    write_fresh(&target, &contents)
}
