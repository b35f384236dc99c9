//! The ledger invariants of SPEC §4, checked over a snapshot of balances, postings
//! and holds. The in-memory ledger and `agora audit` over the database both build an
//! [`AuditInput`] and call [`check`], so the rules are written once.

use crate::ids::HoldId;
use crate::ledger::{Account, HoldStatus};
use std::fmt;

/// One account as the store (or the model) holds it, with the sums recomputed from
/// the transfer and hold records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSnapshot {
    pub account: Account,
    /// The stored balance, µcr.
    pub balance: i64,
    /// The stored held amount, µcr.
    pub held: i64,
    /// Σ credits − Σ debits over every transfer touching the account.
    pub postings: i128,
    /// Σ amounts of the account's pending holds.
    pub pending_holds: i128,
}

/// One hold with the number of transfers that settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldSnapshot {
    pub id: HoldId,
    pub status: HoldStatus,
    pub settling_transfers: i64,
}

/// Everything the audit looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditInput {
    pub accounts: Vec<AccountSnapshot>,
    pub holds: Vec<HoldSnapshot>,
}

/// A broken invariant, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The sum of all balances is not 0: credits were created or lost.
    SumNotZero { sum: i128 },
    /// A system account (`mint` or `burn`) is missing.
    MissingSystemAccount { account: Account },
    /// An agent's balance is below 0.
    NegativeBalance { account: Account, balance: i64 },
    /// An agent's available amount (balance − held) is below 0, or held is negative.
    NegativeAvailable {
        account: Account,
        balance: i64,
        held: i64,
    },
    /// A stored balance differs from the sum of its postings.
    BalanceMismatch {
        account: Account,
        balance: i64,
        postings: i128,
    },
    /// A stored held amount differs from the sum of its pending holds.
    HeldMismatch {
        account: Account,
        held: i64,
        pending_holds: i128,
    },
    /// A hold was settled by a number of transfers its status does not allow
    /// (posted: exactly 1; pending or voided: 0).
    HoldSettlement {
        hold: HoldId,
        status: HoldStatus,
        transfers: i64,
    },
    /// minted − burned ≠ Σ agent balances.
    MintBurnMismatch {
        minted: i128,
        burned: i128,
        agents: i128,
    },
}

impl Violation {
    /// A stable snake_case name for scripts and the API.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::SumNotZero { .. } => "sum_not_zero",
            Violation::MissingSystemAccount { .. } => "missing_system_account",
            Violation::NegativeBalance { .. } => "negative_balance",
            Violation::NegativeAvailable { .. } => "negative_available",
            Violation::BalanceMismatch { .. } => "balance_mismatch",
            Violation::HeldMismatch { .. } => "held_mismatch",
            Violation::HoldSettlement { .. } => "hold_settlement",
            Violation::MintBurnMismatch { .. } => "mint_burn_mismatch",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.code())?;
        match self {
            Violation::SumNotZero { sum } => write!(f, "sum of all balances is {sum} µcr, not 0"),
            Violation::MissingSystemAccount { account } => {
                write!(f, "account {account} is missing")
            }
            Violation::NegativeBalance { account, balance } => {
                write!(f, "{account} has balance {balance} µcr < 0")
            }
            Violation::NegativeAvailable {
                account,
                balance,
                held,
            } => {
                write!(
                    f,
                    "{account} has balance {balance} µcr but holds {held} µcr"
                )
            }
            Violation::BalanceMismatch {
                account,
                balance,
                postings,
            } => write!(
                f,
                "{account} has balance {balance} µcr but its postings sum to {postings} µcr"
            ),
            Violation::HeldMismatch {
                account,
                held,
                pending_holds,
            } => write!(
                f,
                "{account} holds {held} µcr but its pending holds sum to {pending_holds} µcr"
            ),
            Violation::HoldSettlement {
                hold,
                status,
                transfers,
            } => write!(
                f,
                "hold {hold} is {status} and was settled by {transfers} transfers"
            ),
            Violation::MintBurnMismatch {
                minted,
                burned,
                agents,
            } => write!(
                f,
                "minted {minted} − burned {burned} ≠ {agents} µcr held by agents"
            ),
        }
    }
}

/// Checks every invariant; an empty result means the ledger is sound.
pub fn check(input: &AuditInput) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut sum: i128 = 0;
    let mut agents: i128 = 0;
    let mut minted: Option<i128> = None;
    let mut burned: Option<i128> = None;
    for a in &input.accounts {
        let balance = i128::from(a.balance);
        sum += balance;
        match a.account {
            Account::Mint => minted = Some(-balance),
            Account::Burn => burned = Some(balance),
            Account::Agent(_) => {
                agents += balance;
                if a.balance < 0 {
                    out.push(Violation::NegativeBalance {
                        account: a.account,
                        balance: a.balance,
                    });
                }
                if a.held < 0 || a.held > a.balance {
                    out.push(Violation::NegativeAvailable {
                        account: a.account,
                        balance: a.balance,
                        held: a.held,
                    });
                }
            }
        }
        if balance != a.postings {
            out.push(Violation::BalanceMismatch {
                account: a.account,
                balance: a.balance,
                postings: a.postings,
            });
        }
        if i128::from(a.held) != a.pending_holds {
            out.push(Violation::HeldMismatch {
                account: a.account,
                held: a.held,
                pending_holds: a.pending_holds,
            });
        }
    }
    if sum != 0 {
        out.push(Violation::SumNotZero { sum });
    }
    for (account, v) in [(Account::Mint, minted), (Account::Burn, burned)] {
        if v.is_none() {
            out.push(Violation::MissingSystemAccount { account });
        }
    }
    if let (Some(minted), Some(burned)) = (minted, burned) {
        if minted - burned != agents {
            out.push(Violation::MintBurnMismatch {
                minted,
                burned,
                agents,
            });
        }
    }
    for h in &input.holds {
        let allowed = match h.status {
            HoldStatus::Posted => 1,
            HoldStatus::Pending | HoldStatus::Voided => 0,
        };
        if h.settling_transfers != allowed {
            out.push(Violation::HoldSettlement {
                hold: h.id,
                status: h.status,
                transfers: h.settling_transfers,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AgentId;

    fn acct(account: Account, balance: i64) -> AccountSnapshot {
        AccountSnapshot {
            account,
            balance,
            held: 0,
            postings: balance.into(),
            pending_holds: 0,
        }
    }

    fn sound() -> AuditInput {
        AuditInput {
            accounts: vec![
                acct(Account::Mint, -100),
                acct(Account::Burn, 30),
                acct(Account::Agent(AgentId(1)), 70),
            ],
            holds: vec![HoldSnapshot {
                id: HoldId(1),
                status: HoldStatus::Posted,
                settling_transfers: 1,
            }],
        }
    }

    #[test]
    fn sound_ledger_passes() {
        assert_eq!(check(&sound()), vec![]);
    }

    #[test]
    fn each_violation_is_named() {
        let mut i = sound();
        i.accounts[2].balance = 71;
        let codes: Vec<_> = check(&i).iter().map(Violation::code).collect();
        assert_eq!(
            codes,
            ["balance_mismatch", "sum_not_zero", "mint_burn_mismatch"]
        );

        let mut i = sound();
        i.accounts[2] = acct(Account::Agent(AgentId(1)), -5);
        i.accounts[1] = acct(Account::Burn, 105);
        let codes: Vec<_> = check(&i).iter().map(Violation::code).collect();
        assert_eq!(codes, ["negative_balance", "negative_available"]);

        let mut i = sound();
        i.accounts[2].held = 10;
        assert_eq!(check(&i)[0].code(), "held_mismatch");

        let mut i = sound();
        i.holds[0].settling_transfers = 2;
        assert_eq!(check(&i)[0].code(), "hold_settlement");
        i.holds[0] = HoldSnapshot {
            id: HoldId(1),
            status: HoldStatus::Voided,
            settling_transfers: 1,
        };
        assert_eq!(check(&i)[0].code(), "hold_settlement");

        let mut i = sound();
        i.accounts.remove(0);
        let codes: Vec<_> = check(&i).iter().map(Violation::code).collect();
        assert_eq!(codes, ["sum_not_zero", "missing_system_account"]);
    }
}
