//! Agent lifecycle and death rules (SPEC §1 law 2, §8 cull), and the status enums
//! that the store, the orchestrator and the API share.
//!
//! Every status is stored and sent as a snake_case string; [`string_enum!`] generates
//! the text, parsing, `Display` and serde from one table so they cannot drift apart.

use crate::ids::Cycle;

use crate::enums::string_enum;

string_enum! {
    /// Whether an agent exists (§3). Death is final.
    pub enum AgentStatus {
        Alive => "alive",
        Dead => "dead",
    }
}

string_enum! {
    /// Why an agent died (§3 `death_reason`).
    pub enum DeathReason {
        /// Law 2: an execution ended and no pending bid would wake the agent.
        NoBid => "no_bid",
        /// §8 cull: alive with no pending bid and nothing scheduled or running, e.g.
        /// because its bids expired between executions.
        Culled => "culled",
    }
}

string_enum! {
    /// Where a bid is in its life (§3, §5). Only `pending` bids take part in clearing.
    pub enum BidStatus {
        Pending => "pending",
        Won => "won",
        Withdrawn => "withdrawn",
        Expired => "expired",
        Rejected => "rejected",
    }
}

string_enum! {
    /// Where an execution is in its life (§3, §6).
    pub enum ExecutionStatus {
        /// Won and recorded, not yet started by the sandbox.
        Scheduled => "scheduled",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        /// Killed at the end of its wall-clock window.
        TimedOut => "timed_out",
        /// Killed for exceeding its memory.
        OomKilled => "oom_killed",
        /// Killed for exceeding its CPU time.
        CpuExceeded => "cpu_exceeded",
        /// Found scheduled or running after a restart (§8 crash safety).
        Lost => "lost",
    }
}

impl ExecutionStatus {
    /// Scheduled or running: the execution holds its memory and keeps its agent alive.
    pub const fn is_active(self) -> bool {
        matches!(self, ExecutionStatus::Scheduled | ExecutionStatus::Running)
    }

    /// Ended, one way or another; an ended execution never changes status again.
    pub const fn is_terminal(self) -> bool {
        !self.is_active()
    }
}

/// Law 2, applied when an execution ends: the agent dies unless some pending bid
/// names it as beneficiary (its own or one another agent placed for it), because
/// nothing else could ever wake it again.
pub fn death_after_execution(has_pending_bid_as_beneficiary: bool) -> Option<DeathReason> {
    if has_pending_bid_as_beneficiary {
        None
    } else {
        Some(DeathReason::NoBid)
    }
}

/// The §8 cull: an alive agent with no pending bid and no scheduled or running
/// execution can never be woken, so it is dead ([`DeathReason::Culled`]).
///
/// Law 2 catches the agent whose execution ends without a bid; the cull catches the
/// one whose bids expired or were withdrawn while it slept.
pub fn should_cull(status: AgentStatus, has_pending_bid: bool, has_active_execution: bool) -> bool {
    status == AgentStatus::Alive && !has_pending_bid && !has_active_execution
}

/// The last cycle in which a bid placed during `placed_in` may still win:
/// `placed_in + ttl_cycles`, saturating. A negative TTL is treated as 0.
pub fn expiry_cycle(placed_in: Cycle, ttl_cycles: i64) -> Cycle {
    Cycle(placed_in.0.saturating_add(ttl_cycles.max(0)))
}

/// A bid is expired once the current cycle is past its expiry cycle; it still takes
/// part in the clearing of the expiry cycle itself.
pub fn bid_is_expired(expiry_cycle: Cycle, current: Cycle) -> bool {
    current > expiry_cycle
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as ValueError, StrDeserializer};
    use serde::de::IntoDeserializer;
    use serde::Deserialize;

    /// Checks that every variant's name parses back to it, through `parse`, serde and
    /// `Display`, and that the names are distinct snake_case.
    fn assert_round_trips<T>(
        all: &[T],
        names: &[&str],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Option<T>,
    ) where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + for<'de> Deserialize<'de>,
    {
        assert_eq!(all.len(), names.len());
        for (&v, &name) in all.iter().zip(names) {
            assert_eq!(as_str(v), name);
            assert_eq!(v.to_string(), name);
            assert_eq!(parse(name), Some(v));
            let de: StrDeserializer<'_, ValueError> = name.into_deserializer();
            assert_eq!(T::deserialize(de).expect("a known name deserialises"), v);
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "names must be distinct");
        let de: StrDeserializer<'_, ValueError> = "nonsense".into_deserializer();
        let err = T::deserialize(de).expect_err("an unknown name is refused");
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn every_status_round_trips_through_its_name() {
        use AgentStatus as A;
        use BidStatus as B;
        use DeathReason as D;
        use ExecutionStatus as E;
        assert_round_trips(&A::ALL, &["alive", "dead"], A::as_str, A::parse);
        assert_round_trips(&D::ALL, &["no_bid", "culled"], D::as_str, D::parse);
        assert_round_trips(
            &B::ALL,
            &["pending", "won", "withdrawn", "expired", "rejected"],
            B::as_str,
            B::parse,
        );
        assert_round_trips(
            &E::ALL,
            &[
                "scheduled",
                "running",
                "succeeded",
                "failed",
                "timed_out",
                "oom_killed",
                "cpu_exceeded",
                "lost",
            ],
            E::as_str,
            E::parse,
        );
        assert_eq!(A::NAMES, ["alive", "dead"]);
    }

    #[test]
    fn parse_is_exact() {
        assert_eq!(ExecutionStatus::parse("TimedOut"), None);
        assert_eq!(ExecutionStatus::parse("timed_out "), None);
        assert_eq!(BidStatus::parse(""), None);
    }

    #[test]
    fn only_scheduled_and_running_executions_are_active() {
        let active: Vec<_> = ExecutionStatus::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(
            active,
            [ExecutionStatus::Scheduled, ExecutionStatus::Running]
        );
        for s in ExecutionStatus::ALL {
            assert_ne!(s.is_active(), s.is_terminal(), "{s}");
        }
    }

    #[test]
    fn an_execution_without_a_following_bid_kills_its_agent() {
        assert_eq!(death_after_execution(false), Some(DeathReason::NoBid));
        assert_eq!(death_after_execution(true), None);
    }

    #[test]
    fn cull_takes_only_alive_agents_that_nothing_can_wake() {
        assert!(should_cull(AgentStatus::Alive, false, false));
        assert!(!should_cull(AgentStatus::Alive, true, false));
        assert!(!should_cull(AgentStatus::Alive, false, true));
        assert!(!should_cull(AgentStatus::Alive, true, true));
        // The dead are not killed twice (death_reason and death_at stay as first set).
        assert!(!should_cull(AgentStatus::Dead, false, false));
    }

    #[test]
    fn a_bid_expires_after_its_expiry_cycle_not_during_it() {
        let expiry = expiry_cycle(Cycle(5), 20);
        assert_eq!(expiry, Cycle(25));
        assert!(!bid_is_expired(expiry, Cycle(24)));
        assert!(!bid_is_expired(expiry, Cycle(25)));
        assert!(bid_is_expired(expiry, Cycle(26)));
    }

    #[test]
    fn expiry_cycle_saturates_and_ignores_negative_ttl() {
        assert_eq!(expiry_cycle(Cycle(i64::MAX - 1), 20), Cycle(i64::MAX));
        assert_eq!(expiry_cycle(Cycle(7), -3), Cycle(7));
        assert_eq!(expiry_cycle(Cycle(7), 0), Cycle(7));
        assert!(!bid_is_expired(
            expiry_cycle(Cycle(i64::MAX), 1),
            Cycle(i64::MAX)
        ));
    }
}
