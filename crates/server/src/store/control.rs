//! Operator controls kept in `system_state`: whether allocation is paused. A
//! paused world keeps serving the API and running executions to their end; the
//! Orchestrator clears no market while the flag is set.

use super::error::StoreResult;
use super::Store;

impl Store {
    /// True while the operator has paused allocation.
    pub async fn paused(&self) -> StoreResult<bool> {
        let v: Option<String> =
            sqlx::query_scalar("SELECT value FROM system_state WHERE key = 'paused'")
                .fetch_optional(self.reader())
                .await?;
        Ok(v.as_deref() == Some("true"))
    }

    /// Pauses or resumes allocation. Idempotent.
    pub async fn set_paused(&self, paused: bool) -> StoreResult<()> {
        let value = if paused { "true" } else { "false" };
        self.write_tx(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO system_state (key, value) VALUES ('paused', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(value)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await
    }
}
