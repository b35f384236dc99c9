//! Store errors: a request the economy refuses (a 4xx at the API) is a
//! [`Rejection`]; anything else is a fault of the database or of the process.

use agora_core::{AgentId, BidId, Credits, ExecutionId, LedgerError, PromptId};

/// Why the economy refused an operation. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    #[error("agent {0} is dead")]
    AgentDead(AgentId),
    #[error("unknown bid {0}")]
    UnknownBid(BidId),
    #[error("bid {id} is {status}, not pending")]
    BidNotPending { id: BidId, status: String },
    #[error("bid {0} was not placed by this agent")]
    NotYourBid(BidId),
    #[error("bid of {offered} is below the reserve price {reserve}")]
    BelowReserve { offered: Credits, reserve: Credits },
    #[error("a raise must be above the current amount {current}")]
    NotARaise { current: Credits },
    #[error("at most {max} pending bids per agent")]
    TooManyBids { max: i64 },
    #[error("unknown execution {0}")]
    UnknownExecution(ExecutionId),
    #[error("execution {0} has already submitted a prompt")]
    PromptAlreadySubmitted(ExecutionId),
    #[error("unknown prompt {0}")]
    UnknownPrompt(PromptId),
    #[error("prompt {id} is {status}, not active")]
    PromptNotActive { id: PromptId, status: String },
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyConflict { key: String },
    #[error("an agent cannot message itself")]
    MessageToSelf,
}

impl Rejection {
    /// A stable snake_case code for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Ledger(LedgerError::InsufficientFunds { .. }) => "insufficient_funds",
            Rejection::Ledger(LedgerError::NotPositive) => "amount_not_positive",
            Rejection::Ledger(LedgerError::SelfTransfer) => "self_transfer",
            Rejection::Ledger(LedgerError::UnknownAccount(_)) => "unknown_account",
            Rejection::Ledger(LedgerError::NotAnAgent(_)) => "not_an_agent",
            Rejection::Ledger(LedgerError::UnknownHold(_)) => "unknown_hold",
            Rejection::Ledger(LedgerError::HoldSettled { .. }) => "hold_settled",
            Rejection::Ledger(LedgerError::Overflow) => "overflow",
            Rejection::UnknownAgent(_) => "unknown_agent",
            Rejection::AgentDead(_) => "agent_dead",
            Rejection::UnknownBid(_) => "unknown_bid",
            Rejection::BidNotPending { .. } => "bid_not_pending",
            Rejection::NotYourBid(_) => "not_your_bid",
            Rejection::BelowReserve { .. } => "below_reserve",
            Rejection::NotARaise { .. } => "not_a_raise",
            Rejection::TooManyBids { .. } => "too_many_bids",
            Rejection::UnknownExecution(_) => "unknown_execution",
            Rejection::PromptAlreadySubmitted(_) => "prompt_already_submitted",
            Rejection::UnknownPrompt(_) => "unknown_prompt",
            Rejection::PromptNotActive { .. } => "prompt_not_active",
            Rejection::IdempotencyConflict { .. } => "idempotency_conflict",
            Rejection::MessageToSelf => "message_to_self",
        }
    }
}

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database holds something the code cannot have written.
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

impl From<LedgerError> for StoreError {
    fn from(e: LedgerError) -> Self {
        StoreError::Rejected(Rejection::Ledger(e))
    }
}

impl StoreError {
    /// The refusal, if this is one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            StoreError::Rejected(r) => Some(r),
            _ => None,
        }
    }

    /// True for PostgreSQL serialization failures and deadlocks, and for losing a
    /// race on one of the [`RULE_INDEXES`]: the whole transaction may be retried and
    /// will then see the winner's result.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40001" | "40P01"))
                    || (db.is_unique_violation()
                        && RULE_INDEXES.iter().any(|i| db.message().contains(i)))
                    || db.message().contains("database is locked")
            }
            _ => false,
        }
    }
}

/// Unique indexes that guard a rule against a concurrent twin (named as both
/// backends' messages spell them): the same idempotency key, a second active
/// prompt, a bid allocated twice, a second prompt for one execution. Losing such a
/// race means "retry and see the winner", not a fault.
const RULE_INDEXES: &[&str] = &["idempotency", "one_active", "bid_id", "execution_id"];

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;
