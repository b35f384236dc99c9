//! The store: all state of the world in SQLite (default) or PostgreSQL.
//!
//! Both backends share one SQL code path through sqlx's `Any` driver (runtime-checked
//! queries, SPEC §15); what differs lives here: connection setup, embedded
//! migrations per backend, and how writers are serialised.
//!
//! **Invariant:** every money operation is one database transaction that checks
//! `available` and writes the balance change and the transfer row together.
//! PostgreSQL gets this from row locks taken by conditional `UPDATE`s in a global
//! account order (no deadlocks), plus a retry on serialization failures. SQLite has
//! no row locks and upgrades a reader to a writer only if no one wrote in between,
//! so all SQLite writes go through a single-connection write pool: writers queue in
//! the process instead of failing with `SQLITE_BUSY`, and readers use their own pool
//! (WAL lets them read while the writer writes).

mod admin;
mod agents;
mod attention;
mod audit;
mod bids;
mod bootstrap;
mod console;
mod control;
mod error;
mod events;
mod executions;
mod history;
mod idempotency;
mod ledger;
/// The LLM proxy's token holds and call records (SPEC §10).
mod llm;
mod market;
mod rows;
mod runs;
mod social;
mod stats;
mod tokens;

pub use admin::{EventFilter, GrantRequest, RootAgent};
pub use agents::{AgentRecord, NewAgent};
pub use attention::{PromptRecord, ResponseRecord, RewardOutcome};
pub use audit::AuditReport;
pub use bids::{BidRecord, NewBid};
pub use bootstrap::{BootstrapOutcome, Genesis};
pub use console::{AgentOrder, AgentRow, AttentionState, TreeNode};
pub use error::{Rejection, StoreError, StoreResult};
pub use events::{EventRecord, EventType, NewEvent};
pub use executions::ExecutionRecord;
pub use history::WorldPoint;
pub use idempotency::{Idempotency, OPERATOR_SCOPE};
pub use ledger::{Balance, TransferRecord, TransferRequest};
pub use llm::{
    HoldOutcome, LlmCallRecord, LlmCallStatus, LlmQuota, LlmSettlement, NewLlmCall, UsageSource,
};
pub use market::{CycleRecord, HistoryRow, MarketRecord, MarketSetup};
pub use rows::Newest;
pub use runs::{Ended, ExecutionEnd, Rebid};
pub use social::{MessageRecord, SpawnRequest};
pub use stats::WorldStats;
pub use tokens::{hash_token, random_token, TokenHash, TokenIdentity, EXECUTION_TOKEN_PREFIX};

use futures_core::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database holds the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, by scheme.
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A handle on the store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Reads. For PostgreSQL the same pool as `write`.
    read: AnyPool,
    /// Transactions that write. For SQLite a single connection, see the module doc.
    write: AnyPool,
    /// SQLite only: stops the background checkpointer when the last handle goes.
    _checkpointer: Option<Arc<Checkpointer>>,
    /// Execution tokens known valid (see `tokens`).
    tokens: Arc<tokens::TokenCache>,
    /// Current prices and cycle (see `market`).
    market: Arc<market::MarketCache>,
}

/// Moves SQLite's WAL into the database file from a reader connection every
/// [`CHECKPOINT_INTERVAL`], instead of inside whichever write transaction happens to
/// cross the automatic threshold: a checkpoint syncs the file, and doing it on the
/// write path made every few hundredth transfer wait ~20 ms. A passive checkpoint
/// never blocks writers or readers.
#[derive(Debug)]
struct Checkpointer {
    stop: Arc<AtomicBool>,
}

const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

impl Checkpointer {
    fn start(pool: AnyPool) -> Arc<Checkpointer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if flag.load(Ordering::Relaxed) || pool.is_closed() {
                    break;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(component = "economy", error = %e, "WAL checkpoint failed");
                }
            }
        });
        Arc::new(Checkpointer { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How many times a transaction that hit a deadlock or serialization failure is
/// tried in all before the error is returned.
const MAX_ATTEMPTS: u32 = 8;

impl Store {
    /// Opens the SQLite file at `path` (created if missing).
    pub async fn open_sqlite(path: &Path) -> StoreResult<Store> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Store::open(&url).await
    }

    /// Opens the database a URL names (`sqlite://…` or `postgres://…`) and runs
    /// the migrations.
    pub async fn open(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or_else(|| {
            StoreError::Database(sqlx::Error::Configuration(
                format!("unsupported database URL scheme in {:?}", redact(url)).into(),
            ))
        })?;
        let options = AnyConnectOptions::from_str(url)?;
        let store = match backend {
            Backend::Sqlite => {
                let write = sqlite_pool(1).connect_with(options.clone()).await?;
                // WAL is a property of the file: set once, before readers connect.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&write)
                    .await?;
                let read = sqlite_pool(4).connect_with(options).await?;
                let checkpointer = Some(Checkpointer::start(read.clone()));
                Store {
                    backend,
                    read,
                    write,
                    _checkpointer: checkpointer,
                    tokens: Arc::default(),
                    market: Arc::default(),
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?;
                Store {
                    backend,
                    read: pool.clone(),
                    write: pool,
                    _checkpointer: None,
                    tokens: Arc::default(),
                    market: Arc::default(),
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded migrations of this backend that are not yet applied.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.write).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Runs `op` in one write transaction, committing on `Ok` and rolling back on
    /// `Err`; a deadlock or serialization failure retries the whole transaction.
    ///
    /// `op` is called afresh for each attempt, so it must own what it needs.
    pub(crate) async fn write_tx<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send,
        F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, StoreResult<T>> + Send + Sync,
    {
        let mut attempt = 1;
        loop {
            let mut tx = self.write.begin().await?;
            let result = op(&mut tx).await;
            let result = match result {
                Ok(v) => tx.commit().await.map(|_| v).map_err(StoreError::from),
                Err(e) => {
                    tx.rollback().await.ok();
                    Err(e)
                }
            };
            match result {
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
                }
                other => return other,
            }
        }
    }

    /// The read pool.
    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }
}

fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .min_connections(1)
        // A SQLite connection is a file handle that cannot go stale: the liveness
        // ping sqlx sends before each use would be one more round trip through
        // the connection's worker thread on every transaction.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(60))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // NORMAL in WAL mode: a commit survives the process being killed at
                // any point; only an OS crash may lose the last commits, whole.
                conn.execute(
                    "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
                )
                .await?;
                Ok(())
            })
        })
}

/// A database URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Microseconds since the Unix epoch: how the store records time.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_url_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://x"), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }
}
