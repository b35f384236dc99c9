//! Who is calling (SPEC §11). An agent is whoever its execution token says: the
//! [`Caller`] extractor is the only source of an acting agent id, and no request
//! body can name another. The [`Operator`] extractor guards human and admin
//! endpoints; an execution token there is refused with 403.

use super::error::ApiError;
use super::state::ApiState;
use super::trace::RequestTrace;
use crate::store::{TokenIdentity, EXECUTION_TOKEN_PREFIX};
use agora_core::{AgentId, ExecutionId};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use std::sync::Arc;

/// The agent and execution a request speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub agent: AgentId,
    pub execution: ExecutionId,
}

/// A request authenticated with the operator token.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

/// The bearer token of a request.
pub fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthenticated("send `Authorization: Bearer <token>`"))?;
    let text = value
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not ASCII"))?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <token>`"))?;
    Ok(token.trim())
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if state.operator.verify(token) {
            return Err(ApiError::forbidden(
                "agent_token_required",
                "this endpoint acts as an agent; call it with an execution token",
            ));
        }
        match state.store.authenticate(token).await? {
            Some(TokenIdentity { agent, execution }) => {
                let caller = Caller { agent, execution };
                if let Some(trace) = parts.extensions.get::<Arc<RequestTrace>>() {
                    trace.identify(caller);
                }
                Ok(caller)
            }
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is unknown, revoked, or its execution has ended",
            )),
        }
    }
}

impl FromRequestParts<ApiState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if state.operator.verify(token) {
            return Ok(Operator);
        }
        if token.starts_with(EXECUTION_TOKEN_PREFIX) {
            return Err(ApiError::forbidden(
                "operator_token_required",
                "agents cannot call human or admin endpoints",
            ));
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "not the operator token",
        ))
    }
}
