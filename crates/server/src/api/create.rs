//! Making an agent with a workspace (spawn, operator create): the uploaded or
//! copied files are staged first, the store transaction creates the agent, and
//! only after it commits is the staged folder renamed into the agent's workspace.
//! The transaction and the rename run in a task of their own, so a client that
//! hangs up (or the request timeout) cannot leave a committed agent without its
//! workspace. A refusal, or the replay of an idempotent retry, removes the staged
//! folder instead.

use super::error::{ApiError, ApiResult};
use super::files::Staged;
use crate::store::{AgentRecord, Store, StoreResult};
use agora_core::AgentId;
use axum::http::StatusCode;
use std::future::Future;
use std::path::PathBuf;

fn task_failed(what: &str, e: tokio::task::JoinError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("{what} failed: {e}"),
    )
}

/// Runs blocking file work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| task_failed("file task", e))?
}

/// Runs `commit` (a store transaction returning the new agent, whatever else it
/// made, and whether it was an idempotent replay) and then installs `staged` as
/// the agent's workspace. Returns the agent as stored.
pub async fn commit_then_install<T: Send + 'static>(
    store: Store,
    staged: Staged,
    commit: impl Future<Output = StoreResult<(AgentId, T, bool)>> + Send + 'static,
) -> ApiResult<(AgentRecord, T, bool)> {
    let task = tokio::spawn(async move {
        let (id, made, replayed) = match commit.await {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::task::spawn_blocking(move || drop(staged)).await;
                return Err(ApiError::from(e));
            }
        };
        let agent = store.agent(id).await?;
        if replayed {
            let _ = tokio::task::spawn_blocking(move || drop(staged)).await;
        } else {
            // The store's row names the agent's workspace folder.
            let dest = PathBuf::from(&agent.workspace);
            blocking(move || staged.install(&dest))
                .await
                .inspect_err(|e| {
                    tracing::error!(component = "api", agent = id.0, error = %e.message,
                        "new agent has no workspace");
                })?;
        }
        Ok((agent, made, replayed))
    });
    task.await.map_err(|e| task_failed("agent creation", e))?
}
