//! The EconomicEngine over the database (SPEC §4): balance moves, holds, posts and
//! voids as SQL, with the same rules as `agora_core::ledger`.
//!
//! Every balance change is a conditional `UPDATE` whose `WHERE` clause is the rule
//! (`balance - held >= amount`), so the check and the write are one atomic step on
//! both backends. Accounts are always locked in the order of [`Account`]'s `Ord`
//! (mint, burn, then agents by id), so two transactions never wait on each other in
//! a cycle.

use super::error::{Rejection, StoreError, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::rows::{account_from, account_key, Newest};
use super::{now_micros, Store};
use agora_core::{
    Account, AgentId, BidId, Credits, ExecutionId, HoldId, HoldStatus, LedgerError, PromptId,
    TransferId, TransferKind,
};
use serde_json::json;
use sqlx::{AnyConnection, Row};

/// What a transfer refers to, recorded with it.
#[derive(Debug, Clone, Default)]
pub struct Refs {
    pub memo: String,
    pub bid: Option<BidId>,
    pub execution: Option<ExecutionId>,
    pub prompt: Option<PromptId>,
    pub idempotency_key: Option<String>,
}

/// A transfer as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransferRecord {
    pub id: i64,
    /// `mint`, `burn` or `agent:<id>`.
    pub debit: String,
    pub credit: String,
    pub amount: Credits,
    pub kind: String,
    pub memo: String,
    pub bid_id: Option<i64>,
    pub execution_id: Option<i64>,
    pub prompt_id: Option<i64>,
    pub created_at: i64,
}

/// An agent-to-agent payment (`POST /economic/transfer`).
#[derive(Debug, Clone)]
pub struct TransferRequest {
    pub from: AgentId,
    pub to: AgentId,
    pub amount: Credits,
    pub memo: String,
    /// A retry with the same key (from the same payer) returns the first result
    /// and moves nothing.
    pub idempotency_key: Option<String>,
}

/// An agent's money: `available = balance − held`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Balance {
    pub balance: Credits,
    pub held: Credits,
    pub available: Credits,
}

const I64_MAX: i64 = i64::MAX;

/// Takes `amount` out of an account; agents are checked against `available`, burn
/// against its balance (it only refunds what it received), mint against overflow.
async fn debit(c: &mut AnyConnection, account: Account, amount: Credits) -> StoreResult<i64> {
    let (col, key) = account_key(account);
    let rule = match account {
        Account::Agent(_) => "balance - held >= $1",
        Account::Burn => "balance >= $1",
        Account::Mint => "balance >= $1 - 9223372036854775807",
    };
    let sql = format!(
        "UPDATE accounts SET balance = balance - $1 WHERE {col} = $2 AND {rule} RETURNING id"
    );
    let row = sqlx::query(&sql)
        .bind(amount.micros())
        .bind(key)
        .fetch_optional(&mut *c)
        .await?;
    match row {
        Some(r) => Ok(r.try_get("id")?),
        None => Err(refusal(c, account, amount).await),
    }
}

/// Adds `amount` to an account, refusing an overflow.
async fn credit(c: &mut AnyConnection, account: Account, amount: Credits) -> StoreResult<i64> {
    let (col, key) = account_key(account);
    let sql = format!(
        "UPDATE accounts SET balance = balance + $1 WHERE {col} = $2 \
         AND balance <= {I64_MAX} - $1 RETURNING id"
    );
    let row = sqlx::query(&sql)
        .bind(amount.micros())
        .bind(key)
        .fetch_optional(&mut *c)
        .await?;
    match row {
        Some(r) => Ok(r.try_get("id")?),
        None => match read_balance(c, account).await? {
            None => Err(LedgerError::UnknownAccount(account).into()),
            Some(_) => Err(LedgerError::Overflow.into()),
        },
    }
}

/// Explains why a conditional debit or hold did not apply.
async fn refusal(c: &mut AnyConnection, account: Account, needed: Credits) -> StoreError {
    match read_balance(c, account).await {
        Ok(None) => LedgerError::UnknownAccount(account).into(),
        // Mint has no funds to lack: only an overflow stops it.
        Ok(Some(_)) if account == Account::Mint => LedgerError::Overflow.into(),
        Ok(Some(b)) => {
            let available = if account.is_agent() {
                b.available
            } else {
                b.balance
            };
            LedgerError::InsufficientFunds { available, needed }.into()
        }
        Err(e) => e,
    }
}

async fn read_balance(c: &mut AnyConnection, account: Account) -> StoreResult<Option<Balance>> {
    let (col, key) = account_key(account);
    let sql = format!("SELECT balance, held FROM accounts WHERE {col} = $1");
    let row = sqlx::query(&sql).bind(key).fetch_optional(&mut *c).await?;
    row.map(|r| {
        let balance: i64 = r.try_get("balance")?;
        let held: i64 = r.try_get("held")?;
        Ok(Balance {
            balance: Credits::from_micros(balance),
            held: Credits::from_micros(held),
            available: Credits::from_micros(balance - held),
        })
    })
    .transpose()
}

/// Moves `amount` between two accounts in global lock order and returns their ids.
async fn apply_move(
    c: &mut AnyConnection,
    from: Account,
    to: Account,
    amount: Credits,
) -> StoreResult<(i64, i64)> {
    if !amount.is_positive() {
        return Err(LedgerError::NotPositive.into());
    }
    if from == to {
        return Err(LedgerError::SelfTransfer.into());
    }
    if from < to {
        let d = debit(c, from, amount).await?;
        let k = credit(c, to, amount).await?;
        Ok((d, k))
    } else {
        let k = match credit(c, to, amount).await {
            // Reported as what it is: an amount the payer cannot afford.
            Err(StoreError::Rejected(Rejection::Ledger(LedgerError::Overflow))) => {
                return Err(refusal(c, from, amount).await)
            }
            other => other?,
        };
        let d = debit(c, from, amount).await?;
        Ok((d, k))
    }
}

/// Records a transfer whose balance changes were just applied and returns it as
/// stored, without reading it back.
async fn insert_transfer(
    c: &mut AnyConnection,
    (debit, credit): (Account, Account),
    (debit_id, credit_id): (i64, i64),
    amount: Credits,
    kind: TransferKind,
    hold: Option<HoldId>,
    refs: &Refs,
) -> StoreResult<TransferRecord> {
    let created_at = now_micros();
    let row = sqlx::query(
        "INSERT INTO transfers (debit_account, credit_account, amount, kind, memo, hold_id, \
         bid_id, execution_id, prompt_id, idempotency_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(debit_id)
    .bind(credit_id)
    .bind(amount.micros())
    .bind(kind.as_str())
    .bind(refs.memo.as_str())
    .bind(hold.map(|h| h.0))
    .bind(refs.bid.map(|b| b.0))
    .bind(refs.execution.map(|e| e.0))
    .bind(refs.prompt.map(|p| p.0))
    .bind(refs.idempotency_key.as_deref())
    .bind(created_at)
    .fetch_one(&mut *c)
    .await?;
    Ok(TransferRecord {
        id: row.try_get("id")?,
        debit: debit.to_string(),
        credit: credit.to_string(),
        amount,
        kind: kind.as_str().to_string(),
        memo: refs.memo.clone(),
        bid_id: refs.bid.map(|b| b.0),
        execution_id: refs.execution.map(|e| e.0),
        prompt_id: refs.prompt.map(|p| p.0),
        created_at,
    })
}

/// Moves credits and records the transfer, in the caller's transaction.
pub async fn move_credits(
    c: &mut AnyConnection,
    from: Account,
    to: Account,
    amount: Credits,
    kind: TransferKind,
    refs: &Refs,
) -> StoreResult<TransferRecord> {
    let ids = apply_move(c, from, to, amount).await?;
    insert_transfer(c, (from, to), ids, amount, kind, None, refs).await
}

/// Reserves `amount` of an agent's available credits.
pub async fn place_hold(
    c: &mut AnyConnection,
    agent: AgentId,
    amount: Credits,
    kind: TransferKind,
) -> StoreResult<HoldId> {
    if !amount.is_positive() {
        return Err(LedgerError::NotPositive.into());
    }
    let account = Account::Agent(agent);
    let row = sqlx::query(
        "UPDATE accounts SET held = held + $1 WHERE agent_id = $2 AND balance - held >= $1 RETURNING id",
    )
    .bind(amount.micros())
    .bind(agent.0)
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else {
        return Err(refusal(c, account, amount).await);
    };
    let account_id: i64 = row.try_get("id")?;
    let row = sqlx::query(
        "INSERT INTO holds (account_id, amount, kind, status, created_at) \
         VALUES ($1, $2, $3, 'pending', $4) RETURNING id",
    )
    .bind(account_id)
    .bind(amount.micros())
    .bind(kind.as_str())
    .bind(now_micros())
    .fetch_one(&mut *c)
    .await?;
    Ok(HoldId(row.try_get("id")?))
}

/// A pending hold, read for settlement.
struct PendingHold {
    account: Account,
    account_id: i64,
    amount: Credits,
    kind: TransferKind,
}

/// Marks a pending hold `to_status`, exactly once; a second settlement is refused.
async fn settle(
    c: &mut AnyConnection,
    id: HoldId,
    to_status: HoldStatus,
) -> StoreResult<PendingHold> {
    let row = sqlx::query(
        "UPDATE holds SET status = $1, settled_at = $2 WHERE id = $3 AND status = 'pending' \
         RETURNING account_id, amount, kind",
    )
    .bind(to_status.as_str())
    .bind(now_micros())
    .bind(id.0)
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else {
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM holds WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *c)
            .await?;
        return Err(match status.as_deref().and_then(HoldStatus::parse) {
            Some(status) => LedgerError::HoldSettled { id, status }.into(),
            None => LedgerError::UnknownHold(id).into(),
        });
    };
    let account_id: i64 = row.try_get("account_id")?;
    let kind: String = row.try_get("kind")?;
    let acct = sqlx::query("SELECT kind, agent_id FROM accounts WHERE id = $1")
        .bind(account_id)
        .fetch_one(&mut *c)
        .await?;
    let account = account_from(
        &acct.try_get::<String, _>("kind")?,
        acct.try_get("agent_id")?,
    )?;
    Ok(PendingHold {
        account,
        account_id,
        amount: Credits::from_micros(row.try_get("amount")?),
        kind: TransferKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("hold {id} has kind {kind:?}")))?,
    })
}

/// Releases a settled hold's amount from its account's `held`, and on a post also
/// debits it: one statement that cannot fail the available check, because the
/// amount was reserved.
async fn release_held(
    c: &mut AnyConnection,
    hold: &PendingHold,
    id: HoldId,
    debit: bool,
) -> StoreResult<()> {
    let sql = if debit {
        "UPDATE accounts SET held = held - $1, balance = balance - $1 \
         WHERE id = $2 AND held >= $1 AND balance >= $1"
    } else {
        "UPDATE accounts SET held = held - $1 WHERE id = $2 AND held >= $1"
    };
    let r = sqlx::query(sql)
        .bind(hold.amount.micros())
        .bind(hold.account_id)
        .execute(&mut *c)
        .await?;
    if r.rows_affected() != 1 {
        return Err(StoreError::Corrupt(format!(
            "hold {id} exceeds its account's held amount"
        )));
    }
    Ok(())
}

/// Posts a pending hold: its amount leaves the agent for `to`, recorded as a
/// transfer of the hold's kind that references the hold.
pub async fn post_hold(
    c: &mut AnyConnection,
    id: HoldId,
    to: Account,
    refs: &Refs,
) -> StoreResult<TransferId> {
    let hold = settle(c, id, HoldStatus::Posted).await?;
    if to == hold.account {
        return Err(LedgerError::SelfTransfer.into());
    }
    let ids = if hold.account < to {
        release_held(c, &hold, id, true).await?;
        (hold.account_id, credit(c, to, hold.amount).await?)
    } else {
        let k = credit(c, to, hold.amount).await?;
        release_held(c, &hold, id, true).await?;
        (hold.account_id, k)
    };
    let record = insert_transfer(
        c,
        (hold.account, to),
        ids,
        hold.amount,
        hold.kind,
        Some(id),
        refs,
    )
    .await?;
    Ok(TransferId(record.id))
}

/// Voids a pending hold: its amount becomes available again.
pub async fn void_hold(c: &mut AnyConnection, id: HoldId) -> StoreResult<Credits> {
    let hold = settle(c, id, HoldStatus::Voided).await?;
    release_held(c, &hold, id, false).await?;
    Ok(hold.amount)
}

/// Raises a pending hold to `new_amount`, checking the increase against available.
pub async fn raise_hold(c: &mut AnyConnection, id: HoldId, new_amount: Credits) -> StoreResult<()> {
    let row = sqlx::query(
        "SELECT h.amount, h.status, a.agent_id FROM holds h JOIN accounts a ON a.id = h.account_id \
         WHERE h.id = $1",
    )
    .bind(id.0)
    .fetch_optional(&mut *c)
    .await?
    .ok_or(LedgerError::UnknownHold(id))?;
    let status: String = row.try_get("status")?;
    if status != "pending" {
        let status = HoldStatus::parse(&status).unwrap_or(HoldStatus::Voided);
        return Err(LedgerError::HoldSettled { id, status }.into());
    }
    let agent = AgentId(
        row.try_get::<Option<i64>, _>("agent_id")?
            .ok_or_else(|| StoreError::Corrupt(format!("hold {id} on a system account")))?,
    );
    let current = Credits::from_micros(row.try_get("amount")?);
    let extra = new_amount
        .checked_sub(current)
        .ok_or(LedgerError::Overflow)?;
    if !extra.is_positive() {
        return Err(Rejection::NotARaise { current }.into());
    }
    let r = sqlx::query(
        "UPDATE accounts SET held = held + $1 WHERE agent_id = $2 AND balance - held >= $1",
    )
    .bind(extra.micros())
    .bind(agent.0)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() != 1 {
        return Err(refusal(c, Account::Agent(agent), extra).await);
    }
    let r = sqlx::query("UPDATE holds SET amount = $1 WHERE id = $2 AND status = 'pending'")
        .bind(new_amount.micros())
        .bind(id.0)
        .execute(&mut *c)
        .await?;
    if r.rows_affected() != 1 {
        return Err(LedgerError::UnknownHold(id).into());
    }
    Ok(())
}

/// Fails unless the agent exists and is alive.
/// Mints `amount` from `mint` into an alive agent's account as a `grant`, with its
/// `credits_minted` event, inside the caller's transaction. Every grant (operator,
/// genesis, operator-created agent) goes through here.
pub(crate) async fn mint_grant(
    c: &mut AnyConnection,
    agent: AgentId,
    amount: Credits,
    refs: &Refs,
) -> StoreResult<TransferRecord> {
    require_alive(c, agent).await?;
    let record = move_credits(
        c,
        Account::Mint,
        Account::Agent(agent),
        amount,
        TransferKind::Grant,
        refs,
    )
    .await?;
    events::append(
        c,
        NewEvent::new(
            EventType::CreditsMinted,
            "economy",
            Some(agent),
            json!({"transfer_id": record.id, "amount": amount, "kind": "grant", "memo": refs.memo}),
        ),
    )
    .await?;
    Ok(record)
}

pub async fn require_alive(c: &mut AnyConnection, agent: AgentId) -> StoreResult<()> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM agents WHERE id = $1")
        .bind(agent.0)
        .fetch_optional(&mut *c)
        .await?;
    match status.as_deref() {
        None => Err(Rejection::UnknownAgent(agent).into()),
        Some("alive") => Ok(()),
        Some(_) => Err(Rejection::AgentDead(agent).into()),
    }
}

/// Fails unless every listed agent exists and is alive, in one query.
pub async fn require_alive_all(c: &mut AnyConnection, agents: &[AgentId]) -> StoreResult<()> {
    let placeholders: Vec<String> = (1..=agents.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, status FROM agents WHERE id IN ({})",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for a in agents {
        q = q.bind(a.0);
    }
    let rows = q.fetch_all(&mut *c).await?;
    for a in agents {
        let status = rows
            .iter()
            .find(|r| r.try_get::<i64, _>("id").ok() == Some(a.0))
            .map(|r| r.try_get::<String, _>("status"))
            .transpose()?;
        match status.as_deref() {
            None => return Err(Rejection::UnknownAgent(*a).into()),
            Some("alive") => {}
            Some(_) => return Err(Rejection::AgentDead(*a).into()),
        }
    }
    Ok(())
}

const TRANSFER_COLUMNS: &str = "t.id, t.amount, t.kind, t.memo, t.bid_id, t.execution_id, \
     t.prompt_id, t.created_at, da.kind AS debit_kind, da.agent_id AS debit_agent, \
     ca.kind AS credit_kind, ca.agent_id AS credit_agent";
const TRANSFER_JOINS: &str = "FROM transfers t JOIN accounts da ON da.id = t.debit_account \
     JOIN accounts ca ON ca.id = t.credit_account";

fn transfer_from(r: &sqlx::any::AnyRow) -> StoreResult<TransferRecord> {
    let debit = account_from(
        &r.try_get::<String, _>("debit_kind")?,
        r.try_get("debit_agent")?,
    )?;
    let credit = account_from(
        &r.try_get::<String, _>("credit_kind")?,
        r.try_get("credit_agent")?,
    )?;
    Ok(TransferRecord {
        id: r.try_get("id")?,
        debit: debit.to_string(),
        credit: credit.to_string(),
        amount: Credits::from_micros(r.try_get("amount")?),
        kind: r.try_get("kind")?,
        memo: r.try_get("memo")?,
        bid_id: r.try_get("bid_id")?,
        execution_id: r.try_get("execution_id")?,
        prompt_id: r.try_get("prompt_id")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Mints a grant from the operator into an agent's account.
    pub async fn grant(
        &self,
        agent: AgentId,
        amount: Credits,
        memo: &str,
    ) -> StoreResult<TransferRecord> {
        let req = super::GrantRequest {
            agent,
            amount,
            memo: memo.to_string(),
            idempotency_key: None,
        };
        Ok(self.grant_once(req).await?.0)
    }

    /// Pays another agent. Returns the transfer and whether it is a replay of an
    /// earlier request with the same idempotency key (which moved nothing).
    pub async fn transfer(&self, req: TransferRequest) -> StoreResult<(TransferRecord, bool)> {
        self.write_tx(move |c| {
            let req = req.clone();
            Box::pin(async move {
                if let Some(key) = &req.idempotency_key {
                    let sql = format!(
                        "SELECT {TRANSFER_COLUMNS} {TRANSFER_JOINS} \
                         WHERE da.agent_id = $1 AND t.idempotency_key = $2"
                    );
                    let row = sqlx::query(&sql)
                        .bind(req.from.0)
                        .bind(key.as_str())
                        .fetch_optional(&mut *c)
                        .await?;
                    if let Some(row) = row {
                        let first = transfer_from(&row)?;
                        let same = first.credit == Account::Agent(req.to).to_string()
                            && first.amount == req.amount
                            && first.kind == TransferKind::Transfer.as_str();
                        if !same {
                            return Err(Rejection::IdempotencyConflict { key: key.clone() }.into());
                        }
                        return Ok((first, true));
                    }
                }
                if !req.amount.is_positive() {
                    return Err(LedgerError::NotPositive.into());
                }
                if req.from == req.to {
                    return Err(LedgerError::SelfTransfer.into());
                }
                require_alive_all(c, &[req.from, req.to]).await?;
                let refs = Refs {
                    memo: req.memo.clone(),
                    idempotency_key: req.idempotency_key.clone(),
                    ..Refs::default()
                };
                let record = move_credits(
                    c,
                    Account::Agent(req.from),
                    Account::Agent(req.to),
                    req.amount,
                    TransferKind::Transfer,
                    &refs,
                )
                .await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::CreditsTransferred,
                        "economy",
                        Some(req.from),
                        json!({"transfer_id": record.id, "to": req.to.0, "amount": req.amount}),
                    ),
                )
                .await?;
                Ok((record, false))
            })
        })
        .await
    }

    /// An agent's balance, held and available credits.
    pub async fn balance(&self, agent: AgentId) -> StoreResult<Balance> {
        let mut c = self.reader().acquire().await?;
        read_balance(&mut c, Account::Agent(agent))
            .await?
            .ok_or_else(|| Rejection::UnknownAgent(agent).into())
    }

    /// The balance of any account (system accounts included).
    pub async fn account_balance(&self, account: Account) -> StoreResult<Option<Balance>> {
        let mut c = self.reader().acquire().await?;
        read_balance(&mut c, account).await
    }

    /// The transfers touching an agent's account, newest first, one page. The filter
    /// names the account on each side (not the joined agent ids), so both backends
    /// read the two transfer indexes instead of scanning every transfer.
    pub async fn history(&self, agent: AgentId, page: Newest) -> StoreResult<Vec<TransferRecord>> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} {TRANSFER_JOINS} \
             WHERE (t.debit_account = (SELECT id FROM accounts WHERE agent_id = $1) \
                OR t.credit_account = (SELECT id FROM accounts WHERE agent_id = $1)) AND t.id < $2 \
             ORDER BY t.id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.0)
            .bind(page.below())
            .bind(page.limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(transfer_from).collect()
    }

    /// Reserves credits of an agent (a lower-level ledger operation; bids and
    /// prompts place their holds themselves).
    pub async fn place_hold(
        &self,
        agent: AgentId,
        amount: Credits,
        kind: TransferKind,
    ) -> StoreResult<HoldId> {
        self.write_tx(move |c| Box::pin(place_hold(c, agent, amount, kind)))
            .await
    }

    /// Posts a hold to `to` (lower-level ledger operation).
    pub async fn post_hold(&self, hold: HoldId, to: Account) -> StoreResult<TransferId> {
        self.write_tx(move |c| {
            Box::pin(async move { post_hold(c, hold, to, &Refs::default()).await })
        })
        .await
    }

    /// Voids a hold (lower-level ledger operation).
    pub async fn void_hold(&self, hold: HoldId) -> StoreResult<Credits> {
        self.write_tx(move |c| Box::pin(void_hold(c, hold))).await
    }

    /// Every transfer with an id above `after`, oldest first (the operator's view).
    pub async fn transactions(&self, after: i64, limit: i64) -> StoreResult<Vec<TransferRecord>> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} {TRANSFER_JOINS} WHERE t.id > $1 ORDER BY t.id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(transfer_from).collect()
    }
}
