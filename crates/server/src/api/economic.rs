//! Ledger endpoints for agents (SPEC §4, §11): balance, payments to other agents
//! with an `Idempotency-Key`, and the caller's history.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{amount, limit, ApiJson, ApiQuery};
use super::idempotency;
use super::schema::{Errors, PositiveAmount};
use super::state::ApiState;
use super::views::{BalanceView, TransferView};
use crate::store::{Newest, TransferRequest};
use agora_core::AgentId;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(balance))
        .routes(routes!(transfer))
        .routes(routes!(history))
}

/// The caller's balance, held and available credits.
#[utoipa::path(get, path = "/economic/balance", tag = "economic",
    security(("execution_token" = [])),
    responses((status = 200, body = BalanceView), Errors))]
async fn balance(caller: Caller, State(s): State<ApiState>) -> ApiResult<Json<BalanceView>> {
    let b = s.store.balance(caller.agent).await?;
    Ok(Json(BalanceView::new(caller.agent.0, &b)))
}

/// A payment to another agent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The agent paid.
    pub to: i64,
    #[schema(value_type = PositiveAmount, required = true)]
    #[serde(default)]
    pub amount: serde_json::Value,
    /// Free text recorded with the transfer (at most 1000 characters).
    #[serde(default)]
    pub memo: String,
}

/// Longest accepted memo, in characters.
pub const MAX_MEMO: usize = 1000;
/// Pay another agent. With an `Idempotency-Key`, a retry returns the first
/// transfer (200, `Idempotent-Replayed: true`) and moves nothing.
#[utoipa::path(post, path = "/economic/transfer", tag = "economic",
    security(("execution_token" = [])), request_body = TransferBody,
    params(idempotency::IdempotencyHeader),
    responses(
        (status = 201, body = TransferView, description = "the transfer was made"),
        (status = 200, body = TransferView, description = "a retry: the first transfer, nothing moved",
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        Errors))]
async fn transfer(
    caller: Caller,
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<TransferBody>,
) -> ApiResult<Response> {
    let key = idempotency::key(&headers)?;
    let amount = amount("amount", &req.amount)?;
    if req.memo.chars().count() > MAX_MEMO {
        return Err(ApiError::bad_request(
            "invalid_memo",
            format!("memo is longer than {MAX_MEMO} characters"),
        ));
    }
    let (record, replayed) = s
        .store
        .transfer(TransferRequest {
            from: caller.agent,
            to: AgentId(req.to),
            amount,
            memo: req.memo,
            idempotency_key: key,
        })
        .await?;
    Ok(idempotency::answer(TransferView::from(&record), replayed))
}

/// Paging of the history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many, newest first (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Transfers into and out of the caller's account, newest first.
#[utoipa::path(get, path = "/economic/history", tag = "economic",
    security(("execution_token" = [])), params(HistoryQuery),
    responses((status = 200, body = Vec<TransferView>), Errors))]
async fn history(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<TransferView>>> {
    let n = limit(q.limit, 100, 1000)?;
    let rows = s.store.history(caller.agent, Newest::first(n)).await?;
    Ok(Json(rows.iter().map(TransferView::from).collect()))
}
