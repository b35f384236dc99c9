//! `agora up`, `agora audit` and `agora config`: load the configuration, open the
//! world, report.

use crate::{bench, Cli, Command};
use agora_core::{Credits, Resource};
use agora_server::config::{Config, Overrides};
use agora_server::store::{redact, Store};
use agora_server::world;
use anyhow::Context;
use clap::Args;
use std::process::ExitCode;
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
    /// Address of the System Service (TCP).
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
    let log_file = config.data_dir.join("logs").join("agora.log");
    init_logging(Some(&log_file))?;
    let url = config.effective_database_url();
    let w = world::open(config).await.context("cannot open the world")?;
    let b = w.store.balance(w.genesis.genesis).await?;
    tracing::info!(
        data_dir = %w.config.data_dir.display(),
        backend = w.store.backend().as_str(),
        genesis = %w.genesis.genesis,
        created = w.genesis.created,
        "world open"
    );
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
    println!("Press Ctrl-C to stop.");
    shutdown.wait().await;
    tracing::info!("shutting down");
    w.store.close().await;
    println!("agora stopped cleanly");
    Ok(ExitCode::SUCCESS)
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
