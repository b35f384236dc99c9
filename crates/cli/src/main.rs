//! The `agora` command: thin clap front end over `agora-server`.

mod bench;
mod commands;
mod runtime;
mod up;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// agora: a market-governed runtime for autonomous agents.
///
/// Agents win bundles of resources (CPU time, memory, LLM tokens, human attention)
/// in a market, paying credits that only human ratings create. State lives in the
/// data directory (SQLite by default) or in PostgreSQL (DATABASE_URL).
#[derive(Debug, Parser)]
#[command(name = "agora", version, propagate_version = true)]
pub struct Cli {
    /// Data directory: SQLite file, agora.toml, workspaces and logs.
    #[arg(
        long,
        global = true,
        env = "AGORA_DATA_DIR",
        default_value = "./agora-data"
    )]
    pub data_dir: PathBuf,
    /// Configuration file (default: <data-dir>/agora.toml if it exists).
    #[arg(long, global = true, env = "AGORA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the system: open the store, migrate, bootstrap the world on first start
    /// (markets, genesis agent, its grant and first bid), create the operator token
    /// (printed once), and serve the System Service until Ctrl-C or SIGTERM.
    Up(up::UpArgs),
    /// Check every ledger invariant against the database; exits 1 naming each
    /// violation.
    Audit(commands::AuditArgs),
    /// Print the effective configuration (defaults < agora.toml < AGORA_* env <
    /// flags) as TOML.
    Config(commands::DbArgs),
    /// The agent runtime image `agora-runtime:<version>` (Python 3 + debugpy).
    #[command(subcommand)]
    Runtime(runtime::RuntimeCommand),
    /// The operator token (<data-dir>/operator.token) that guards the human and
    /// admin endpoints.
    #[command(subcommand)]
    Token(commands::TokenCommand),
    /// Run a benchmark; the headline figure is printed on the last line.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
