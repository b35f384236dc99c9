//! The `Idempotency-Key` header of money-moving requests (SPEC §4): reading it,
//! fingerprinting the request it came with, and answering a replay (200 with
//! `Idempotent-Replayed: true`) differently from a first success (201).

use super::error::{ApiError, ApiResult};
use crate::store::Idempotency;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Longest accepted idempotency key, in bytes.
pub const MAX_KEY: usize = 200;

/// The `Idempotency-Key` header: 1..=200 visible ASCII characters.
pub fn key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= MAX_KEY && t.bytes().all(|b| b.is_ascii_graphic()));
    match text {
        Some(t) => Ok(Some(t.to_string())),
        None => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1..={MAX_KEY} visible ASCII characters"),
        )),
    }
}

/// The key of a request with a digest of its body, so that the same key sent
/// with a different request is refused rather than replayed.
pub fn request<B: Serialize>(headers: &HeaderMap, body: &B) -> ApiResult<Option<Idempotency>> {
    let Some(key) = key(headers)? else {
        return Ok(None);
    };
    let text = serde_json::to_string(body).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("fingerprint: {e}"),
        )
    })?;
    let digest = Sha256::digest(text.as_bytes());
    let fingerprint = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(Idempotency { key, fingerprint }))
}

/// 201 with the view, or for a replay 200 with `Idempotent-Replayed: true`.
pub fn answer<T: Serialize>(view: T, replayed: bool) -> Response {
    if replayed {
        let mut r = (StatusCode::OK, Json(view)).into_response();
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        r
    } else {
        (StatusCode::CREATED, Json(view)).into_response()
    }
}

/// The `Idempotency-Key` header as the OpenAPI document describes it ([`key`]
/// reads it from the raw headers).
#[derive(Debug, utoipa::IntoParams)]
#[allow(dead_code)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeader {
    /// Makes retries safe: a retry with the same key and request returns the first
    /// result (200, `Idempotent-Replayed: true`) and moves nothing; the same key
    /// with another request is 409. 1..=200 visible ASCII characters, scoped to
    /// the caller.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 200,
        pattern = "^[\\x21-\\x7e]+$"
    )]
    pub idempotency_key: Option<String>,
}
