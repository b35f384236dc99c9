//! Agents as the operator sees them: the population with balances, and one agent
//! in full (lineage, children, executions, bids, prompts and their ratings).

use crate::api::auth::Operator;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{limit, ApiPath, ApiQuery};
use crate::api::schema::{AgentStatusSchema, Errors};
use crate::api::state::ApiState;
use crate::api::views::{AgentView, BalanceView, BidView, ExecutionView, PromptView, ResponseView};
use agora_core::lifecycle::AgentStatus;
use agora_core::AgentId;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// How many executions, bids and prompts the agent detail shows.
const DETAIL_ROWS: i64 = 50;

/// An agent and its money.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentSummary {
    pub agent: AgentView,
    pub balance: BalanceView,
}

/// Which agents to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentsQuery {
    /// Only agents with this status.
    #[param(value_type = Option<AgentStatusSchema>)]
    status: Option<String>,
    /// Only agents with an id above this (paging: the last id of the previous page).
    after: Option<i64>,
    /// At most this many (1..=1000, default 100).
    limit: Option<i64>,
}

/// Agents in id order, each with its balance.
#[utoipa::path(get, path = "/admin/agents", tag = "admin",
    security(("operator_token" = [])), params(AgentsQuery),
    responses((status = 200, body = Vec<AgentSummary>), Errors))]
pub(super) async fn list(
    _: Operator,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<AgentsQuery>,
) -> ApiResult<Json<Vec<AgentSummary>>> {
    let n = limit(q.limit, 100, 1000)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(AgentStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("status must be `alive` or `dead`, not {text:?}"),
            )
        })?),
    };
    let rows = s
        .store
        .agents_with_balances(status, q.after.unwrap_or(0), n)
        .await?;
    Ok(Json(
        rows.iter()
            .map(|(a, b)| AgentSummary {
                agent: a.into(),
                balance: BalanceView::new(a.id.0, b),
            })
            .collect(),
    ))
}

/// A prompt and its rating, if it was rated.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromptWithResponse {
    pub prompt: PromptView,
    pub response: Option<ResponseView>,
}

/// One agent in full.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentDetail {
    pub agent: AgentView,
    pub balance: BalanceView,
    /// The workspace folder on the host (mounted at /workspace in the sandbox).
    pub workspace: String,
    /// Agents it spawned, in id order.
    pub children: Vec<i64>,
    /// Its 50 newest executions, newest first.
    pub executions: Vec<ExecutionView>,
    /// Its 50 newest bids (placed by it or for it), newest first.
    pub bids: Vec<BidView>,
    /// Its 50 newest prompts to the human, newest first, with their ratings.
    pub prompts: Vec<PromptWithResponse>,
}

/// One agent: lineage, children, balance, executions, bids, prompts and ratings.
#[utoipa::path(get, path = "/admin/agents/{id}", tag = "admin",
    security(("operator_token" = [])), params(("id" = i64, Path, description = "agent id")),
    responses((status = 200, body = AgentDetail), Errors))]
pub(super) async fn detail(
    _: Operator,
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AgentDetail>> {
    let id = AgentId(id);
    let agent = s.store.agent(id).await?;
    let balance = s.store.balance(id).await?;
    let children = s.store.children_of(id).await?;
    let executions = s.store.executions_of(id, DETAIL_ROWS).await?;
    let bids = s.store.bids_for(id, DETAIL_ROWS).await?;
    let prompts = s.store.prompts_of(id, DETAIL_ROWS).await?;
    Ok(Json(AgentDetail {
        agent: (&agent).into(),
        balance: BalanceView::new(id.0, &balance),
        workspace: agent.workspace.clone(),
        children: children.iter().map(|c| c.0).collect(),
        executions: executions.iter().map(ExecutionView::from).collect(),
        bids: bids.iter().map(BidView::from).collect(),
        prompts: prompts
            .iter()
            .map(|(p, r)| PromptWithResponse {
                prompt: p.into(),
                response: r.as_ref().map(ResponseView::from),
            })
            .collect(),
    }))
}
