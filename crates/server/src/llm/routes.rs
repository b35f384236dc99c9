//! `POST /v1/chat/completions` and `GET /v1/models`: thin handlers that check
//! the token, the body and the model, then hand the call to its own task.

use super::call::{self, Call};
use super::error::{LlmError, LlmErrorBody};
use super::request::ChatRequest;
use crate::api::{ApiError, ApiState, Caller};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{json, Value};
use std::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(models))
}

/// An OpenAI chat completion request. Only the fields below are read by the
/// proxy; every other field is passed to the upstream unchanged.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ChatCompletionRequest {
    /// A model the upstream serves (and `[llm] models` allows).
    pub model: String,
    /// The conversation; content is text (a string or parts of type `text`).
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub messages: Vec<Value>,
    pub stream: Option<bool>,
    /// `{"include_usage": true}` to receive the usage chunk of a stream.
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Value>,
    /// Clamped to what the execution's token quota leaves (see the
    /// `x-agora-max-tokens-clamped` header).
    #[schema(minimum = 1)]
    pub max_tokens: Option<u64>,
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u64>,
    #[schema(minimum = 1, maximum = 128)]
    pub n: Option<u64>,
}

/// A chat completion through the host's LLM upstream, metered against the
/// execution's token quota (SPEC §10). Streams (`stream: true`) pass through
/// event by event. The answer names the LlmCall record in `x-agora-llm-call`
/// and, when the proxy changed the output cap, the cap in
/// `x-agora-max-tokens-clamped`.
/// One event of a streamed completion as a Server-Sent Events client parses it (the
/// OpenAPI document describes an event stream by one event).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ChunkEvent {
    /// A `chat.completion.chunk` as JSON, or `[DONE]` last.
    pub data: String,
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "llm",
    security(("execution_token" = [])),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The upstream's answer: a chat completion (application/json), or with `stream: true` an event stream (text/event-stream) of chunks ending with `data: [DONE]`",
            content(
                (Object = "application/json"),
                (ChunkEvent = "text/event-stream"),
            )),
        (status = 400, description = "Bad input", body = LlmErrorBody),
        (status = 401, description = "Missing, unknown or ended execution token", body = LlmErrorBody),
        (status = 402, description = "The token quota cannot fit the call (`insufficient_quota`)", body = LlmErrorBody),
        (status = 403, description = "Model not allowed, or not an execution token", body = LlmErrorBody),
        (status = 413, description = "Body over [llm] max_body_bytes", body = LlmErrorBody),
        (status = 429, description = "Too many calls in flight (Retry-After)", body = LlmErrorBody),
        (status = 502, description = "The upstream failed", body = LlmErrorBody),
        (status = 503, description = "No upstream configured", body = LlmErrorBody),
        (status = 504, description = "The upstream timed out", body = LlmErrorBody),
    ))]
async fn chat_completions(
    State(s): State<ApiState>,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Result<Response, LlmError> {
    let received = Instant::now();
    let result = admit_and_call(&s, caller, body, received).await;
    if let Err(e) = &result {
        s.llm.metrics.refused(e.code);
    }
    result
}

async fn admit_and_call(
    s: &ApiState,
    caller: Result<Caller, ApiError>,
    body: Body,
    received: Instant,
) -> Result<Response, LlmError> {
    let caller = caller?;
    s.llm.upstream()?;
    let config = &s.llm.config;
    let bytes = match Limited::new(body, config.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(LlmError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {} bytes", config.max_body_bytes),
            ))
        }
        Err(e) => {
            return Err(LlmError::bad_request(
                "invalid_body",
                format!("cannot read the body: {e}"),
            ))
        }
    };
    let request = ChatRequest::parse(&bytes)?;
    if !config.allows(&request.model) {
        return Err(LlmError::new(
            StatusCode::FORBIDDEN,
            "model_not_allowed",
            format!("model {:?} is not allowed on this host", request.model),
        )
        .with_details(json!({"model": request.model, "allowed": config.models})));
    }
    let permit = s.llm.permit(caller.execution)?;
    let answer = call::spawn(Call {
        state: s.clone(),
        caller,
        request,
        received,
        permit,
    });
    answer.await.map_err(|_| {
        LlmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the call ended without an answer",
        )
    })
}

/// The models of the upstream, narrowed to `[llm] models` when that is set.
#[utoipa::path(get, path = "/v1/models", tag = "llm",
    security(("execution_token" = [])),
    responses(
        (status = 200, description = "OpenAI's model list: `{\"object\": \"list\", \"data\": [{\"id\", …}]}`", body = Object),
        (status = 401, description = "Missing, unknown or ended execution token", body = LlmErrorBody),
        (status = 403, description = "Not an execution token", body = LlmErrorBody),
        (status = 502, description = "The upstream failed", body = LlmErrorBody),
        (status = 503, description = "No upstream configured", body = LlmErrorBody),
        (status = 504, description = "The upstream timed out", body = LlmErrorBody),
    ))]
async fn models(
    State(s): State<ApiState>,
    caller: Result<Caller, ApiError>,
) -> Result<Json<Value>, LlmError> {
    caller?;
    let mut list = s.llm.upstream()?.models().await?;
    let config = &s.llm.config;
    if !config.models.is_empty() {
        if let Some(data) = list.get_mut("data").and_then(Value::as_array_mut) {
            data.retain(|m| m["id"].as_str().is_some_and(|id| config.allows(id)));
        }
    }
    Ok(Json(list))
}
