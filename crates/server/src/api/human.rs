//! Attention endpoints (SPEC §7, §11). Agents submit one prompt per execution
//! whose bundle holds attention, escrowing a bid, and read their ratings later; the
//! human (with the operator token) sees the queue and rates the active prompt,
//! which burns the escrow and mints the reward.

use super::auth::{Caller, Operator};
use super::error::{ApiError, ApiResult};
use super::extract::{amount, limit, ApiJson, ApiQuery};
use super::schema::{CreditAmount, Errors, PositiveAmount};
use super::state::ApiState;
use super::views::{PromptView, ResponseView};
use agora_core::{Credits, PromptId, Resource, ScoreError, Scores};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(prompt))
        .routes(routes!(responses))
        .routes(routes!(queue))
        .routes(routes!(reward))
}

/// Largest prompt content, in bytes of compact JSON.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;
/// Longest reason a human may give with a rating, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

/// A prompt to the human.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptBody {
    /// What to show the human: any JSON value but `null`, at most 64 KiB as
    /// compact JSON.
    #[schema(schema_with = prompt_content, required = true)]
    #[serde(default)]
    pub content: Value,
    /// Escrowed from the caller's available credits until the prompt is rated
    /// (then burned) or expires (then released). Higher bids are shown first.
    #[schema(value_type = PositiveAmount, required = true)]
    #[serde(default)]
    pub bid_amount: Value,
}

/// The schema of a prompt's content: any JSON value but `null`.
fn prompt_content() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![
            Type::Object,
            Type::Array,
            Type::String,
            Type::Number,
            Type::Boolean,
        ]))
        .description(Some(
            "What to show the human: any JSON value but `null`, at most 64 KiB as compact JSON.",
        ))
        .build()
}

/// Submit this execution's one prompt to the human. The execution's bundle must
/// hold attention (`attention_share` > 0).
#[utoipa::path(post, path = "/human/prompt", tag = "human",
    security(("execution_token" = [])), request_body = PromptBody,
    responses((status = 201, body = PromptView), Errors))]
async fn prompt(
    caller: Caller,
    State(s): State<ApiState>,
    ApiJson(req): ApiJson<PromptBody>,
) -> ApiResult<(StatusCode, Json<PromptView>)> {
    if req.content.is_null() {
        return Err(ApiError::bad_request(
            "invalid_content",
            "`content` is required: any JSON value but null",
        ));
    }
    let size = req.content.to_string().len();
    if size > MAX_PROMPT_BYTES {
        return Err(ApiError::bad_request(
            "content_too_large",
            format!("`content` is {size} bytes of JSON; at most {MAX_PROMPT_BYTES}"),
        )
        .with_details(json!({"bytes": size, "max_bytes": MAX_PROMPT_BYTES})));
    }
    let bid = amount("bid_amount", &req.bid_amount)?;
    let exec = s.store.execution(caller.execution).await?;
    if exec.bundle.get(Resource::AttentionShare) == 0 {
        return Err(ApiError::forbidden(
            "no_attention",
            "this execution's bundle has no attention_share; bid for attention to prompt the human",
        ));
    }
    let p = s
        .store
        .submit_prompt(caller.agent, caller.execution, req.content, bid)
        .await?;
    Ok((StatusCode::CREATED, Json((&p).into())))
}

/// Paging of the ratings.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResponsesQuery {
    /// At most this many, newest first (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The ratings the caller's prompts received, newest first.
#[utoipa::path(get, path = "/human/responses", tag = "human",
    security(("execution_token" = [])), params(ResponsesQuery),
    responses((status = 200, body = Vec<ResponseView>), Errors))]
async fn responses(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<ResponsesQuery>,
) -> ApiResult<Json<Vec<ResponseView>>> {
    let n = limit(q.limit, 100, 1000)?;
    let rows = s.store.responses_of(caller.agent, n).await?;
    Ok(Json(rows.iter().map(ResponseView::from).collect()))
}

/// The attention queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// The prompt the human is asked to rate now.
    pub active: Option<PromptView>,
    /// Prompts waiting behind it, best first (highest bid, then earliest).
    pub pending: Vec<PromptView>,
}

/// How much of the queue to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// At most this many prompts, the active one included (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The active prompt and the pending queue behind it.
#[utoipa::path(get, path = "/human/queue", tag = "human",
    security(("operator_token" = [])), params(QueueQuery),
    responses((status = 200, body = QueueView), Errors))]
async fn queue(
    _: Operator,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> ApiResult<Json<QueueView>> {
    let n = limit(q.limit, 100, 1000)?;
    let mut active = None;
    let mut pending = Vec::new();
    for p in s.store.attention_queue(n).await? {
        if p.status == agora_core::PromptStatus::Active {
            active = Some(PromptView::from(&p));
        } else {
            pending.push(PromptView::from(&p));
        }
    }
    Ok(Json(QueueView { active, pending }))
}

/// A rating.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardBody {
    /// The active prompt.
    pub prompt_id: i64,
    /// 0..=10, a whole number.
    #[schema(value_type = i64, minimum = 0, maximum = 10, required = true)]
    #[serde(default)]
    pub interesting: Value,
    /// 0..=10, a whole number.
    #[schema(value_type = i64, minimum = 0, maximum = 10, required = true)]
    #[serde(default)]
    pub useful: Value,
    /// 0..=10, a whole number.
    #[schema(value_type = i64, minimum = 0, maximum = 10, required = true)]
    #[serde(default)]
    pub understandable: Value,
    /// Why, for the agent to learn from (at most 2000 characters).
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

/// What a rating paid.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RewardView {
    pub prompt: i64,
    /// The agent that submitted the prompt.
    pub agent: i64,
    /// Minted to the agent: Σ score × rate.
    #[schema(value_type = CreditAmount)]
    pub reward: Credits,
    /// The prompt's escrowed bid, burned.
    #[schema(value_type = CreditAmount)]
    pub escrow_burned: Credits,
    /// The prompt that became active next, if any.
    pub next_active: Option<i64>,
}

/// A score as the client sent it: absent or `null` is missing; anything but a
/// number becomes NaN, which [`Scores::parse`] refuses as not a finite number.
fn score(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        Value::Number(n) => Some(n.as_f64().unwrap_or(f64::NAN)),
        _ => Some(f64::NAN),
    }
}

fn invalid_scores(e: ScoreError) -> ApiError {
    let field = match e {
        ScoreError::Missing(f)
        | ScoreError::NotFinite(f)
        | ScoreError::OutOfRange(f)
        | ScoreError::NotWhole(f) => f,
    };
    ApiError::bad_request("invalid_scores", e.to_string()).with_details(json!({"field": field}))
}

/// Rate the active prompt: its escrow is burned, the reward minted to its agent,
/// and the next prompt becomes active. A prompt is rated once; a second rating is
/// refused with 409 `prompt_not_active`.
#[utoipa::path(post, path = "/human/reward", tag = "human",
    security(("operator_token" = [])), request_body = RewardBody,
    responses((status = 200, body = RewardView), Errors))]
async fn reward(
    _: Operator,
    State(s): State<ApiState>,
    ApiJson(req): ApiJson<RewardBody>,
) -> ApiResult<Json<RewardView>> {
    let scores = [
        score(&req.interesting),
        score(&req.useful),
        score(&req.understandable),
    ];
    Ok(Json(rate(&s, req.prompt_id, scores, req.reason).await?))
}

/// Rates the active prompt: the one path of `POST /human/reward` and the console's
/// rating form. Scores are interesting, useful, understandable; `None` is missing.
pub(crate) async fn rate(
    s: &ApiState,
    prompt: i64,
    [interesting, useful, understandable]: [Option<f64>; 3],
    reason: Option<String>,
) -> ApiResult<RewardView> {
    let scores = Scores::parse(interesting, useful, understandable).map_err(invalid_scores)?;
    let reason = reason.unwrap_or_default();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_request(
            "invalid_reason",
            format!("reason is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    let out = s
        .store
        .reward_prompt(PromptId(prompt), scores, reason, s.config.reward_rates())
        .await?;
    Ok(RewardView {
        prompt: out.prompt.0,
        agent: out.agent.0,
        reward: out.reward,
        escrow_burned: out.escrow_burned,
        next_active: out.next_active.map(|p| p.0),
    })
}
