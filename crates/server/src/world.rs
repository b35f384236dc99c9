//! Opening the world: the data directory, the store, the markets as configured, and
//! the bootstrap of §8 on an empty database. Shared by `agora up` and the tests.

use crate::config::{Config, ConfigError};
use crate::store::{BootstrapOutcome, Genesis, Store, StoreError};
use std::path::PathBuf;

/// Why the world could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An open world.
#[derive(Debug, Clone)]
pub struct World {
    pub config: Config,
    pub store: Store,
    pub genesis: BootstrapOutcome,
}

/// Where agents' workspaces live.
pub fn workspaces_root(config: &Config) -> PathBuf {
    config.data_dir.join("workspaces")
}

/// Creates the data directory, opens and migrates the store, applies the market
/// configuration and bootstraps the genesis agent if the world is new.
pub async fn open(config: Config) -> Result<World, OpenError> {
    let root = workspaces_root(&config);
    for dir in [&config.data_dir, &root] {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    sweep_staging(&root);
    let store = Store::open(&config.effective_database_url()).await?;
    store.setup_markets(config.market_setups()).await?;
    store.reconcile_llm_holds().await?;
    let genesis = store
        .bootstrap_genesis(Genesis {
            workspaces_root: root,
            initial_credits: config.economy.initial_genesis_credits,
            first_bid: config.genesis_bundle()?,
            first_bid_amount: config.genesis.first_bid_amount,
            bid_ttl_cycles: config.economy.bid_ttl_cycles,
            max_pending_bids: config.economy.max_pending_bids,
        })
        .await?;
    let agent = store.agent(genesis.genesis).await?;
    // Also after a crash between the bootstrap transaction and this line: an empty
    // workspace is filled, one the agent has written to is left alone.
    let ws = PathBuf::from(&agent.workspace);
    crate::orchestrator::template::install_genesis(&ws)
        .map_err(|source| OpenError::Io { path: ws, source })?;
    Ok(World {
        config,
        store,
        genesis,
    })
}

/// Removes staging folders a crash left between staging an upload and installing
/// it as a workspace (see `api::create`): nothing refers to them.
fn sweep_staging(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(crate::api::files::STAGING_PREFIX)
        {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(component = "api", path = %e.path().display(), error = %err, "cannot remove a stale staging folder");
            }
        }
    }
}
