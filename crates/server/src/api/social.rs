//! Social endpoints (SPEC §9, §11): spawning a child from files or a copy of the
//! caller's workspace (with an optional first bid, all or nothing), messages
//! between agents, and the public directory of agents.
//!
//! **Spawn order.** Files are checked and written to a staging folder first, then
//! one store transaction charges the parent, creates the child and places its
//! bid, and only then is the staging folder renamed into the child's workspace. A
//! refusal at any step leaves no child, no money moved and no folder behind; the
//! transaction and the rename run in a task of their own, so a request dropped
//! half-way cannot leave a child without its workspace.

use super::auth::Caller;
use super::create;
use super::error::{ApiError, ApiResult};
use super::extract::{amount, limit, ApiJson, ApiQuery};
use super::files::{self, FileEntry, Staged};
use super::idempotency::{self, IdempotencyHeader};
use super::schema::{CreditAmount, Errors, PositiveAmount};
use super::state::ApiState;
use super::views::{AgentView, BidView, BundleView, MessageView};
use crate::store::{NewBid, SpawnRequest};
use agora_core::lifecycle::AgentStatus;
use agora_core::{AgentId, Credits};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(spawn))
        .routes(routes!(message))
        .routes(routes!(inbox))
        .routes(routes!(directory))
}

/// A child's first bid, placed from the credits it is given.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstBid {
    pub bundle: BundleView,
    /// At least the bundle's reserve price; held from the child's credits.
    #[schema(value_type = PositiveAmount, required = true)]
    #[serde(default)]
    pub amount: Value,
}

/// A child to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpawnBody {
    /// Moved from the caller to the child (positive). The caller also pays the
    /// spawn fee (`spawn_cost` in GET /system/config), which is burned.
    #[schema(value_type = PositiveAmount, required = true)]
    #[serde(default)]
    pub initial_credits: Value,
    /// The child's workspace. Relative paths only (no `.`, `..`, empty components,
    /// backslashes or control characters; at most 255 bytes and 16 levels), at most
    /// 1000 files and 2 MiB decoded, and it must contain the entry point
    /// `main.py`. Give either `files` or `clone_workspace: true`.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub files: Option<Vec<FileEntry>>,
    /// Copy the caller's own workspace instead (without `env.json`). It may hold
    /// only regular files and folders: a link or special file refuses the spawn.
    #[serde(default)]
    pub clone_workspace: bool,
    /// A first bid for the child, so that it can ever wake (SPEC §1 law 1). Refused
    /// with the whole spawn if the bid is.
    #[serde(default)]
    pub bid: Option<FirstBid>,
}

/// A child as created.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpawnView {
    /// The child's id.
    pub agent: i64,
    /// The child's first bid, pending, if one was asked for.
    pub bid: Option<BidView>,
}

/// Create a child agent: the caller pays the spawn fee (burned) and the initial
/// credits (to the child); the child's lineage is the caller followed by the
/// caller's lineage. Its workspace is made from `files` or a copy of the caller's;
/// an optional first bid is placed from the child's credits.
#[utoipa::path(post, path = "/social/spawn", tag = "social",
    security(("execution_token" = [])), request_body = SpawnBody,
    params(IdempotencyHeader),
    responses(
        (status = 201, body = SpawnView, description = "the child was created"),
        (status = 200, body = SpawnView, description = "a retry: the first child, nothing paid",
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        Errors))]
async fn spawn(
    caller: Caller,
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SpawnBody>,
) -> ApiResult<Response> {
    let idem = idempotency::request(&headers, &req)?;
    let initial_credits = amount("initial_credits", &req.initial_credits)?;
    let first_bid = match &req.bid {
        None => None,
        Some(b) => Some(NewBid {
            // The store makes the child payer and beneficiary; it has no id yet.
            payer: caller.agent,
            beneficiary: caller.agent,
            bundle: b.bundle.parse(&s.config.bundle_limits())?,
            amount: amount("bid.amount", &b.amount)?,
            ttl_cycles: s.config.economy.bid_ttl_cycles,
            max_pending: s.config.economy.max_pending_bids,
        }),
    };
    let root: PathBuf = s.workspaces.clone();
    let staged: Staged = match (req.files, req.clone_workspace) {
        (Some(entries), false) => {
            let root = root.clone();
            create::blocking(move || files::stage(&files::validate(&entries)?, &root)).await?
        }
        (None, true) => {
            let src = PathBuf::from(s.store.agent(caller.agent).await?.workspace);
            let root = root.clone();
            create::blocking(move || files::clone_workspace(&src, &root)).await?
        }
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "invalid_workspace_source",
                "give either `files` or `clone_workspace: true`, not both",
            ))
        }
        (None, false) => {
            return Err(ApiError::bad_request(
                "invalid_workspace_source",
                "the child needs a workspace: give `files` or `clone_workspace: true`",
            ))
        }
    };
    let request = SpawnRequest {
        parent: caller.agent,
        initial_credits,
        spawn_cost: s.config.economy.spawn_cost,
        workspaces_root: root,
    };
    let store = s.store.clone();
    let commit = async move { store.spawn_with_bid(request, first_bid, idem).await };
    let (child, bid, replayed) =
        create::commit_then_install(s.store.clone(), staged, commit).await?;
    tracing::info!(component = "api", agent = child.id.0, parent = caller.agent.0,
        credits = %initial_credits, replayed, "agent spawned");
    Ok(idempotency::answer(
        SpawnView {
            agent: child.id.0,
            bid: bid.as_ref().map(BidView::from),
        },
        replayed,
    ))
}

/// Longest message, in bytes of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// A message to another agent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// The recipient.
    pub to: i64,
    /// 1..=16384 bytes of text.
    #[schema(min_length = 1)]
    pub content: String,
}

/// A message as sent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SentView {
    pub id: i64,
    /// Burned from the sender (`message_cost`).
    #[schema(value_type = CreditAmount)]
    pub fee: Credits,
}

/// Send a message to another agent's inbox; the fee `message_cost` is burned.
#[utoipa::path(post, path = "/social/message", tag = "social",
    security(("execution_token" = [])), request_body = MessageBody,
    params(IdempotencyHeader),
    responses(
        (status = 201, body = SentView, description = "the message was sent"),
        (status = 200, body = SentView, description = "a retry: the first message, nothing sent or paid",
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        Errors))]
async fn message(
    caller: Caller,
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<MessageBody>,
) -> ApiResult<Response> {
    let idem = idempotency::request(&headers, &req)?;
    if req.content.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_content",
            "`content` must not be empty",
        ));
    }
    if req.content.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::bad_request(
            "content_too_large",
            format!("a message holds at most {MAX_MESSAGE_BYTES} bytes"),
        )
        .with_details(json!({"bytes": req.content.len(), "max_bytes": MAX_MESSAGE_BYTES})));
    }
    let fee = s.config.economy.message_cost;
    let (id, replayed) = s
        .store
        .send_message_once(caller.agent, AgentId(req.to), req.content, fee, idem)
        .await?;
    Ok(idempotency::answer(SentView { id, fee }, replayed))
}

/// Paging of the inbox.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// At most this many, oldest first (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The caller's unread messages, oldest first; they are marked read, so the next
/// call returns only newer ones.
#[utoipa::path(get, path = "/social/inbox", tag = "social",
    security(("execution_token" = [])), params(InboxQuery),
    responses((status = 200, body = Vec<MessageView>), Errors))]
async fn inbox(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> ApiResult<Json<Vec<MessageView>>> {
    let n = limit(q.limit, 100, 1000)?;
    let rows = s.store.read_inbox(caller.agent, n).await?;
    Ok(Json(rows.iter().map(MessageView::from).collect()))
}

/// A status to filter the directory by.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    Alive,
    Dead,
}

/// Filter and paging of the directory.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// Only agents with this status.
    #[param(inline)]
    status: Option<StatusFilter>,
    /// Only agents with an id above this (the last id of the previous page).
    after: Option<i64>,
    /// At most this many, by id (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The public directory of agents, by id.
#[utoipa::path(get, path = "/social/agents", tag = "social",
    security(("execution_token" = [])), params(DirectoryQuery),
    responses((status = 200, body = Vec<AgentView>), Errors))]
async fn directory(
    _: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<DirectoryQuery>,
) -> ApiResult<Json<Vec<AgentView>>> {
    let n = limit(q.limit, 100, 1000)?;
    let status = q.status.map(|f| match f {
        StatusFilter::Alive => AgentStatus::Alive,
        StatusFilter::Dead => AgentStatus::Dead,
    });
    let rows = s
        .store
        .agent_directory(status, q.after.unwrap_or(0), n)
        .await?;
    Ok(Json(rows.iter().map(AgentView::from).collect()))
}
