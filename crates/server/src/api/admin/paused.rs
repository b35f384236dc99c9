//! Whether the allocation loop is paused: the read side of `POST /admin/pause`
//! and `POST /admin/resume`, for operators' status views.

use super::PausedView;
use crate::api::auth::Operator;
use crate::api::error::ApiResult;
use crate::api::schema::Errors;
use crate::api::state::ApiState;
use axum::extract::State;
use axum::Json;

/// Whether allocation is paused (`POST /admin/pause` and `/admin/resume` change
/// it).
#[utoipa::path(get, path = "/admin/paused", tag = "admin",
    security(("operator_token" = [])),
    responses((status = 200, body = PausedView), Errors))]
pub(super) async fn paused(_: Operator, State(s): State<ApiState>) -> ApiResult<Json<PausedView>> {
    Ok(Json(PausedView {
        paused: s.store.paused().await?,
    }))
}
