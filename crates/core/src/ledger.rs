//! The EconomicEngine's rules (SPEC §4) as an in-memory double-entry ledger.
//!
//! This is the reference model of the economy: the store implements the same rules
//! in SQL, and the property tests drive both with random operation sequences and
//! compare. Every operation either applies completely or returns an error and
//! changes nothing.

use crate::audit::{self, AccountSnapshot, AuditInput, HoldSnapshot, Violation};
use crate::credits::Credits;
use crate::enums::string_enum;
use crate::ids::{AgentId, HoldId, TransferId};
use std::collections::BTreeMap;
use std::fmt;

/// A ledger account: one per agent, plus the two system accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// Source of rewards and grants; its balance is minus everything ever minted.
    Mint,
    /// Sink of payments and fees; its balance is everything ever burned.
    Burn,
    Agent(AgentId),
}

impl Account {
    pub fn is_agent(self) -> bool {
        matches!(self, Account::Agent(_))
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Mint => f.write_str("mint"),
            Account::Burn => f.write_str("burn"),
            Account::Agent(a) => write!(f, "agent:{a}"),
        }
    }
}

string_enum! {
    /// Why money moved (SPEC §4).
    pub enum TransferKind {
        Reward => "reward",
        Grant => "grant",
        ResourcePayment => "resource_payment",
        Transfer => "transfer",
        SpawnFee => "spawn_fee",
        SpawnEndowment => "spawn_endowment",
        MessageFee => "message_fee",
        AttentionBid => "attention_bid",
        Refund => "refund",
    }
}

string_enum! {
    /// The life of a hold: pending until posted or voided, exactly once.
    pub enum HoldStatus {
        Pending => "pending",
        Posted => "posted",
        Voided => "voided",
    }
}

/// Why a ledger operation was refused. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient credits: {needed} needed, {available} available")]
    InsufficientFunds { available: Credits, needed: Credits },
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("an account cannot transfer to itself")]
    SelfTransfer,
    #[error("unknown account {0}")]
    UnknownAccount(Account),
    #[error("{0} is not an agent account")]
    NotAnAgent(Account),
    #[error("unknown hold {0}")]
    UnknownHold(HoldId),
    #[error("hold {id} is already {status}")]
    HoldSettled { id: HoldId, status: HoldStatus },
    #[error("amount overflows the ledger")]
    Overflow,
}

/// A recorded transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: TransferId,
    pub debit: Account,
    pub credit: Account,
    pub amount: Credits,
    pub kind: TransferKind,
    pub hold: Option<HoldId>,
}

/// A hold: credits of an agent reserved for a later post or void.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: HoldId,
    pub account: Account,
    pub amount: Credits,
    /// The kind of the transfer a post will record.
    pub kind: TransferKind,
    pub status: HoldStatus,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Balance {
    balance: i64,
    held: i64,
}

/// The in-memory ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    accounts: BTreeMap<Account, Balance>,
    holds: BTreeMap<HoldId, Hold>,
    transfers: Vec<Transfer>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

impl Ledger {
    /// A ledger with the two system accounts and no agents.
    pub fn new() -> Ledger {
        let mut accounts = BTreeMap::new();
        accounts.insert(Account::Mint, Balance::default());
        accounts.insert(Account::Burn, Balance::default());
        Ledger {
            accounts,
            holds: BTreeMap::new(),
            transfers: Vec::new(),
        }
    }

    /// Opens an agent's account with a zero balance (idempotent).
    pub fn open(&mut self, agent: AgentId) {
        self.accounts.entry(Account::Agent(agent)).or_default();
    }

    pub fn balance(&self, account: Account) -> Option<Credits> {
        self.accounts
            .get(&account)
            .map(|b| Credits::from_micros(b.balance))
    }

    pub fn held(&self, account: Account) -> Option<Credits> {
        self.accounts
            .get(&account)
            .map(|b| Credits::from_micros(b.held))
    }

    /// `balance − holds`: what new commitments are checked against.
    pub fn available(&self, account: Account) -> Option<Credits> {
        self.accounts
            .get(&account)
            .map(|b| Credits::from_micros(b.balance - b.held))
    }

    pub fn hold(&self, id: HoldId) -> Option<&Hold> {
        self.holds.get(&id)
    }

    pub fn transfers(&self) -> &[Transfer] {
        &self.transfers
    }

    pub fn agents(&self) -> impl Iterator<Item = AgentId> + '_ {
        self.accounts.keys().filter_map(|a| match a {
            Account::Agent(id) => Some(*id),
            _ => None,
        })
    }

    /// Moves `amount` from `debit` to `credit`. Agent debits are checked against
    /// `available`; `mint` may go negative (that is what minting is) and `burn` may
    /// pay refunds of what it received.
    pub fn move_credits(
        &mut self,
        debit: Account,
        credit: Account,
        amount: Credits,
        kind: TransferKind,
    ) -> Result<TransferId, LedgerError> {
        self.check_move(debit, credit, amount)?;
        if debit.is_agent() {
            let available = self.available(debit).unwrap_or(Credits::ZERO);
            if available < amount {
                return Err(LedgerError::InsufficientFunds {
                    available,
                    needed: amount,
                });
            }
        }
        if debit == Account::Burn {
            let burned = self.balance(Account::Burn).unwrap_or(Credits::ZERO);
            if burned < amount {
                return Err(LedgerError::InsufficientFunds {
                    available: burned,
                    needed: amount,
                });
            }
        }
        self.check_overflow(debit, credit, amount)?;
        Ok(self.apply(debit, credit, amount, kind, None))
    }

    /// Mints a reward or grant into an agent's account.
    pub fn mint(
        &mut self,
        to: AgentId,
        amount: Credits,
        kind: TransferKind,
    ) -> Result<TransferId, LedgerError> {
        self.move_credits(Account::Mint, Account::Agent(to), amount, kind)
    }

    /// Reserves `amount` of an agent's available credits.
    pub fn place_hold(
        &mut self,
        agent: AgentId,
        amount: Credits,
        kind: TransferKind,
    ) -> Result<HoldId, LedgerError> {
        let account = Account::Agent(agent);
        if !amount.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        let available = self
            .available(account)
            .ok_or(LedgerError::UnknownAccount(account))?;
        if available < amount {
            return Err(LedgerError::InsufficientFunds {
                available,
                needed: amount,
            });
        }
        let id = HoldId(self.holds.len() as i64 + 1);
        if let Some(b) = self.accounts.get_mut(&account) {
            b.held += amount.micros();
        }
        self.holds.insert(
            id,
            Hold {
                id,
                account,
                amount,
                kind,
                status: HoldStatus::Pending,
            },
        );
        Ok(id)
    }

    /// Raises a pending hold to `new_amount` (a raised bid), checking the increase
    /// against available credits.
    pub fn raise_hold(&mut self, id: HoldId, new_amount: Credits) -> Result<(), LedgerError> {
        let hold = self.pending_hold(id)?.clone();
        let extra = new_amount
            .checked_sub(hold.amount)
            .ok_or(LedgerError::Overflow)?;
        if !extra.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        let available = self.available(hold.account).unwrap_or(Credits::ZERO);
        if available < extra {
            return Err(LedgerError::InsufficientFunds {
                available,
                needed: extra,
            });
        }
        if let Some(b) = self.accounts.get_mut(&hold.account) {
            b.held += extra.micros();
        }
        if let Some(h) = self.holds.get_mut(&id) {
            h.amount = new_amount;
        }
        Ok(())
    }

    /// Posts a pending hold: its amount moves to `to` as a transfer of the hold's kind.
    pub fn post_hold(&mut self, id: HoldId, to: Account) -> Result<TransferId, LedgerError> {
        let hold = self.pending_hold(id)?.clone();
        if to == hold.account {
            return Err(LedgerError::SelfTransfer);
        }
        if !self.accounts.contains_key(&to) {
            return Err(LedgerError::UnknownAccount(to));
        }
        if let Some(b) = self.accounts.get_mut(&hold.account) {
            b.held -= hold.amount.micros();
        }
        if let Some(h) = self.holds.get_mut(&id) {
            h.status = HoldStatus::Posted;
        }
        Ok(self.apply(hold.account, to, hold.amount, hold.kind, Some(id)))
    }

    /// Voids a pending hold: its amount becomes available again.
    pub fn void_hold(&mut self, id: HoldId) -> Result<(), LedgerError> {
        let hold = self.pending_hold(id)?.clone();
        if let Some(b) = self.accounts.get_mut(&hold.account) {
            b.held -= hold.amount.micros();
        }
        if let Some(h) = self.holds.get_mut(&id) {
            h.status = HoldStatus::Voided;
        }
        Ok(())
    }

    /// Checks every invariant of SPEC §4 against this ledger.
    pub fn audit(&self) -> Vec<Violation> {
        let mut posted: BTreeMap<Account, i128> = BTreeMap::new();
        let mut settling: BTreeMap<HoldId, i64> = BTreeMap::new();
        for t in &self.transfers {
            *posted.entry(t.debit).or_default() -= i128::from(t.amount.micros());
            *posted.entry(t.credit).or_default() += i128::from(t.amount.micros());
            if let Some(h) = t.hold {
                *settling.entry(h).or_default() += 1;
            }
        }
        let mut pending: BTreeMap<Account, i128> = BTreeMap::new();
        for h in self
            .holds
            .values()
            .filter(|h| h.status == HoldStatus::Pending)
        {
            *pending.entry(h.account).or_default() += i128::from(h.amount.micros());
        }
        let input = AuditInput {
            accounts: self
                .accounts
                .iter()
                .map(|(a, b)| AccountSnapshot {
                    account: *a,
                    balance: b.balance,
                    held: b.held,
                    postings: posted.get(a).copied().unwrap_or(0),
                    pending_holds: pending.get(a).copied().unwrap_or(0),
                })
                .collect(),
            holds: self
                .holds
                .values()
                .map(|h| HoldSnapshot {
                    id: h.id,
                    status: h.status,
                    settling_transfers: settling.get(&h.id).copied().unwrap_or(0),
                })
                .collect(),
        };
        audit::check(&input)
    }

    fn pending_hold(&self, id: HoldId) -> Result<&Hold, LedgerError> {
        let hold = self.holds.get(&id).ok_or(LedgerError::UnknownHold(id))?;
        if hold.status != HoldStatus::Pending {
            return Err(LedgerError::HoldSettled {
                id,
                status: hold.status,
            });
        }
        Ok(hold)
    }

    fn check_move(
        &self,
        debit: Account,
        credit: Account,
        amount: Credits,
    ) -> Result<(), LedgerError> {
        if !amount.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        if debit == credit {
            return Err(LedgerError::SelfTransfer);
        }
        for a in [debit, credit] {
            if !self.accounts.contains_key(&a) {
                return Err(LedgerError::UnknownAccount(a));
            }
        }
        Ok(())
    }

    /// Refuses a move whose result would not fit in an `i64`, checked after the
    /// funds so that an unaffordable amount is reported as such.
    fn check_overflow(
        &self,
        debit: Account,
        credit: Account,
        amount: Credits,
    ) -> Result<(), LedgerError> {
        let credit_balance = self.accounts.get(&credit).map(|b| b.balance).unwrap_or(0);
        let debit_balance = self.accounts.get(&debit).map(|b| b.balance).unwrap_or(0);
        if credit_balance.checked_add(amount.micros()).is_none()
            || debit_balance.checked_sub(amount.micros()).is_none()
        {
            return Err(LedgerError::Overflow);
        }
        Ok(())
    }

    fn apply(
        &mut self,
        debit: Account,
        credit: Account,
        amount: Credits,
        kind: TransferKind,
        hold: Option<HoldId>,
    ) -> TransferId {
        if let Some(b) = self.accounts.get_mut(&debit) {
            b.balance -= amount.micros();
        }
        if let Some(b) = self.accounts.get_mut(&credit) {
            b.balance += amount.micros();
        }
        let id = TransferId(self.transfers.len() as i64 + 1);
        self.transfers.push(Transfer {
            id,
            debit,
            credit,
            amount,
            kind,
            hold,
        });
        id
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cr(c: i64) -> Credits {
        Credits::from_credits(c).unwrap()
    }

    #[test]
    fn refusals_change_nothing() {
        let mut l = Ledger::new();
        let a = AgentId(1);
        let b = AgentId(2);
        l.open(a);
        l.open(b);
        l.mint(a, cr(10), TransferKind::Grant).unwrap();
        let before = l.clone();
        let agent = Account::Agent;
        assert_eq!(
            l.move_credits(agent(a), agent(b), cr(11), TransferKind::Transfer),
            Err(LedgerError::InsufficientFunds {
                available: cr(10),
                needed: cr(11)
            })
        );
        assert_eq!(
            l.move_credits(agent(a), agent(a), cr(1), TransferKind::Transfer),
            Err(LedgerError::SelfTransfer)
        );
        assert_eq!(
            l.move_credits(agent(a), agent(b), Credits::ZERO, TransferKind::Transfer),
            Err(LedgerError::NotPositive)
        );
        assert_eq!(
            l.move_credits(agent(a), agent(AgentId(9)), cr(1), TransferKind::Transfer),
            Err(LedgerError::UnknownAccount(agent(AgentId(9))))
        );
        assert_eq!(l.transfers(), before.transfers());
        assert_eq!(l.balance(agent(a)), Some(cr(10)));
        assert!(l.audit().is_empty());
    }

    #[test]
    fn holds_reserve_and_settle_exactly_once() {
        let mut l = Ledger::new();
        let a = AgentId(1);
        l.open(a);
        l.mint(a, cr(10), TransferKind::Grant).unwrap();
        let h = l
            .place_hold(a, cr(7), TransferKind::ResourcePayment)
            .unwrap();
        assert_eq!(l.available(Account::Agent(a)), Some(cr(3)));
        assert!(matches!(
            l.place_hold(a, cr(4), TransferKind::ResourcePayment),
            Err(LedgerError::InsufficientFunds { .. })
        ));
        l.post_hold(h, Account::Burn).unwrap();
        assert_eq!(
            l.void_hold(h),
            Err(LedgerError::HoldSettled {
                id: h,
                status: HoldStatus::Posted
            })
        );
        assert_eq!(l.balance(Account::Agent(a)), Some(cr(3)));
        assert_eq!(l.balance(Account::Burn), Some(cr(7)));
        assert!(l.audit().is_empty());
    }
}
