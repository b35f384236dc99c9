//! Request extractors whose every refusal is an [`ApiError`] in the contract's
//! shape: malformed JSON, a wrong content type, an oversized body, a bad query
//! string or path parameter are all 4xx answers that changed nothing.

use super::error::ApiError;
use agora_core::Credits;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!(
                "the body does not fit the endpoint's schema: {}",
                e.body_text()
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is larger than the server accepts",
            )
        }
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// A query string.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// Parses an amount of credits sent as a decimal string or a JSON number. Amounts
/// are taken as `Value` by the request types so that every way of getting one
/// wrong (missing, null, negative, NaN, a word, too many decimals, too large) is the
/// same clear `invalid_amount` answer naming the field.
pub fn amount(field: &str, v: &Value) -> Result<Credits, ApiError> {
    let parsed = match v {
        Value::String(s) => Credits::parse_positive(s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Credits::parse_positive(&i.to_string()),
            None => Credits::from_f64(n.as_f64().unwrap_or(f64::NAN)).and_then(|c| {
                if c.is_positive() {
                    Ok(c)
                } else {
                    Err(agora_core::CreditsError::NotPositive)
                }
            }),
        },
        Value::Null => {
            return Err(
                ApiError::bad_request("invalid_amount", format!("`{field}` is required"))
                    .with_details(serde_json::json!({"field": field})),
            )
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_amount",
                format!("`{field}` must be a decimal number of credits, as a string or a number"),
            )
            .with_details(serde_json::json!({"field": field})))
        }
    };
    parsed.map_err(|e| {
        ApiError::bad_request("invalid_amount", format!("`{field}`: {e}"))
            .with_details(serde_json::json!({"field": field}))
    })
}

/// A page size: `limit` within 1..=max, `default` when absent.
pub fn limit(requested: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1..={max}, not {n}"),
        )),
    }
}
