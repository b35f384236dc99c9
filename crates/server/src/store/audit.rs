//! `agora audit` over the database: recomputes every account's postings and every
//! hold's settlements from the records and checks them with `agora_core::audit`.

use super::error::StoreResult;
use super::rows::account_from;
use super::Store;
use agora_core::audit::{self, AccountSnapshot, AuditInput, HoldSnapshot, Violation};
use agora_core::{HoldId, HoldStatus};
use sqlx::Row;
use std::collections::HashMap;

/// The result of an audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub accounts: usize,
    pub holds: usize,
    pub transfers: i64,
    pub violations: Vec<Violation>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl Store {
    /// Checks every invariant of SPEC §4 against the database. Runs in one read
    /// transaction so that it sees a single consistent snapshot.
    pub async fn audit(&self) -> StoreResult<AuditReport> {
        let mut tx = self.reader().begin().await?;
        if self.backend() == super::Backend::Postgres {
            // READ COMMITTED would give each query its own snapshot; the sums must
            // all describe the same moment while money keeps moving.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let sums = |col: &str| {
            format!("SELECT {col} AS account_id, CAST(SUM(amount) AS BIGINT) AS total FROM transfers GROUP BY {col}")
        };
        let mut postings: HashMap<i64, i128> = HashMap::new();
        for r in sqlx::query(&sums("credit_account"))
            .fetch_all(&mut *tx)
            .await?
        {
            *postings.entry(r.try_get("account_id")?).or_default() +=
                i128::from(r.try_get::<i64, _>("total")?);
        }
        for r in sqlx::query(&sums("debit_account"))
            .fetch_all(&mut *tx)
            .await?
        {
            *postings.entry(r.try_get("account_id")?).or_default() -=
                i128::from(r.try_get::<i64, _>("total")?);
        }
        let mut pending: HashMap<i64, i128> = HashMap::new();
        for r in sqlx::query(
            "SELECT account_id, CAST(SUM(amount) AS BIGINT) AS total FROM holds \
             WHERE status = 'pending' GROUP BY account_id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            pending.insert(
                r.try_get("account_id")?,
                i128::from(r.try_get::<i64, _>("total")?),
            );
        }
        let mut accounts = Vec::new();
        for r in sqlx::query("SELECT id, kind, agent_id, balance, held FROM accounts ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
        {
            let id: i64 = r.try_get("id")?;
            accounts.push(AccountSnapshot {
                account: account_from(&r.try_get::<String, _>("kind")?, r.try_get("agent_id")?)?,
                balance: r.try_get("balance")?,
                held: r.try_get("held")?,
                postings: postings.get(&id).copied().unwrap_or(0),
                pending_holds: pending.get(&id).copied().unwrap_or(0),
            });
        }
        let mut holds = Vec::new();
        for r in sqlx::query(
            "SELECT h.id, h.status, (SELECT COUNT(*) FROM transfers t WHERE t.hold_id = h.id) AS settled \
             FROM holds h ORDER BY h.id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let status: String = r.try_get("status")?;
            let id = HoldId(r.try_get("id")?);
            holds.push(HoldSnapshot {
                id,
                status: HoldStatus::parse(&status).ok_or_else(|| {
                    super::StoreError::Corrupt(format!("hold {id} has status {status:?}"))
                })?,
                settling_transfers: r.try_get("settled")?,
            });
        }
        let transfers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transfers")
            .fetch_one(&mut *tx)
            .await?;
        tx.rollback().await?;
        let input = AuditInput { accounts, holds };
        Ok(AuditReport {
            accounts: input.accounts.len(),
            holds: input.holds.len(),
            transfers,
            violations: audit::check(&input),
        })
    }
}
