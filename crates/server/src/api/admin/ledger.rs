//! The ledger as the operator sees it (SPEC §4): every transaction, the audit of
//! every invariant, and grants minted from `mint` (law 5: with human ratings, the
//! only way credits enter the world).

use crate::api::auth::Operator;
use crate::api::economic::MAX_MEMO;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{amount, limit, ApiJson, ApiQuery};
use crate::api::idempotency;
use crate::api::schema::{Errors, PositiveAmount};
use crate::api::state::ApiState;
use crate::api::views::TransferView;
use crate::store::GrantRequest;
use agora_core::AgentId;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Paging of the transactions.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionsQuery {
    /// Only transfers with an id above this (the last id of the previous page).
    after: Option<i64>,
    /// At most this many (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Every ledger transfer, oldest first.
#[utoipa::path(get, path = "/admin/transactions", tag = "admin",
    security(("operator_token" = [])), params(TransactionsQuery),
    responses((status = 200, body = Vec<TransferView>), Errors))]
pub(super) async fn transactions(
    _: Operator,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<TransactionsQuery>,
) -> ApiResult<Json<Vec<TransferView>>> {
    let n = limit(q.limit, 100, 1000)?;
    let rows = s.store.transactions(q.after.unwrap_or(0), n).await?;
    Ok(Json(rows.iter().map(TransferView::from).collect()))
}

/// One broken invariant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ViolationView {
    /// sum_not_zero, missing_system_account, negative_balance, negative_available,
    /// balance_mismatch, held_mismatch, hold_settlement or mint_burn_mismatch.
    pub code: String,
    pub message: String,
}

/// The result of checking every ledger invariant of SPEC §4.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// True when no invariant is broken.
    pub clean: bool,
    pub violations: Vec<ViolationView>,
    /// Accounts checked (mint, burn and one per agent).
    pub accounts: i64,
    /// Holds checked.
    pub holds: i64,
    /// Transfers summed.
    pub transfers: i64,
}

/// Audit the ledger: sum of balances 0, no negative agent balance, every balance
/// equal to its postings, every hold settled at most once, minted − burned = Σ
/// agent balances. A broken ledger is reported in the body, still with 200.
#[utoipa::path(get, path = "/admin/audit", tag = "admin",
    security(("operator_token" = [])),
    responses((status = 200, body = AuditView), Errors))]
pub(super) async fn audit(_: Operator, State(s): State<ApiState>) -> ApiResult<Json<AuditView>> {
    let report = s.store.audit().await?;
    Ok(Json(AuditView {
        clean: report.is_clean(),
        violations: report
            .violations
            .iter()
            .map(|v| ViolationView {
                code: v.code().to_string(),
                message: v.to_string(),
            })
            .collect(),
        accounts: i64::try_from(report.accounts).unwrap_or(i64::MAX),
        holds: i64::try_from(report.holds).unwrap_or(i64::MAX),
        transfers: report.transfers,
    }))
}

/// Credits to mint for an agent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The alive agent credited.
    pub agent: i64,
    #[schema(value_type = PositiveAmount, required = true)]
    #[serde(default)]
    pub amount: serde_json::Value,
    /// Why (at most 1000 characters); recorded with the transfer.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub memo: Option<String>,
}

/// Mint credits for an alive agent (a `grant` transfer from `mint`). With an
/// `Idempotency-Key`, a retry returns the first grant (200,
/// `Idempotent-Replayed: true`) and mints nothing.
#[utoipa::path(post, path = "/admin/grant", tag = "admin",
    security(("operator_token" = [])), request_body = GrantBody,
    params(idempotency::IdempotencyHeader),
    responses(
        (status = 201, body = TransferView, description = "the credits were minted"),
        (status = 200, body = TransferView, description = "a retry: the first grant, nothing minted",
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        Errors))]
pub(super) async fn grant(
    _: Operator,
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<GrantBody>,
) -> ApiResult<Response> {
    let key = idempotency::key(&headers)?;
    let amount = amount("amount", &req.amount)?;
    let memo = req.memo.unwrap_or_else(|| "operator grant".to_string());
    if memo.chars().count() > MAX_MEMO {
        return Err(ApiError::bad_request(
            "invalid_memo",
            format!("memo is longer than {MAX_MEMO} characters"),
        ));
    }
    let (record, replayed) = s
        .store
        .grant_once(GrantRequest {
            agent: AgentId(req.agent),
            amount,
            memo,
            idempotency_key: key,
        })
        .await?;
    tracing::info!(component = "api", agent = req.agent, amount = %amount, replayed, "operator grant");
    Ok(idempotency::answer(TransferView::from(&record), replayed))
}
