//! Test fixtures: a fresh store per test on SQLite (a temp file) or PostgreSQL (a
//! new database on the server named by `AGORA_TEST_POSTGRES_URL`).
//!
//! PostgreSQL tests skip when that variable is unset, unless
//! `AGORA_REQUIRE_POSTGRES` is set (CI sets both), in which case they fail.

use agora_core::{AgentId, Credits, Resource};
use agora_server::config::Config;
use agora_server::store::{NewAgent, Rejection, Store, StoreError};
use sqlx::{Connection, Executor};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use tempfile::TempDir;

pub struct TestStore {
    pub store: Store,
    pub dir: TempDir,
    /// The database URL, for raw access behind the store's back.
    pub url: String,
    /// For PostgreSQL: the admin URL and the test database to drop afterwards.
    pub drop_database: Option<(String, String)>,
}

impl Drop for TestStore {
    /// Drops the test's PostgreSQL database so repeated runs do not pile them up.
    fn drop(&mut self) {
        if let Some((admin, name)) = self.drop_database.take() {
            let handle = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                        let _ = c
                            .execute(
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                            )
                            .await;
                        let _ = c.close().await;
                    }
                });
            });
            let _ = handle.join();
        }
    }
}

impl TestStore {
    pub fn workspaces(&self) -> PathBuf {
        self.dir.path().join("workspaces")
    }

    /// A new alive agent holding `credits` (granted from mint).
    pub async fn agent(&self, credits: i64) -> AgentId {
        let id = self
            .store
            .create_agent(NewAgent {
                parent: None,
                workspaces_root: self.workspaces(),
            })
            .await
            .unwrap();
        if credits > 0 {
            self.store.grant(id, cr(credits), "test").await.unwrap();
        }
        id
    }

    /// Runs SQL on a connection of its own, bypassing the store.
    pub async fn raw(&self, sql: &str) {
        let mut c = sqlx::AnyConnection::connect(&self.url).await.unwrap();
        c.execute(sql).await.unwrap();
        c.close().await.ok();
    }

    /// Asserts the ledger audit is clean.
    pub async fn assert_audit_clean(&self) {
        let report = self.store.audit().await.unwrap();
        assert!(report.is_clean(), "audit failed: {:#?}", report.violations);
    }

    pub async fn balance(&self, id: AgentId) -> Credits {
        self.store.balance(id).await.unwrap().balance
    }

    pub async fn available(&self, id: AgentId) -> Credits {
        self.store.balance(id).await.unwrap().available
    }
}

/// Runs `n` operations on the store at once, each in its own task, and returns
/// what succeeded; every failure must be a refusal `allowed` accepts.
pub async fn race<T, F, Fut>(
    t: &TestStore,
    n: usize,
    op: F,
    allowed: fn(&Rejection) -> bool,
) -> Vec<T>
where
    F: Fn(usize, Store) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(op(i, t.store.clone())))
        .collect();
    let mut ok = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(v) => ok.push(v),
            Err(StoreError::Rejected(r)) => assert!(allowed(&r), "unexpected refusal: {r:?}"),
            Err(other) => panic!("store fault under concurrency: {other:?}"),
        }
    }
    ok
}

/// Whole credits.
pub fn cr(c: i64) -> Credits {
    Credits::from_credits(c).unwrap()
}

async fn with_markets(store: Store, dir: TempDir, url: String) -> TestStore {
    let mut setups = Config::default().market_setups();
    // A fixed CPU supply so tests do not depend on the host's cores.
    for s in &mut setups {
        if s.resource == Resource::CpuSeconds {
            s.capacity = 10_000;
        }
    }
    store.setup_markets(setups).await.unwrap();
    TestStore {
        store,
        dir,
        url,
        drop_database: None,
    }
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("agora.db").display()
    );
    let store = Store::open(&url).await.unwrap();
    with_markets(store, dir, url).await
}

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

pub async fn postgres() -> Option<TestStore> {
    let admin = match std::env::var("AGORA_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var_os("AGORA_REQUIRE_POSTGRES").is_none(),
                "AGORA_REQUIRE_POSTGRES is set but AGORA_TEST_POSTGRES_URL is not"
            );
            eprintln!("skipping PostgreSQL: AGORA_TEST_POSTGRES_URL is not set");
            return None;
        }
    };
    sqlx::any::install_default_drivers();
    let name = format!(
        "agora_t_{}_{}_{}",
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::Relaxed),
        agora_server::store::now_micros() % 1_000_000
    );
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    conn.close().await.ok();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let url = format!("{base}/{name}");
    let store = Store::open(&url).await.unwrap();
    let mut t = with_markets(store, tempfile::tempdir().unwrap(), url).await;
    t.drop_database = Some((admin, name));
    Some(t)
}

/// Declares each listed `async fn name(TestStore)` as two tests, `name::sqlite` and
/// `name::postgres`, so the whole contract runs against both backends.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::harness::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(s) = $crate::harness::postgres().await {
                    super::$name(s).await
                }
            }
        }
    )*};
}
