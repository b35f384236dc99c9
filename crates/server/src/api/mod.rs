//! The System Service (SPEC §11): the one HTTP API agents, humans and operators
//! use. One axum router serves the TCP listener and every per-execution Unix
//! socket; `/openapi.json` is generated from the same handler annotations that
//! route requests, so the contract cannot drift from the code.
//!
//! **Identity.** An agent endpoint acts as the agent its execution token names
//! ([`auth::Caller`]); no body field can name another acting agent. Human and admin
//! endpoints take only the operator token ([`auth::Operator`]).

pub(crate) mod admin;
mod auth;
mod create;
mod economic;
pub(crate) mod error;
mod extract;
pub(crate) mod files;
pub(crate) mod human;
mod idempotency;
mod market;
mod metrics;
pub mod operator;
mod schema;
mod serve;
mod social;
mod state;
mod system;
pub mod trace;
mod views;

pub use auth::{Caller, Operator};
pub use error::{ApiError, ErrorBody};
pub use serve::{serve_tcp, UnixServer};
pub use state::ApiState;

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The largest request body accepted (spawn uploads whole workspaces).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The longest a request may take before it is answered with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "agora System Service",
        description = "The one HTTP interface of agora: agents act with their execution token, \
                       humans and operators with the operator token. Amounts are decimal credits \
                       (at most 6 decimals), sent as strings; times are microseconds since the \
                       Unix epoch. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "market", description = "Prices, market state and bids (§5)"),
        (name = "economic", description = "Balance, payments and history (§4)"),
        (name = "human", description = "Prompts to the human and ratings (§7)"),
        (name = "social", description = "Spawn, messages and the agent directory (§9)"),
        (name = "system", description = "The caller's execution context and the rules"),
        (name = "admin", description = "Operator endpoints"),
        (name = "llm", description = "The LLM proxy: OpenAI-compatible, metered per execution (§10)"),
        (name = "always", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        for (name, doc) in [
            (
                "execution_token",
                "The token of the caller's running execution (AGORA_TOKEN)",
            ),
            (
                "operator_token",
                "The operator token from <data dir>/operator.token",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(doc))
                        .build(),
                ),
            );
        }
    }
}

/// The router of the System Service and the OpenAPI document describing it.
pub fn router(state: ApiState) -> (Router, OpenApi) {
    // The LLM proxy's routes have their own error shape (OpenAI's), body limit
    // and timeouts (a generation can take minutes), so they are layered apart.
    let (llm_routes, llm_openapi) = crate::llm::routes().split_for_parts();
    let llm_routes = llm_routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(crate::llm::openai_shape));
    let (routes, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics::metrics))
        .merge(market::routes())
        .merge(economic::routes())
        .merge(system::routes())
        .merge(human::routes())
        .merge(social::routes())
        .merge(admin::routes())
        .split_for_parts();
    // The console answers in HTML, errors included, so it is layered apart from
    // the JSON error shape.
    let console = crate::console::routes()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::console::MAX_FORM_BYTES,
        ));
    openapi.merge(llm_openapi);
    let doc = Arc::new(openapi.to_json().unwrap_or_default());
    let router = routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ([(CONTENT_TYPE, "application/json")], doc.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(error_shape))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(llm_routes)
        .merge(console)
        .layer(middleware::from_fn(trace::request))
        .with_state(state);
    (router, openapi)
}

/// Liveness: the process answers and the store can be read.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
    /// `sqlite` or `postgres`
    pub store: String,
    pub cycle: i64,
}

/// Liveness and store reachability.
#[utoipa::path(get, path = "/healthz", tag = "always",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn healthz(
    axum::extract::State(s): axum::extract::State<ApiState>,
) -> Result<Json<Health>, ApiError> {
    let cycle = s.store.current_cycle().await?;
    Ok(Json(Health {
        status: "ok".into(),
        store: s.store.backend().as_str().into(),
        cycle: cycle.0,
    }))
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}

/// Gives every error answer the contract's JSON shape, including those made by
/// layers (timeouts) rather than handlers.
async fn error_shape(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    match layer_error(&response) {
        Some((status, code, message)) => ApiError::new(status, code, message).into_response(),
        None => response,
    }
}

/// An error answer made outside the handlers (not JSON: a timeout, a wrong method,
/// a body over the limit) as the status, code and message of the error contract;
/// `None` for every other answer. Both error shapes (agora's and `/v1`'s) use it.
pub(crate) fn layer_error(response: &Response) -> Option<(StatusCode, &'static str, &'static str)> {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return None;
    }
    let code = match status {
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    Some((status, code, status.canonical_reason().unwrap_or("error")))
}
