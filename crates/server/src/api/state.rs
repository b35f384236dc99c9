//! What every handler of the System Service shares: the store, the configuration,
//! the operator token check and the metrics.

use super::metrics::Metrics;
use super::operator::OperatorAuth;
use crate::config::Config;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// Shared state of the API; cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub store: Store,
    pub config: Arc<Config>,
    pub operator: Arc<OperatorAuth>,
    pub metrics: Arc<Metrics>,
    /// Where agents' workspaces live.
    pub workspaces: Arc<PathBuf>,
    /// Set once when the service stops: endless answers (event streams) end.
    stopping: Arc<watch::Sender<bool>>,
}

impl ApiState {
    pub fn new(store: Store, config: Config) -> ApiState {
        let operator = Arc::new(OperatorAuth::new(&config.data_dir));
        let workspaces = Arc::new(crate::world::workspaces_root(&config));
        ApiState {
            store,
            config: Arc::new(config),
            operator,
            metrics: Arc::new(Metrics::new()),
            workspaces,
            stopping: Arc::new(watch::channel(false).0),
        }
    }

    /// Tells every endless answer (live event streams) to end; listeners stop on
    /// their own shutdown signal. Idempotent.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`ApiState::stop`] was called.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}
