//! `agora up`, `agora audit`, `agora config` and `agora token`: load the
//! configuration, open the world and serve the System Service, report.

use crate::{bench, Cli, Command};
use agora_core::{Credits, Resource};
use agora_server::api::{self, operator, ApiState};
use agora_server::config::{Config, Overrides};
use agora_server::store::{redact, Store};
use agora_server::world;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::Layer;

/// Flags that choose the database.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database URL (`sqlite://…` or `postgres://…`); overrides DATABASE_URL.
    #[arg(long)]
    pub database_url: Option<String>,
}

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
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info,sqlx=warn`), and, when `log_file` is
/// given, also appends them to that file (without colours).
pub fn init_logging(log_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let file = match log_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter(filter()),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    Ok(())
}

/// Loads the configuration for the command line.
pub fn load_config(cli: &Cli, overrides: &Overrides) -> anyhow::Result<Config> {
    Ok(Config::load(
        &cli.data_dir,
        cli.config.as_deref(),
        overrides,
    )?)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if !matches!(cli.command, Command::Up(_)) {
        init_logging(None)?;
    }
    match &cli.command {
        Command::Up(args) => up(&cli, args).await,
        Command::Audit(args) => audit(&cli, args).await,
        Command::Config(args) => {
            let config = load_config(
                &cli,
                &Overrides {
                    database_url: args.database_url.clone(),
                    ..Overrides::default()
                },
            )?;
            print!("{}", config.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(b) => bench::run(&cli, b).await,
        Command::Runtime(r) => crate::runtime::run(r).await,
        Command::Token(t) => token(&cli, t),
    }
}

async fn up(cli: &Cli, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        database_url: args.db.database_url.clone(),
        cycle_interval_ms: args.cycle_interval_ms,
    };
    let mut shutdown = Shutdown::listen()?;
    let config = load_config(cli, &overrides)?;
    // Bound before the world is opened: a port in use fails fast and touches nothing.
    let listener = bind(&config.server.listen).await?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let log_file = config.data_dir.join("logs").join("agora.log");
    init_logging(Some(&log_file))?;
    let url = config.effective_database_url();
    let w = world::open(config).await.context("cannot open the world")?;
    let token_file = operator::token_path(&w.config.data_dir);
    let token = operator::ensure(&w.config.data_dir)
        .with_context(|| format!("cannot create {}", token_file.display()))?;
    let b = w.store.balance(w.genesis.genesis).await?;
    tracing::info!(
        data_dir = %w.config.data_dir.display(),
        backend = w.store.backend().as_str(),
        genesis = %w.genesis.genesis,
        created = w.genesis.created,
        "world open"
    );
    let state = ApiState::new(w.store.clone(), w.config.clone());
    let (router, _) = api::router(state.clone());
    let stopping = state.clone();
    let mut server = tokio::spawn(api::serve_tcp(listener, router, async move {
        stopping.stopped().await;
    }));
    tracing::info!(component = "api", %address, "System Service listening");

    println!("agora {} is up", env!("CARGO_PKG_VERSION"));
    println!("  data dir:  {}", w.config.data_dir.display());
    println!(
        "  database:  {} ({})",
        redact(&url),
        w.store.backend().as_str()
    );
    println!(
        "  genesis:   agent {} ({}), balance {} credits, {} held by its first bid",
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
    println!("  System Service: http://{address} (OpenAPI: /openapi.json)");
    println!("  log file:  {}", log_file.display());
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
            let why = match ended {
                Ok(Ok(())) => "stopped".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::error!(component = "api", error = %why, "System Service stopped unexpectedly");
            eprintln!("error: the System Service stopped: {why}");
            ExitCode::FAILURE
        }
    };
    tracing::info!("shutting down");
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

/// `agora token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Replace the operator token with a new one and print it. The old token stops
    /// working at once, also on a running server.
    Rotate,
}

fn token(cli: &Cli, command: &TokenCommand) -> anyhow::Result<ExitCode> {
    let config = load_config(cli, &Overrides::default())?;
    match command {
        TokenCommand::Rotate => {
            if !config.data_dir.is_dir() {
                anyhow::bail!(
                    "no data directory at {}: run `agora up` first",
                    config.data_dir.display()
                );
            }
            let path = operator::token_path(&config.data_dir);
            let new = operator::rotate(&config.data_dir)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("new operator token: {new}");
            println!(
                "written to {} (mode 0600); the old token no longer works",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
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

async fn audit(cli: &Cli, args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(
        cli,
        &Overrides {
            database_url: args.db.database_url.clone(),
            ..Overrides::default()
        },
    )?;
    let url = config.effective_database_url();
    if url.starts_with("sqlite:")
        && !config.data_dir.join("agora.db").exists()
        && config.database_url.0.is_empty()
    {
        anyhow::bail!(
            "no database at {}: run `agora up` first",
            config.data_dir.join("agora.db").display()
        );
    }
    let store = Store::open(&url).await.context("cannot open the store")?;
    let report = store.audit().await?;
    store.close().await;
    println!(
        "audited {} accounts, {} holds, {} transfers in {}",
        report.accounts,
        report.holds,
        report.transfers,
        redact(&url)
    );
    if report.is_clean() {
        println!("audit clean");
        Ok(ExitCode::SUCCESS)
    } else {
        for v in &report.violations {
            println!("VIOLATION {v}");
        }
        println!("audit failed: {} violation(s)", report.violations.len());
        Ok(ExitCode::from(1))
    }
}
