//! Errors of the `/v1` routes, shaped so that both kinds of client understand
//! them: OpenAI's SDKs read `error.message`, `error.type` and `error.code` (and
//! decide on retries by status), agora's own clients read `error.code`,
//! `error.message` and `error.details`. One body carries all of them:
//! `{"error": {"message", "type", "param", "code", "details"}}`.

use crate::api::ApiError;
use axum::extract::Request;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// An error answer of the LLM proxy.
#[derive(Debug, Clone)]
pub struct LlmError {
    pub status: StatusCode,
    /// agora's stable snake_case code, also OpenAI's `code`.
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

/// The body of every `/v1` error answer.
#[derive(Debug, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct LlmErrorBody {
    pub error: LlmErrorDetail,
}

/// What went wrong, in OpenAI's fields plus agora's `details`.
#[derive(Debug, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct LlmErrorDetail {
    /// A sentence for humans.
    pub message: String,
    /// OpenAI's error class, e.g. `insufficient_quota`, `rate_limit_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always null: kept for OpenAI's shape.
    #[schema(value_type = Option<String>)]
    pub param: Option<String>,
    /// A stable snake_case code, e.g. `insufficient_quota`.
    pub code: String,
    /// Facts about the error; an object, possibly empty.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// OpenAI's `type` for a status.
fn openai_type(status: StatusCode, code: &str) -> &'static str {
    match status.as_u16() {
        402 => "insufficient_quota",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 if code == "no_upstream" => "service_unavailable",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

impl LlmError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> LlmError {
        LlmError {
            status,
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> LlmError {
        LlmError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with_details(mut self, details: Value) -> LlmError {
        self.details = details;
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> LlmError {
        self.retry_after = Some(seconds);
        self
    }

    /// 503: no `[llm] base_url` is configured.
    pub fn no_upstream() -> LlmError {
        LlmError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_upstream",
            "no LLM upstream is configured on this host ([llm] base_url)",
        )
    }

    /// The body, as JSON.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": openai_type(self.status, self.code),
            "param": null,
            "code": self.code,
            "details": self.details,
        }})
    }
}

impl IntoResponse for LlmError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(component = "llm_proxy", status = self.status.as_u16(), code = self.code, message = %self.message, "call failed");
        }
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

/// Refusals of the shared extractors (the execution token) keep their status,
/// code and message.
impl From<ApiError> for LlmError {
    fn from(e: ApiError) -> LlmError {
        LlmError {
            status: e.status,
            code: e.code,
            message: e.message,
            details: e.details,
            retry_after: None,
        }
    }
}

/// Gives error answers made outside the handlers (a wrong method) the `/v1` shape.
pub async fn openai_shape(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    match crate::api::layer_error(&response) {
        Some((status, code, message)) => LlmError::new(status, code, message).into_response(),
        None => response,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_body_speaks_both_shapes() {
        let b = LlmError::new(StatusCode::PAYMENT_REQUIRED, "insufficient_quota", "out")
            .with_details(json!({"remaining": 3}))
            .body();
        let e = &b["error"];
        assert_eq!(e["type"], "insufficient_quota");
        assert_eq!(e["code"], "insufficient_quota");
        assert_eq!(e["message"], "out");
        assert_eq!(e["details"]["remaining"], 3);
        assert!(e["param"].is_null());
    }

    #[test]
    fn retry_after_is_a_header() {
        let r = LlmError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_calls", "wait")
            .retry_after(1)
            .into_response();
        assert_eq!(r.headers().get(RETRY_AFTER).unwrap(), "1");
    }
}
