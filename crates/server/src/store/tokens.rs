//! Execution tokens (SPEC §11): the only credential an agent has. A token names one
//! agent and one execution and is valid while that execution is scheduled or
//! running and the token is not revoked. Only its SHA-256 is stored.
//!
//! Tokens that authenticated are cached in memory so that the hot API paths do not
//! read the database per request. Every path that ends an execution revokes its
//! tokens in the same transaction and then evicts them here; a revocation counter
//! stops a lookup that raced with a revocation from caching a stale answer.

use super::error::{Rejection, StoreResult};
use super::{now_micros, Store};
use agora_core::{AgentId, ExecutionId};
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Prefix of every execution token, so a leaked one is recognisable.
pub const EXECUTION_TOKEN_PREFIX: &str = "agora_x_";

/// Who a valid execution token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenIdentity {
    pub agent: AgentId,
    pub execution: ExecutionId,
}

/// A SHA-256 digest of a token.
pub type TokenHash = [u8; 32];

/// Hashes a presented token.
pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token: `prefix` + 32 random bytes in URL-safe base64.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{prefix}{body}")
}

fn hex(hash: &TokenHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tokens known to be valid, by hash.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    valid: RwLock<HashMap<TokenHash, TokenIdentity>>,
    revocations: AtomicU64,
}

impl TokenCache {
    fn get(&self, hash: &TokenHash) -> Option<TokenIdentity> {
        self.valid.read().ok()?.get(hash).copied()
    }

    /// Caches a lookup unless a revocation happened since `epoch` was read.
    fn insert_if_current(&self, hash: TokenHash, id: TokenIdentity, epoch: u64) {
        if let Ok(mut valid) = self.valid.write() {
            if self.revocations.load(Ordering::SeqCst) == epoch {
                valid.insert(hash, id);
            }
        }
    }

    /// Forgets every token of `execution`.
    pub(crate) fn evict(&self, execution: ExecutionId) {
        if let Ok(mut valid) = self.valid.write() {
            self.revocations.fetch_add(1, Ordering::SeqCst);
            valid.retain(|_, id| id.execution != execution);
        }
    }
}

/// Revokes the tokens of an execution inside the caller's transaction. The caller
/// evicts them from the cache after commit ([`TokenCache::evict`]).
pub(crate) async fn revoke_in(c: &mut AnyConnection, execution: ExecutionId) -> StoreResult<()> {
    sqlx::query("UPDATE execution_tokens SET revoked_at = $1 WHERE execution_id = $2 AND revoked_at IS NULL")
        .bind(now_micros())
        .bind(execution.0)
        .execute(&mut *c)
        .await?;
    Ok(())
}

impl Store {
    /// Issues a token for a scheduled or running execution. Returned once; only
    /// its hash is stored.
    pub async fn issue_token(&self, execution: ExecutionId) -> StoreResult<String> {
        let token = random_token(EXECUTION_TOKEN_PREFIX);
        let digest = hex(&hash_token(&token));
        self.write_tx(move |c| {
            let digest = digest.clone();
            Box::pin(async move {
                let row = sqlx::query("SELECT agent_id, status FROM executions WHERE id = $1")
                    .bind(execution.0)
                    .fetch_optional(&mut *c)
                    .await?
                    .ok_or(Rejection::UnknownExecution(execution))?;
                let status: String = row.try_get("status")?;
                if status != "scheduled" && status != "running" {
                    return Err(Rejection::UnknownExecution(execution).into());
                }
                let agent: i64 = row.try_get("agent_id")?;
                sqlx::query(
                    "INSERT INTO execution_tokens (hash, agent_id, execution_id, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(digest.as_str())
                .bind(agent)
                .bind(execution.0)
                .bind(now_micros())
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await?;
        Ok(token)
    }

    /// The agent and execution a presented token speaks for, or `None` when it is
    /// unknown, revoked, or its execution has ended.
    pub async fn authenticate(&self, token: &str) -> StoreResult<Option<TokenIdentity>> {
        if !token.starts_with(EXECUTION_TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = hash_token(token);
        if let Some(id) = self.tokens.get(&hash) {
            return Ok(Some(id));
        }
        let epoch = self.tokens.revocations.load(Ordering::SeqCst);
        let row = sqlx::query(
            "SELECT t.agent_id, t.execution_id FROM execution_tokens t \
             JOIN executions e ON e.id = t.execution_id \
             WHERE t.hash = $1 AND t.revoked_at IS NULL AND e.status IN ('scheduled', 'running')",
        )
        .bind(hex(&hash))
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id = TokenIdentity {
            agent: AgentId(row.try_get("agent_id")?),
            execution: ExecutionId(row.try_get("execution_id")?),
        };
        self.tokens.insert_if_current(hash, id, epoch);
        Ok(Some(id))
    }

    /// Revokes every token of an execution (its end does this too).
    pub async fn revoke_tokens(&self, execution: ExecutionId) -> StoreResult<()> {
        let r = self
            .write_tx(move |c| Box::pin(revoke_in(c, execution)))
            .await;
        self.tokens.evict(execution);
        r
    }
}
