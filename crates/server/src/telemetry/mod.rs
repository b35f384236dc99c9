//! The structured log of SPEC §13 (ADR 007): every line in `system.log` is one JSON
//! object carrying its `component` and the ids in scope (agent, execution, cycle,
//! request), taken from the spans the Orchestrator and the System Service open
//! ([`json`]); the file is rotated by size ([`rotate`]) and written by a background
//! thread, so logging never waits for the disk. stderr gets the same events as
//! short readable lines ([`text`]).

pub mod json;
pub mod rotate;
pub mod text;

use crate::config::LogConfig;
use std::io::{self, IsTerminal};
use std::path::Path;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What `system.log` records unless `RUST_LOG` says otherwise.
pub const FILE_FILTER: &str = "info,sqlx=warn";

/// What stderr shows unless `RUST_LOG` says otherwise: the file's filter without
/// the line per agent request (`agora_server::api::trace` at info), which would
/// drown the terminal in a busy world; the file keeps them.
pub const STDERR_FILTER: &str = "info,sqlx=warn,agora_server::api::trace=warn";

/// Keeps the file's writer thread alive; dropping it writes out every line still
/// queued. Hold it until the process exits.
#[must_use = "dropping the guard stops writing system.log"]
#[derive(Debug)]
pub struct LogGuard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber: stderr (text) and, when `file` is given, that
/// file as JSON lines rotated under `config`. Both are filtered by `RUST_LOG`
/// when set, else by [`STDERR_FILTER`] and [`FILE_FILTER`].
pub fn init(file: Option<(&Path, &LogConfig)>) -> io::Result<LogGuard> {
    let filter = |default: &str| {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .fmt_fields(text::ScopeFields::default())
        .event_format(text::Readable {
            ansi: io::stderr().is_terminal(),
        })
        .with_writer(io::stderr)
        .with_filter(filter(STDERR_FILTER));
    let (json, guard) = match file {
        Some((path, config)) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let max_bytes = config.max_file_mb.saturating_mul(1024 * 1024);
            let writer = rotate::RotatingFile::open(path, max_bytes, config.max_files)?;
            // Not lossy: under a burst the writer slows its callers rather than
            // dropping lines, as the synchronous file did.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .thread_name("agora-log")
                .finish(writer);
            let layer = tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(json::FlatJson)
                .with_writer(writer)
                .with_filter(filter(FILE_FILTER));
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(json)
        .try_init()
        .map_err(io::Error::other)?;
    Ok(LogGuard { _worker: guard })
}
