//! Agents as the operator sees them: the population with balances, one agent in
//! full (lineage, children, executions, bids, prompts and their ratings), and a
//! new parentless agent made from uploaded files.
//!
//! **Create order** (as for spawn): the files are checked and staged first, then
//! one store transaction creates the agent, mints its credits and places its first
//! bid, and only then is the staged folder renamed into its workspace. A refusal
//! at any step leaves no agent, no credits and no folder behind; the transaction
//! and the rename run in a task of their own, so a request dropped half-way cannot
//! leave an agent without its workspace.

use crate::api::auth::Operator;
use crate::api::create;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{amount, limit, ApiJson, ApiPath, ApiQuery};
use crate::api::files::{self, FileEntry};
use crate::api::idempotency::{self, IdempotencyHeader};
use crate::api::schema::{AgentStatusSchema, Errors, PositiveAmount};
use crate::api::social::FirstBid;
use crate::api::state::ApiState;
use crate::api::views::{AgentView, BalanceView, BidView, ExecutionView, PromptView, ResponseView};
use crate::store::{Newest, RootAgent};
use agora_core::lifecycle::AgentStatus;
use agora_core::AgentId;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
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
    #[param(minimum = 1, maximum = 1000)]
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
    /// Its 50 newest executions (below `executions_before` when given), newest first.
    pub executions: Vec<ExecutionView>,
    /// Its 50 newest bids, placed by it or for it (below `bids_before` when given),
    /// newest first.
    pub bids: Vec<BidView>,
    /// Its 50 newest prompts to the human (below `prompts_before` when given),
    /// newest first, with their ratings.
    pub prompts: Vec<PromptWithResponse>,
}

/// Where each list of an agent starts: below these ids (paging back: the last id
/// of the previous page), or at the newest.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentDetailQuery {
    /// Only executions with an id below this.
    #[param(minimum = 1)]
    executions_before: Option<i64>,
    /// Only bids with an id below this.
    #[param(minimum = 1)]
    bids_before: Option<i64>,
    /// Only prompts with an id below this.
    #[param(minimum = 1)]
    prompts_before: Option<i64>,
}

/// One page of `DETAIL_ROWS` below `before`; a cursor that is not a positive id is
/// a 400.
fn page(name: &str, before: Option<i64>) -> ApiResult<Newest> {
    Newest::below_cursor(before, DETAIL_ROWS).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            format!("{name} must be a positive id, not {}", before.unwrap_or(0)),
        )
    })
}

/// One agent: lineage, children, balance, executions, bids, prompts and ratings.
#[utoipa::path(get, path = "/admin/agents/{id}", tag = "admin",
    security(("operator_token" = [])),
    params(("id" = i64, Path, description = "agent id"), AgentDetailQuery),
    responses((status = 200, body = AgentDetail), Errors))]
pub(super) async fn detail(
    _: Operator,
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<AgentDetailQuery>,
) -> ApiResult<Json<AgentDetail>> {
    let id = AgentId(id);
    let executions = page("executions_before", q.executions_before)?;
    let bids = page("bids_before", q.bids_before)?;
    let prompts = page("prompts_before", q.prompts_before)?;
    let agent = s.store.agent(id).await?;
    let balance = s.store.balance(id).await?;
    let children = s.store.children_of(id).await?;
    let executions = s.store.executions_of(id, executions).await?;
    let bids = s.store.bids_for(id, bids).await?;
    let prompts = s.store.prompts_of(id, prompts).await?;
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

/// A parentless agent to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentBody {
    /// The agent's workspace. Relative paths only (no `.`, `..`, empty components,
    /// backslashes or control characters; at most 255 bytes and 16 levels), at most
    /// 1000 files and 2 MiB decoded, and it must contain the entry point `main.py`.
    #[schema(max_items = 1000)]
    pub files: Vec<FileEntry>,
    /// Minted from `mint` for the agent as a grant (positive).
    #[schema(value_type = PositiveAmount, required = true)]
    #[serde(default)]
    pub initial_credits: serde_json::Value,
    /// A first bid placed from those credits, so that the agent can ever wake (SPEC
    /// §1 law 1). Refused with the whole request if the bid is.
    #[serde(default)]
    pub bid: Option<FirstBid>,
}

/// An agent as created.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedAgent {
    pub agent: AgentView,
    /// The workspace folder on the host, holding the uploaded files.
    pub workspace: String,
    /// The first bid, pending, if one was asked for.
    pub bid: Option<BidView>,
}

/// Create a parentless agent from uploaded files, with credits minted for it and
/// an optional first bid: all or nothing.
#[utoipa::path(post, path = "/admin/agents", tag = "admin",
    security(("operator_token" = [])), request_body = CreateAgentBody,
    params(IdempotencyHeader),
    responses(
        (status = 201, body = CreatedAgent, description = "the agent was created"),
        (status = 200, body = CreatedAgent, description = "a retry: the first agent, nothing minted",
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        Errors))]
pub(super) async fn create(
    _: Operator,
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateAgentBody>,
) -> ApiResult<Response> {
    let idem = idempotency::request(&headers, &req)?;
    let initial_credits = amount("initial_credits", &req.initial_credits)?;
    let first_bid = match &req.bid {
        None => None,
        Some(b) => Some((
            b.bundle.parse(&s.config.bundle_limits())?,
            amount("bid.amount", &b.amount)?,
        )),
    };
    let root: PathBuf = s.workspaces.clone();
    let staged = {
        let (entries, root) = (req.files, root.clone());
        create::blocking(move || files::stage(&files::validate(&entries)?, &root)).await?
    };
    let request = RootAgent {
        workspaces_root: root,
        initial_credits,
        first_bid,
        bid_ttl_cycles: s.config.economy.bid_ttl_cycles,
        max_pending_bids: s.config.economy.max_pending_bids,
    };
    let store = s.store.clone();
    let commit = async move { store.create_root_agent(request, idem).await };
    let (agent, bid, replayed) =
        create::commit_then_install(s.store.clone(), staged, commit).await?;
    tracing::info!(component = "api", agent = agent.id.0, credits = %initial_credits, replayed,
        "operator created an agent");
    Ok(idempotency::answer(
        CreatedAgent {
            agent: (&agent).into(),
            workspace: agent.workspace.clone(),
            bid: bid.as_ref().map(BidView::from),
        },
        replayed,
    ))
}
