//! The error contract of the System Service (SPEC §11): every failure is
//! `{"error": {"code", "message", "details"}}` with a fitting 4xx status. A refusal
//! of the economy maps to a status here, in one table; a 5xx is always a fault of
//! the process or the database, never of the request.

use crate::store::{Rejection, StoreError};
use agora_core::LedgerError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `insufficient_funds`.
    pub code: String,
    /// A sentence for humans.
    pub message: String,
    /// Facts about the error (e.g. the reserve price); an object, possibly empty.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    /// 400 with a code naming what was wrong.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(component = "api", code = self.code, message = %self.message, "request failed");
        }
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// The status of each refusal of the economy.
fn rejection_status(r: &Rejection) -> StatusCode {
    use Rejection as R;
    match r {
        R::UnknownAgent(_) | R::UnknownBid(_) | R::UnknownPrompt(_) | R::UnknownExecution(_) => {
            StatusCode::NOT_FOUND
        }
        R::Ledger(LedgerError::UnknownAccount(_) | LedgerError::UnknownHold(_)) => {
            StatusCode::NOT_FOUND
        }
        R::NotYourBid(_) => StatusCode::FORBIDDEN,
        R::Ledger(LedgerError::InsufficientFunds { .. } | LedgerError::HoldSettled { .. })
        | R::AgentDead(_)
        | R::BidNotPending { .. }
        | R::TooManyBids { .. }
        | R::PromptAlreadySubmitted(_)
        | R::PromptNotActive { .. }
        | R::IdempotencyConflict { .. } => StatusCode::CONFLICT,
        R::Ledger(
            LedgerError::NotPositive
            | LedgerError::SelfTransfer
            | LedgerError::NotAnAgent(_)
            | LedgerError::Overflow,
        )
        | R::BelowReserve { .. }
        | R::NotARaise { .. }
        | R::MessageToSelf => StatusCode::BAD_REQUEST,
    }
}

fn rejection_details(r: &Rejection) -> Value {
    use Rejection as R;
    match r {
        R::Ledger(LedgerError::InsufficientFunds { available, needed }) => {
            json!({"available": available, "needed": needed})
        }
        R::BelowReserve { offered, reserve } => json!({"offered": offered, "reserve": reserve}),
        R::NotARaise { current } => json!({"current": current}),
        R::TooManyBids { max } => json!({"max_pending_bids": max}),
        R::UnknownAgent(id) | R::AgentDead(id) => json!({"agent": id}),
        R::UnknownBid(id) | R::NotYourBid(id) => json!({"bid": id}),
        R::BidNotPending { id, status } => json!({"bid": id, "status": status}),
        R::UnknownPrompt(id) => json!({"prompt": id}),
        R::PromptNotActive { id, status } => json!({"prompt": id, "status": status}),
        R::UnknownExecution(id) | R::PromptAlreadySubmitted(id) => json!({"execution": id}),
        _ => json!({}),
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        ApiError {
            status: rejection_status(&r),
            code: r.code(),
            message: r.to_string(),
            details: rejection_details(&r),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Rejected(r) => r.into(),
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is overloaded or shutting down; retry later",
                )
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
