//! What every handler of the System Service shares: the store, the configuration,
//! the operator token check and the metrics. One `Arc` behind the handle, because
//! axum clones the state for every request.

use super::metrics::Metrics;
use super::operator::OperatorAuth;
use crate::config::Config;
use crate::llm::LlmProxy;
use crate::store::Store;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// Shared state of the API; a clone is one reference count.
#[derive(Clone, Debug)]
pub struct ApiState(Arc<Shared>);

/// The contents of [`ApiState`].
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub config: Config,
    pub operator: OperatorAuth,
    pub metrics: Metrics,
    /// The LLM proxy: its upstream client (pooled), calls in flight, metrics.
    pub llm: LlmProxy,
    /// Where agents' workspaces live.
    pub workspaces: PathBuf,
    /// Set once when the service stops: endless answers (event streams) end.
    stopping: watch::Sender<bool>,
}

impl Deref for ApiState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl ApiState {
    pub fn new(store: Store, config: Config) -> ApiState {
        let llm = LlmProxy::new(&config.llm);
        ApiState::with_llm(store, config, llm)
    }

    /// [`ApiState::new`] with an LLM proxy built by the caller (benchmarks).
    pub fn with_llm(store: Store, config: Config, llm: LlmProxy) -> ApiState {
        let mut metrics = Metrics::new();
        llm.metrics.register(metrics.registry_mut());
        ApiState(Arc::new(Shared {
            llm,
            operator: OperatorAuth::new(&config.data_dir),
            workspaces: crate::world::workspaces_root(&config),
            store,
            config,
            metrics,
            stopping: watch::channel(false).0,
        }))
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
