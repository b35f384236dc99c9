//! Executions as the operator sees them: the record with its log location, and the
//! per-execution log itself (SPEC §6 Output), its last MiB as plain text.

use crate::api::auth::Operator;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::ApiPath;
use crate::api::schema::Errors;
use crate::api::state::ApiState;
use crate::api::views::ExecutionView;
use agora_core::ExecutionId;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use utoipa::ToSchema;

/// The most of a log one request returns: its end, where the latest output is.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// An execution and where its log is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionDetail {
    pub execution: ExecutionView,
    /// LLM tokens charged so far.
    pub tokens_used: i64,
    /// The per-execution log file on the host, once the execution has one.
    pub log_path: Option<String>,
}

/// One execution and its log location.
#[utoipa::path(get, path = "/admin/executions/{id}", tag = "admin",
    security(("operator_token" = [])), params(("id" = i64, Path, description = "execution id")),
    responses((status = 200, body = ExecutionDetail), Errors))]
pub(super) async fn detail(
    _: Operator,
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ExecutionDetail>> {
    let id = ExecutionId(id);
    let exec = s.store.execution(id).await?;
    let log_path = s.store.execution_log_path(id).await?;
    Ok(Json(ExecutionDetail {
        execution: (&exec).into(),
        tokens_used: exec.tokens_used,
        log_path,
    }))
}

/// The execution's log (stdout and stderr, line by line), at most its last MiB;
/// `X-Log-Truncated: true` when the start was cut (at a line boundary).
#[utoipa::path(get, path = "/admin/executions/{id}/log", tag = "admin",
    security(("operator_token" = [])), params(("id" = i64, Path, description = "execution id")),
    responses(
        (status = 200, description = "the log as text", content_type = "text/plain", body = String,
            headers(("X-Log-Truncated" = String, description = "`true` when only the end is sent"))),
        Errors))]
pub(super) async fn log(
    _: Operator,
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let id = ExecutionId(id);
    let no_log = || {
        ApiError::not_found("no_log", format!("execution {id} has no log"))
            .with_details(serde_json::json!({"execution": id.0}))
    };
    let path = PathBuf::from(s.store.execution_log_path(id).await?.ok_or_else(no_log)?);
    let read = tokio::task::spawn_blocking(move || tail(&path, MAX_LOG_BYTES))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let (text, truncated) = match read {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_log()),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot read the log of execution {id}: {e}"),
            ))
        }
    };
    let mut r = text.into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if truncated {
        r.headers_mut()
            .insert("x-log-truncated", HeaderValue::from_static("true"));
    }
    Ok(r)
}

/// The last `max` bytes of a file as text, starting after the first line break
/// when the file was cut, and whether it was cut. Bytes that are not UTF-8 are
/// replaced, not refused: agents print what they like.
pub(crate) fn tail(path: &std::path::Path, max: u64) -> std::io::Result<(String, bool)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let truncated = len > max;
    if truncated {
        f.seek(SeekFrom::Start(len - max))?;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(max)).unwrap_or(0));
    f.take(max).read_to_end(&mut bytes)?;
    let start = if truncated {
        bytes
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0)
    } else {
        0
    };
    Ok((
        String::from_utf8_lossy(&bytes[start..]).into_owned(),
        truncated,
    ))
}

#[cfg(test)]
mod tests {
    use super::tail;
    use std::io::Write;

    #[test]
    fn tail_cuts_at_a_line_boundary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(b"first line\nsecond\nthird\n").expect("write");
        let (all, cut) = tail(&path, 1000).expect("tail");
        assert_eq!((all.as_str(), cut), ("first line\nsecond\nthird\n", false));
        let (end, cut) = tail(&path, 10).expect("tail");
        assert_eq!((end.as_str(), cut), ("third\n", true));
    }
}
