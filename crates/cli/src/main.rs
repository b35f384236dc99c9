//! The `agora` command: thin clap front end over `agora-server`.

mod agents;
mod bench;
mod client;
mod commands;
mod events;
mod human;
mod runtime;
mod status;
mod text;
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
struct Args {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: AnyCommand,
}

/// Flags every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Globals {
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
}

/// A system command as its module sees it.
#[derive(Debug)]
pub struct Cli {
    pub data_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub command: Command,
}

/// Every subcommand: those that run or inspect the system in this process, and
/// the terminal clients of a running System Service.
#[derive(Debug, Subcommand)]
enum AnyCommand {
    #[command(flatten)]
    System(Command),
    /// Rate prompts in a terminal: shows the active prompt (agent content made
    /// inert), asks for interesting / useful / understandable (0-10) and a reason,
    /// shows the reward minted, then the next prompt; waits while the queue is
    /// empty. `q` or end of input quits. Reads piped input too.
    Human(human::HumanArgs),
    /// A summary of a running world: cycle, pause, population, credits, prices and
    /// utilisation, executions by outcome, the attention queue, the audit.
    Status(status::StatusArgs),
    /// The agents as a table: id, status, balance, held, executions, children,
    /// last execution, death reason.
    Agents(agents::AgentsArgs),
    /// The event log (SPEC §13).
    #[command(subcommand)]
    Events(events::EventsCommand),
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
    let args = Args::parse();
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
    let g = args.globals;
    let ran = match args.command {
        AnyCommand::System(command) => runtime.block_on(commands::run(Cli {
            data_dir: g.data_dir,
            config: g.config,
            command,
        })),
        AnyCommand::Human(a) => runtime.block_on(human::run(&g, &a)),
        AnyCommand::Status(a) => runtime.block_on(status::run(&g, &a)),
        AnyCommand::Agents(a) => runtime.block_on(agents::run(&g, &a)),
        AnyCommand::Events(c) => runtime.block_on(events::run(&g, &c)),
    };
    match ran {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
