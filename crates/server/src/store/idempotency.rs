//! Idempotency keys for money-moving requests whose effect spans several rows
//! (SPEC §4): placing a bid, spawning, sending a message, creating an agent. Inside
//! the operation's own transaction, [`recall`] finds an earlier outcome of the key
//! and [`remember`] records this one, so a retry replays the first outcome and
//! moves nothing; the same key for a different request is refused.
//!
//! Transfers and grants keep their key on the transfer row instead (one row is
//! their whole effect); see `ledger.rs`.

use super::error::{Rejection, StoreResult};
use super::now_micros;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

/// The scope of keys the operator uses (no agent has id 0).
pub const OPERATOR_SCOPE: i64 = 0;

/// A request's idempotency key and a digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// The outcome recorded for `key` in `scope`, if the key was used before. Refuses
/// a key used for another operation or another request.
pub(crate) async fn recall(
    c: &mut AnyConnection,
    scope: i64,
    operation: &str,
    idem: &Idempotency,
) -> StoreResult<Option<Value>> {
    let row = sqlx::query(
        "SELECT operation, fingerprint, outcome FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(idem.key.as_str())
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let op: String = row.try_get("operation")?;
    let fp: String = row.try_get("fingerprint")?;
    if op != operation || fp != idem.fingerprint {
        return Err(Rejection::IdempotencyConflict {
            key: idem.key.clone(),
        }
        .into());
    }
    let outcome: String = row.try_get("outcome")?;
    Ok(Some(serde_json::from_str(&outcome).map_err(|e| {
        super::StoreError::Corrupt(format!("idempotency outcome: {e}"))
    })?))
}

/// Records the outcome of the first request with `key`.
pub(crate) async fn remember(
    c: &mut AnyConnection,
    scope: i64,
    operation: &str,
    idem: &Idempotency,
    outcome: &Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, operation, fingerprint, outcome, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope)
    .bind(idem.key.as_str())
    .bind(operation)
    .bind(idem.fingerprint.as_str())
    .bind(outcome.to_string())
    .bind(now_micros())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// An id recorded in an outcome.
pub(crate) fn id_in(outcome: &Value, field: &str) -> StoreResult<Option<i64>> {
    match &outcome[field] {
        Value::Null => Ok(None),
        v => v.as_i64().map(Some).ok_or_else(|| {
            super::StoreError::Corrupt(format!("idempotency outcome field {field}"))
        }),
    }
}
