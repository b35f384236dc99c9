//! Typed identifiers: one newtype per entity so an agent id can never be passed
//! where a bid id is expected.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An agent.
    AgentId
);
id_type!(
    /// A bid in the market.
    BidId
);
id_type!(
    /// One execution of one agent.
    ExecutionId
);
id_type!(
    /// A prompt submitted to the human.
    PromptId
);
id_type!(
    /// A ledger hold (pending transfer).
    HoldId
);
id_type!(
    /// A ledger transfer.
    TransferId
);

/// An allocation cycle number; the first cycle is 1.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Cycle(pub i64);

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
