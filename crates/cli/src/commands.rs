//! `agora audit`, `agora config` and `agora token`, and what every command shares:
//! loading the configuration and setting up logging.

use crate::{bench, Cli, Command};
use agora_server::api::operator;
use agora_server::config::{Config, LogConfig, Overrides};
use agora_server::store::{redact, Store};
use agora_server::telemetry;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// Flags that choose the database.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database URL (`sqlite://…` or `postgres://…`); overrides DATABASE_URL.
    #[arg(long)]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

/// Logs to stderr and, when `log_file` is given, as JSON lines to that file rotated
/// under `[log]` (see `agora_server::telemetry`). Keep the guard until the command
/// ends: dropping it writes out the lines still queued.
pub fn init_logging(
    log_file: Option<(&std::path::Path, &LogConfig)>,
) -> anyhow::Result<telemetry::LogGuard> {
    telemetry::init(log_file).with_context(|| match log_file {
        Some((path, _)) => format!("cannot log to {}", path.display()),
        None => "cannot set up logging".to_string(),
    })
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
    let _log = if matches!(cli.command, Command::Up(_)) {
        None
    } else {
        Some(init_logging(None)?)
    };
    match &cli.command {
        Command::Up(args) => crate::up::up(&cli, args).await,
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
