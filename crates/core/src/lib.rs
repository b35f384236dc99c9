//! The agora economy as pure, deterministic logic (SPEC §1, §3–§5, §7).
//!
//! **Invariant:** this crate knows nothing about tokio, SQL, HTTP or Docker. Every
//! rule here is a function of its inputs, so it can be unit- and property-tested
//! exhaustively and shared by the store, the orchestrator and the API.

/// AttentionManager rules: scores, rewards, the prompt queue (§7).
pub mod attention;
/// The ledger invariants of §4, written once for the model and the store.
pub mod audit;
/// Resources, bundles, prices and reserve prices (§3, §5).
pub mod bundle;
/// The AllocationScheduler's pure clearing function (§5).
pub mod clearing;
/// Integer micro-credits with exact decimal parsing and printing (§3).
pub mod credits;
/// `string_enum!`: statuses and kinds spelled one way everywhere.
mod enums;
/// Typed identifiers.
pub mod ids;
/// The EconomicEngine's rules as an in-memory double-entry ledger (§4).
pub mod ledger;
/// Agent lifecycle, death rules and shared status enums (§1, §8).
pub mod lifecycle;
/// Price updates from utilisation after each cycle (§5).
pub mod pricing;

pub use attention::{PromptStatus, QueuedPrompt, RewardRates, ScoreError, Scores};
pub use audit::Violation;
pub use bundle::{
    Bundle, BundleError, BundleLimits, BundleSpec, Price, Prices, Resource, ResourceVec,
};
pub use clearing::{Clearing, ClearingInput, NotAllocated, PendingBid};
pub use credits::{Credits, CreditsError};
pub use ids::{AgentId, BidId, Cycle, ExecutionId, HoldId, PromptId, TransferId};
pub use ledger::{Account, HoldStatus, Ledger, LedgerError, TransferKind};
pub use lifecycle::{AgentStatus, BidStatus, DeathReason, ExecutionStatus};
pub use pricing::{PriceBounds, PricePolicy};
