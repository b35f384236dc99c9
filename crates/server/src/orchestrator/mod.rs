//! The Orchestrator (SPEC §8): owns the loop. Every `cycle_interval` it runs one
//! allocation cycle ([`cycle`]); each winner becomes a task that launches its
//! execution in the sandbox and records how it ended ([`execution`]). At start it
//! recovers from a crash ([`recovery`]); on shutdown it kills what runs and records
//! it, so nothing is left behind.
//!
//! **Invariant:** the loop never waits for an execution or for the human; money
//! moves only through the store, one transaction per step.

pub mod backend;
mod cycle;
pub mod environment;
mod execution;
mod recovery;
pub mod template;

pub use backend::{choose, ChosenSandbox, SandboxChoice};
pub use cycle::CycleSummary;
pub use recovery::Recovery;

use crate::config::Config;
use crate::store::{Rebid, Store, StoreResult};
use agora_core::{AgentId, ExecutionId};
use agora_sandbox::{ExecutionSandbox, KillSwitch};
use axum::Router;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How the Orchestrator is set up beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct OrchestratorOptions {
    /// Start this agent's next execution under debugpy (ADR 006).
    pub debug_agent: Option<AgentId>,
    /// Observes each cycle's duration (`agora_cycle_duration_seconds` of the
    /// System Service's `/metrics`).
    pub cycle_duration: Option<Histogram>,
}

/// The Orchestrator; a clone is a handle to the same one.
#[derive(Clone)]
pub struct Orchestrator(Arc<Inner>);

pub(crate) struct Inner {
    store: Store,
    config: Config,
    /// The backend new executions launch in; replaced once when `auto` upgrades
    /// from the process backend to docker. Running executions keep their own.
    sandbox: RwLock<Arc<dyn ExecutionSandbox>>,
    /// The System Service router every per-execution socket serves.
    router: Router,
    /// `<data dir>/shared`: RULES.md and openapi.json, mounted read-only at /agora.
    shared_dir: PathBuf,
    /// `<data dir>/run`: one socket directory per execution.
    run_dir: PathBuf,
    /// `<data dir>/logs/executions`: one log file per execution.
    logs_dir: PathBuf,
    /// Bounds how many sandboxes start at once: a container start costs the daemon
    /// about 0.2 s, and a burst of winners must not stall the host.
    launches: Semaphore,
    /// Kill switches of running executions, so shutdown can stop them.
    running: Mutex<HashMap<ExecutionId, KillSwitch>>,
    /// Every execution's task, so shutdown can wait until their ends are recorded.
    tasks: TaskTracker,
    /// Cancelled at shutdown: launches not yet begun give up (and are refunded).
    stopping: CancellationToken,
    /// The agent whose next execution runs under debugpy; taken once.
    debug_agent: Mutex<Option<AgentId>>,
    /// Where each cycle's duration goes, if anywhere.
    cycle_duration: Option<Histogram>,
}

/// How long shutdown waits for killed executions to be recorded.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

impl Orchestrator {
    /// An Orchestrator over an open store. `router` is the System Service that
    /// per-execution sockets serve; `shared_dir` holds RULES.md and openapi.json.
    pub fn new(
        store: Store,
        config: Config,
        sandbox: Arc<dyn ExecutionSandbox>,
        router: Router,
        shared_dir: PathBuf,
        options: OrchestratorOptions,
    ) -> std::io::Result<Orchestrator> {
        let run_dir = config.data_dir.join("run");
        let logs_dir = config.data_dir.join("logs").join("executions");
        for d in [&run_dir, &logs_dir] {
            std::fs::create_dir_all(d)?;
        }
        // Agents' uids must reach their socket directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o755))?;
        let launches = Semaphore::new(config.orchestrator.max_concurrent_launches.max(1));
        Ok(Orchestrator(Arc::new(Inner {
            store,
            config,
            sandbox: RwLock::new(sandbox),
            router,
            shared_dir,
            run_dir,
            logs_dir,
            launches,
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            debug_agent: Mutex::new(options.debug_agent),
            cycle_duration: options.cycle_duration,
        })))
    }

    /// The backend new executions launch in.
    pub fn sandbox(&self) -> Arc<dyn ExecutionSandbox> {
        self.0.current_sandbox()
    }

    /// Launches new executions in `sandbox` from now on, after removing what an
    /// earlier run may have left in it. Executions running elsewhere finish there.
    pub async fn switch_sandbox(&self, sandbox: Arc<dyn ExecutionSandbox>) {
        if let Err(e) = sandbox.reconcile().await {
            tracing::warn!(component = "orchestrator", error = %e, "cannot remove leftovers of the new sandbox");
        }
        tracing::info!(component = "orchestrator", isolation = %sandbox.isolation().summary(),
            "new executions now run in the {} backend", sandbox.backend());
        *self.0.sandbox.write().unwrap_or_else(|p| p.into_inner()) = sandbox;
    }

    /// Cleans up after a crash; call once before [`Orchestrator::run`] (which does).
    pub async fn recover(&self) -> StoreResult<Recovery> {
        recovery::recover(&self.0).await
    }

    /// Runs one cycle now (for benchmarks and tests; `run` calls it on its clock).
    pub async fn cycle(&self) -> StoreResult<CycleSummary> {
        cycle::run_cycle(&self.0).await
    }

    /// Recovers, then runs cycles every `cycle_interval` until `shutdown` resolves;
    /// then kills running executions and records them. A cycle that fails is
    /// logged and the loop carries on: one bad cycle must not stop the world.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> StoreResult<()> {
        let r = self.recover().await?;
        tracing::info!(
            component = "orchestrator",
            leftovers = r.leftovers_removed,
            lost = r.lost,
            rebid = r.rebid,
            backend = self.0.current_sandbox().backend(),
            "orchestrator started"
        );
        let interval = Duration::from_millis(self.0.config.market.cycle_interval_ms.max(1));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            match self.0.store.paused().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(component = "orchestrator", error = %e, "cannot read the pause flag");
                    continue;
                }
            }
            match self.cycle().await {
                Ok(s) => {
                    if let Some(h) = &self.0.cycle_duration {
                        h.observe(s.took.as_secs_f64());
                    }
                    tracing::info!(component = "orchestrator", cycle = s.cycle.0, "{s}")
                }
                Err(e) => tracing::error!(component = "orchestrator", error = %e, "cycle failed"),
            }
        }
        self.shutdown().await;
        Ok(())
    }

    /// Stops launching, kills every running execution, waits for their ends to be
    /// recorded, and marks anything still active `lost` (refunded if it never
    /// started).
    pub async fn shutdown(&self) {
        let inner = &self.0;
        // Cancelled under the lock: see `Inner::register`. Taken out of the map: a
        // supervisor that finds its entry gone knows the kill was ours, and records
        // the execution as lost rather than failed.
        let switches: Vec<KillSwitch> = {
            let mut running = inner.lock_running();
            inner.stopping.cancel();
            running.drain().map(|(_, k)| k).collect()
        };
        for s in &switches {
            s.kill();
        }
        inner.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                component = "orchestrator",
                "executions still ending after the grace period"
            );
        }
        match inner.store.active_executions().await {
            Ok(active) => {
                for e in active {
                    let _ = inner
                        .store
                        .abandon_execution(e.id, "agora stopped".into(), inner.rebid())
                        .await;
                }
            }
            Err(e) => {
                tracing::error!(component = "orchestrator", error = %e, "cannot list active executions at shutdown")
            }
        }
        tracing::info!(
            component = "orchestrator",
            killed = switches.len(),
            "orchestrator stopped"
        );
    }
}

impl Inner {
    fn current_sandbox(&self) -> Arc<dyn ExecutionSandbox> {
        Arc::clone(&self.sandbox.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn spawn_execution(self: &Arc<Self>, exec: crate::store::ExecutionRecord) {
        let inner = Arc::clone(self);
        // Every line of the execution's task, and of the sandbox and the System
        // Service working for it, carries its ids (a child of the cycle's span).
        let span = tracing::info_span!(
            "execution",
            component = "orchestrator",
            agent = exec.agent.0,
            execution = exec.id.0,
        );
        self.tasks
            .spawn(execution::run(inner, exec).instrument(span));
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, KillSwitch>> {
        // A panic while holding this lock leaves a map that is still valid.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a running execution's kill switch, or kills it at once if shutdown
    /// began meanwhile. Checked under the lock that shutdown drains the map with, so
    /// every execution is either drained and killed by shutdown or killed here, and
    /// in both cases [`Inner::unregister`] reports the kill as ours.
    fn register(&self, id: ExecutionId, kill: KillSwitch) {
        let mut running = self.lock_running();
        if self.stopping.is_cancelled() {
            kill.kill();
        } else {
            running.insert(id, kill);
        }
    }

    /// Forgets a running execution; false when shutdown took (and killed) it.
    fn unregister(&self, id: ExecutionId) -> bool {
        self.lock_running().remove(&id).is_some()
    }

    /// The bid rules a lost execution's bid is placed again under.
    fn rebid(&self) -> Rebid {
        Rebid {
            ttl_cycles: self.config.economy.bid_ttl_cycles,
            max_pending: self.config.economy.max_pending_bids,
        }
    }

    fn take_debug(&self, agent: AgentId) -> bool {
        let mut d = self.debug_agent.lock().unwrap_or_else(|p| p.into_inner());
        if *d == Some(agent) {
            *d = None;
            true
        } else {
            false
        }
    }
}
