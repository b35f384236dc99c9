//! Small helpers shared by the store modules: how accounts are addressed in SQL
//! and how rows are read back into core types.

use super::error::{StoreError, StoreResult};
use agora_core::{Account, AgentId, Bundle, ResourceVec};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One page of a newest-first list: the rows whose id is below `before` (all rows
/// when it is `None`), at most `limit` of them. Keyset paging: a page stays the
/// same while newer rows arrive, and reading it costs the same however deep it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newest {
    pub before: Option<i64>,
    pub limit: i64,
}

impl Newest {
    /// The newest `limit` rows.
    pub fn first(limit: i64) -> Newest {
        Newest {
            before: None,
            limit,
        }
    }

    /// The page of `limit` rows below `before`, or of the newest when it is `None`;
    /// `None` when `before` is not a positive id (no row has one), which callers
    /// refuse as a bad cursor.
    pub fn below_cursor(before: Option<i64>, limit: i64) -> Option<Newest> {
        match before {
            Some(id) if id < 1 => None,
            before => Some(Newest { before, limit }),
        }
    }

    /// The exclusive upper bound on ids, for `id < $n`.
    pub(crate) fn below(&self) -> i64 {
        self.before.unwrap_or(i64::MAX)
    }
}

/// The id of the `mint` account (inserted first by the initial migration).
pub const MINT_ACCOUNT_ID: i64 = 1;
/// The id of the `burn` account.
pub const BURN_ACCOUNT_ID: i64 = 2;

/// The `WHERE` column and value that select an account's row.
pub fn account_key(account: Account) -> (&'static str, i64) {
    match account {
        Account::Mint => ("id", MINT_ACCOUNT_ID),
        Account::Burn => ("id", BURN_ACCOUNT_ID),
        Account::Agent(AgentId(id)) => ("agent_id", id),
    }
}

/// Rebuilds an [`Account`] from an `accounts` row's kind and agent id.
pub fn account_from(kind: &str, agent_id: Option<i64>) -> StoreResult<Account> {
    match (kind, agent_id) {
        ("mint", None) => Ok(Account::Mint),
        ("burn", None) => Ok(Account::Burn),
        ("agent", Some(id)) => Ok(Account::Agent(AgentId(id))),
        _ => Err(StoreError::Corrupt(format!(
            "account kind {kind:?} with agent {agent_id:?}"
        ))),
    }
}

/// Reads the bundle columns (`cpu_millis`, `memory_mb`, `tokens`, `attention_ppm`,
/// `wall_millis`) of a bid or execution row.
pub fn bundle_from(row: &AnyRow) -> StoreResult<Bundle> {
    let get = |c: &str| -> StoreResult<u64> {
        let v: i64 = row.try_get(c)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {c}")))
    };
    let q = ResourceVec([
        get("cpu_millis")?,
        get("memory_mb")?,
        get("tokens")?,
        get("attention_ppm")?,
    ]);
    let wall: Option<i64> = row.try_get("wall_millis")?;
    Ok(Bundle::from_base(
        q,
        wall.and_then(|w| u64::try_from(w).ok()),
    ))
}

/// A quantity in base units as the database stores it.
pub fn db_qty(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
