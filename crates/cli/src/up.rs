//! `agora up`: the System Service and the Orchestrator in one process. Opens (or
//! bootstraps) the world, chooses the sandbox backend, serves the API on TCP and on
//! a socket per execution, runs the loop, and on Ctrl-C / SIGTERM kills and records
//! running executions before it exits.

use crate::commands::{init_logging, load_config, DbArgs};
use crate::Cli;
use agora_core::{AgentId, Credits, Resource};
use agora_server::api::{self, operator, ApiState};
use agora_server::config::Overrides;
use agora_server::orchestrator::{
    self, template, Orchestrator, OrchestratorOptions, SandboxChoice,
};
use agora_server::store::redact;
use agora_server::{llm, world};
use anyhow::Context;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address of the System Service (TCP), e.g. 127.0.0.1:7700 (port 0: any free
    /// port; the one chosen is printed).
    #[arg(long)]
    pub listen: Option<String>,
    /// Time between allocation cycles, in milliseconds.
    #[arg(long)]
    pub cycle_interval_ms: Option<u64>,
    /// Sandbox backend: auto (docker when a Docker Engine answers and the runtime
    /// image can be built, else process), docker, or process.
    #[arg(long)]
    pub sandbox: Option<SandboxChoice>,
    /// Start this agent's next execution under debugpy, listening on port 5678 and
    /// waiting for an attach (see runtime/DEBUGGING.md).
    #[arg(long, value_name = "AGENT_ID")]
    pub debug_agent: Option<i64>,
}

pub async fn up(cli: &Cli, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        database_url: args.db.database_url.clone(),
        cycle_interval_ms: args.cycle_interval_ms,
        sandbox: args.sandbox,
    };
    let mut shutdown = Shutdown::listen()?;
    let config = load_config(cli, &overrides)?;
    // Bound before the world is opened: a port in use fails fast and touches nothing.
    let listener = bind(&config.server.listen).await?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let log_file = config.data_dir.join("system.log");
    // Held to the end: dropping it writes out what is still queued for the file.
    let _log = init_logging(Some((&log_file, &config.log)))?;
    let url = config.effective_database_url();
    let w = world::open(config).await.context("cannot open the world")?;
    let token_file = operator::token_path(&w.config.data_dir);
    let token = operator::ensure(&w.config.data_dir)
        .with_context(|| format!("cannot create {}", token_file.display()))?;
    tracing::info!(
        component = "orchestrator",
        data_dir = %w.config.data_dir.display(),
        backend = w.store.backend().as_str(),
        genesis = %w.genesis.genesis,
        created = w.genesis.created,
        "world open"
    );

    let state = ApiState::new(w.store.clone(), w.config.clone());
    let (router, openapi) = api::router(state.clone());
    let openapi_json = openapi
        .to_pretty_json()
        .context("cannot render the API description")?;
    let shared = template::write_shared(&w.config.data_dir, &openapi_json)
        .context("cannot write the shared folder for sandboxes")?;
    let mut progress = |line: &str| eprintln!("  runtime image: {line}");
    let chosen = orchestrator::choose(
        w.config.orchestrator.sandbox,
        &w.config.data_dir,
        w.config.orchestrator.agent_uid_base,
        &mut progress,
    )
    .await
    .context("cannot open the sandbox")?;
    let isolation = chosen.sandbox.isolation();
    let upgrade = chosen.upgrade;
    let orch = Orchestrator::new(
        w.store.clone(),
        w.config.clone(),
        chosen.sandbox,
        router.clone(),
        shared,
        OrchestratorOptions {
            debug_agent: args.debug_agent.map(AgentId),
            cycle_duration: Some(state.metrics.cycle_duration()),
        },
    )
    .context("cannot prepare the orchestrator's folders")?;

    if let Some(upgrade) = upgrade {
        let orch = orch.clone();
        tokio::spawn(async move {
            match upgrade.await {
                Ok(docker) => orch.switch_sandbox(docker).await,
                Err(e) => tracing::warn!(component = "sandbox", error = %e,
                    "the runtime image could not be built; agents keep running as processes"),
            }
        });
    }
    let stopping = state.clone();
    let mut server = tokio::spawn(api::serve_tcp(listener, router, async move {
        stopping.stopped().await;
    }));
    tracing::info!(component = "api", %address, "System Service listening");
    let stop_loop = CancellationToken::new();
    let mut lp = {
        let orch = orch.clone();
        let stop = stop_loop.clone();
        tokio::spawn(async move { orch.run(stop.cancelled_owned()).await })
    };

    let b = w.store.balance(w.genesis.genesis).await?;
    println!("agora {} is up", env!("CARGO_PKG_VERSION"));
    println!("  data dir:  {}", w.config.data_dir.display());
    println!(
        "  database:  {} ({})",
        redact(&url),
        w.store.backend().as_str()
    );
    println!(
        "  genesis:   agent {} ({}), balance {} credits, {} held by bids",
        w.genesis.genesis,
        if w.genesis.created {
            "created"
        } else {
            "resumed"
        },
        b.balance,
        b.held
    );
    for m in w.store.markets().await? {
        let supply = Resource::parse(&m.resource)
            .map(|r| r.to_display(u64::try_from(m.capacity).unwrap_or(0)));
        println!(
            "  market:    {:<16} price {} credits/unit, supply {} per cycle",
            m.resource,
            Credits::from_micros(m.price),
            supply.unwrap_or_default()
        );
    }
    println!(
        "  loop:      a cycle every {} ms",
        w.config.market.cycle_interval_ms
    );
    println!("  sandbox:   {}", isolation.summary());
    if let Some(why) = &chosen.fallback_reason {
        println!("             ({why})");
    }
    println!("  {}", llm::config::startup_line(&w.config.llm));
    println!("  System Service: http://{address} (OpenAPI: /openapi.json)");
    println!("  console:   http://{address}/console (sign in with the operator token)");
    println!("  system log: {}", log_file.display());
    match token {
        operator::Ensured::Created(t) => {
            println!("  operator token: {t}");
            println!(
                "    (new: shown only this once; kept in {}, mode 0600)",
                token_file.display()
            );
        }
        operator::Ensured::Existing => {
            println!("  operator token: in {}", token_file.display());
        }
    }
    println!("Press Ctrl-C to stop.");
    let code = tokio::select! {
        _ = shutdown.wait() => ExitCode::SUCCESS,
        ended = &mut server => {
            // The listener only stops by itself on an I/O fault.
            let why = task_end(ended);
            tracing::error!(component = "api", error = %why, "System Service stopped unexpectedly");
            eprintln!("error: the System Service stopped: {why}");
            ExitCode::FAILURE
        }
        ended = &mut lp => {
            let why = task_end(ended);
            tracing::error!(component = "orchestrator", error = %why, "the loop stopped unexpectedly");
            eprintln!("error: the orchestrator stopped: {why}");
            ExitCode::FAILURE
        }
    };
    tracing::info!(component = "orchestrator", "shutting down");
    // The loop first: it kills running executions and records them, which needs
    // the store (and their sockets) still open.
    stop_loop.cancel();
    if !lp.is_finished() {
        let _ = lp.await;
    }
    // No new connections; live event streams end; requests in flight are answered.
    state.stop();
    if tokio::time::timeout(REQUEST_GRACE, &mut server)
        .await
        .is_err()
    {
        // Still open: slow requests. Closing the store lets database work in flight
        // finish and answers anything after it with 503 "shutting down".
        tracing::info!(
            component = "api",
            "closing the store under open connections"
        );
        w.store.close().await;
        if tokio::time::timeout(CLOSE_GRACE, &mut server)
            .await
            .is_err()
        {
            tracing::warn!(component = "api", "cutting connections still open");
            server.abort();
        }
    }
    w.store.close().await;
    println!("agora stopped cleanly");
    Ok(code)
}

/// Why a task that should have run until shutdown ended.
fn task_end<E: std::fmt::Display>(ended: Result<Result<(), E>, tokio::task::JoinError>) -> String {
    match ended {
        Ok(Ok(())) => "stopped".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

/// How long a stopping server waits for requests in flight before it closes the
/// store under them.
const REQUEST_GRACE: Duration = Duration::from_secs(1);
/// How long it then waits for connections to end before cutting them.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Binds the System Service's TCP address, explaining the usual failure.
async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "cannot listen on {listen}: the address is already in use (is another agora \
             running?); choose another with --listen or [server] listen in agora.toml"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on {listen}")),
    }
}

/// Ctrl-C and SIGTERM, listened for from creation on: a signal that arrives before
/// anyone awaits [`Shutdown::wait`] is not lost (nor does it kill the process).
struct Shutdown {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn listen() -> anyhow::Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Shutdown {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
