//! Crash safety at start-up (SPEC §8): whatever an earlier run left behind — its
//! containers, socket directories, executions still `scheduled` or `running` — is
//! removed or ended before the first cycle: marked `lost`, refunded, their bids
//! placed again. No credit is created or lost whichever moment the process died.

use super::Inner;
use crate::store::StoreResult;
use std::sync::Arc;

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Containers (or processes) of an earlier run that were removed.
    pub leftovers_removed: usize,
    /// Executions marked `lost`.
    pub lost: usize,
    /// Of those, the ones whose bid could be placed again.
    pub rebid: usize,
}

pub(super) async fn recover(inner: &Arc<Inner>) -> StoreResult<Recovery> {
    let mut r = Recovery::default();
    match inner.current_sandbox().reconcile().await {
        Ok(leftovers) => r.leftovers_removed = leftovers.len(),
        Err(e) => {
            tracing::error!(component = "orchestrator", error = %e, "cannot remove what an earlier run left in the sandbox")
        }
    }
    if let Ok(entries) = std::fs::read_dir(&inner.run_dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    for exec in inner.store.active_executions().await? {
        let was = exec.status;
        let reason = format!("agora stopped while the execution was {was}");
        if let Some(ended) = inner
            .store
            .abandon_execution(exec.id, reason, inner.rebid())
            .await?
        {
            r.lost += 1;
            if ended.rebid.is_some() {
                r.rebid += 1;
            }
            tracing::warn!(component = "orchestrator", agent = %exec.agent, execution = %exec.id,
                was = %was, refunded = ?ended.refunded, rebid = ?ended.rebid, "execution lost in a crash");
        }
    }
    Ok(r)
}
