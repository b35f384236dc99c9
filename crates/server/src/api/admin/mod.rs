//! Operator endpoints of the System Service (SPEC §11 `/admin/…`): agents and
//! their detail, executions and their logs, the ledger's transactions and audit,
//! the event log and its live stream, grants, agents created from uploaded files,
//! and pausing the allocation loop. Every one takes only the operator token
//! ([`Operator`]); an execution token gets 403.

mod agents;
pub(crate) mod events;
pub(crate) mod executions;
mod ledger;
mod paused;

use super::auth::Operator;
use super::error::ApiResult;
use super::schema::Errors;
use super::state::ApiState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(agents::list, agents::create))
        .routes(routes!(agents::detail))
        .routes(routes!(executions::detail))
        .routes(routes!(executions::log))
        .routes(routes!(ledger::transactions))
        .routes(routes!(ledger::audit))
        .routes(routes!(ledger::grant))
        .routes(routes!(events::list))
        .routes(routes!(events::stream))
        .routes(routes!(paused::paused))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// Whether allocation is paused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PausedView {
    /// True while the Orchestrator clears no market.
    pub paused: bool,
}

/// Pause allocation: no market is cleared until resumed; the API keeps serving
/// and running executions run to their end. Idempotent.
#[utoipa::path(post, path = "/admin/pause", tag = "admin",
    security(("operator_token" = [])),
    responses((status = 200, body = PausedView), Errors))]
async fn pause(_: Operator, State(s): State<ApiState>) -> ApiResult<Json<PausedView>> {
    set_paused(&s, true).await
}

/// Resume allocation. Idempotent.
#[utoipa::path(post, path = "/admin/resume", tag = "admin",
    security(("operator_token" = [])),
    responses((status = 200, body = PausedView), Errors))]
async fn resume(_: Operator, State(s): State<ApiState>) -> ApiResult<Json<PausedView>> {
    set_paused(&s, false).await
}

async fn set_paused(s: &ApiState, paused: bool) -> ApiResult<Json<PausedView>> {
    s.store.set_paused(paused).await?;
    tracing::info!(component = "api", paused, "operator set allocation paused");
    Ok(Json(PausedView {
        paused: s.store.paused().await?,
    }))
}
