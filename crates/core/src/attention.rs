//! AttentionManager rules (SPEC §7): validating a human's scores, the reward they
//! mint, which queued prompt the human sees next, and when a prompt expires.

use crate::credits::Credits;
use crate::enums::string_enum;
use crate::ids::PromptId;
use std::cmp::Reverse;

string_enum! {
    /// Where a prompt to the human is in its life (§3).
    pub enum PromptStatus {
        /// Queued behind others; its bid is held in escrow.
        Pending => "pending",
        /// The one prompt the human is being shown now.
        Active => "active",
        Responded => "responded",
        /// Not rated within `prompt_ttl`; its hold was voided.
        Expired => "expired",
    }
}

/// The highest score a human may give on each axis.
pub const MAX_SCORE: u8 = 10;

/// A human's rating of one prompt, each axis a whole number in `0..=10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scores {
    pub interesting: u8,
    pub useful: u8,
    pub understandable: u8,
}

/// Why a rating is refused (§7: outside 0..10, NaN or missing → 400). Each variant
/// names the offending field so the message can be shown to the human as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{0} must be a finite number")]
    NotFinite(&'static str),
    #[error("{0} must be between 0 and 10")]
    OutOfRange(&'static str),
    #[error("{0} must be a whole number")]
    NotWhole(&'static str),
}

impl Scores {
    /// Validates the three scores as a client sent them (JSON numbers are floats).
    ///
    /// Fields are checked in the order interesting, useful, understandable, and the
    /// first bad one is reported.
    pub fn parse(
        interesting: Option<f64>,
        useful: Option<f64>,
        understandable: Option<f64>,
    ) -> Result<Scores, ScoreError> {
        Ok(Scores {
            interesting: parse_score("interesting", interesting)?,
            useful: parse_score("useful", useful)?,
            understandable: parse_score("understandable", understandable)?,
        })
    }

    /// The sum of the three scores, `0..=30`.
    pub fn total(&self) -> u32 {
        u32::from(self.interesting) + u32::from(self.useful) + u32::from(self.understandable)
    }
}

fn parse_score(field: &'static str, value: Option<f64>) -> Result<u8, ScoreError> {
    let v = value.ok_or(ScoreError::Missing(field))?;
    if !v.is_finite() {
        return Err(ScoreError::NotFinite(field));
    }
    if !(0.0..=f64::from(MAX_SCORE)).contains(&v) {
        return Err(ScoreError::OutOfRange(field));
    }
    if v.fract() != 0.0 {
        return Err(ScoreError::NotWhole(field));
    }
    // In range and whole, so the cast is exact (and -0.0 becomes 0).
    Ok(v as u8)
}

/// Credits minted per score point on each axis (config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewardRates {
    pub interesting: Credits,
    pub useful: Credits,
    pub understandable: Credits,
}

impl Default for RewardRates {
    /// 50 credits per point on each axis, as in the original.
    fn default() -> Self {
        let fifty = Credits::from_micros(50 * crate::credits::MICROS_PER_CREDIT);
        RewardRates {
            interesting: fifty,
            useful: fifty,
            understandable: fifty,
        }
    }
}

/// The reward a rating mints to the agent: Σ score × rate, exact, saturating at the
/// bounds of an amount rather than wrapping.
pub fn reward(scores: &Scores, rates: &RewardRates) -> Credits {
    // Three terms of at most 255 × |i64| fit easily in i128, so only the final
    // conversion can overflow.
    let total = i128::from(scores.interesting) * i128::from(rates.interesting.micros())
        + i128::from(scores.useful) * i128::from(rates.useful.micros())
        + i128::from(scores.understandable) * i128::from(rates.understandable.micros());
    let micros = i64::try_from(total).unwrap_or(if total > 0 { i64::MAX } else { i64::MIN });
    Credits::from_micros(micros)
}

/// A pending prompt as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedPrompt {
    pub id: PromptId,
    pub bid_amount: Credits,
    /// Microseconds since the Unix epoch.
    pub submitted_at: i64,
}

/// The prompt the human should see next: the highest bid, then the earliest
/// submitted, then the lowest id, so the choice never depends on row order.
pub fn next_active(pending: &[QueuedPrompt]) -> Option<PromptId> {
    pending
        .iter()
        .max_by_key(|p| (p.bid_amount, Reverse(p.submitted_at), Reverse(p.id)))
        .map(|p| p.id)
}

/// Whether a prompt waiting since `since` (when it became active, or was submitted)
/// has outlived its TTL at `now`; all in microseconds. Expired once `now - since >=
/// ttl_micros`, computed without overflow.
pub fn is_expired(since: i64, now: i64, ttl_micros: i64) -> bool {
    i128::from(now) - i128::from(since) >= i128::from(ttl_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credits(c: i64) -> Credits {
        Credits::from_credits(c).expect("small amounts fit")
    }

    #[test]
    fn prompt_status_round_trips_through_its_name() {
        for s in PromptStatus::ALL {
            assert_eq!(PromptStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            PromptStatus::NAMES,
            ["pending", "active", "responded", "expired"]
        );
        assert_eq!(PromptStatus::parse("Active"), None);
    }

    #[test]
    fn whole_scores_from_0_to_10_are_accepted() {
        let s = Scores::parse(Some(0.0), Some(7.0), Some(10.0)).expect("valid scores");
        assert_eq!(
            s,
            Scores {
                interesting: 0,
                useful: 7,
                understandable: 10
            }
        );
        assert_eq!(s.total(), 17);
        let neg_zero = Scores::parse(Some(-0.0), Some(1.0), Some(2.0)).expect("-0 is 0");
        assert_eq!(neg_zero.interesting, 0);
    }

    #[test]
    fn bad_scores_are_refused_with_the_field_and_reason() {
        let ok = Some(5.0);
        assert_eq!(
            Scores::parse(None, ok, ok),
            Err(ScoreError::Missing("interesting"))
        );
        assert_eq!(
            Scores::parse(ok, None, ok),
            Err(ScoreError::Missing("useful"))
        );
        assert_eq!(
            Scores::parse(ok, ok, None),
            Err(ScoreError::Missing("understandable"))
        );
        assert_eq!(
            Scores::parse(Some(f64::NAN), ok, ok),
            Err(ScoreError::NotFinite("interesting"))
        );
        assert_eq!(
            Scores::parse(ok, Some(f64::INFINITY), ok),
            Err(ScoreError::NotFinite("useful"))
        );
        assert_eq!(
            Scores::parse(ok, ok, Some(f64::NEG_INFINITY)),
            Err(ScoreError::NotFinite("understandable"))
        );
        assert_eq!(
            Scores::parse(ok, Some(11.0), ok),
            Err(ScoreError::OutOfRange("useful"))
        );
        assert_eq!(
            Scores::parse(ok, Some(10.5), ok),
            Err(ScoreError::OutOfRange("useful"))
        );
        assert_eq!(
            Scores::parse(Some(-1.0), ok, ok),
            Err(ScoreError::OutOfRange("interesting"))
        );
        assert_eq!(
            Scores::parse(Some(-0.5), ok, ok),
            Err(ScoreError::OutOfRange("interesting"))
        );
        assert_eq!(
            Scores::parse(ok, ok, Some(7.5)),
            Err(ScoreError::NotWhole("understandable"))
        );
        // The first bad field is the one reported.
        assert_eq!(
            Scores::parse(ok, Some(-1.0), None),
            Err(ScoreError::OutOfRange("useful"))
        );
    }

    #[test]
    fn score_errors_name_the_field_in_their_message() {
        assert_eq!(
            ScoreError::OutOfRange("useful").to_string(),
            "useful must be between 0 and 10"
        );
        assert_eq!(
            ScoreError::Missing("interesting").to_string(),
            "interesting is required"
        );
        assert_eq!(
            ScoreError::NotFinite("understandable").to_string(),
            "understandable must be a finite number"
        );
        assert_eq!(
            ScoreError::NotWhole("useful").to_string(),
            "useful must be a whole number"
        );
    }

    #[test]
    fn reward_is_the_exact_weighted_sum() {
        let s = Scores {
            interesting: 7,
            useful: 8,
            understandable: 9,
        };
        assert_eq!(reward(&s, &RewardRates::default()), credits(24 * 50));
        let rates = RewardRates {
            interesting: Credits::from_micros(1),
            useful: Credits::from_micros(1_000),
            understandable: Credits::from_micros(100_000_000),
        };
        assert_eq!(
            reward(&s, &rates),
            Credits::from_micros(7 + 8_000 + 900_000_000)
        );
        let zero = Scores {
            interesting: 0,
            useful: 0,
            understandable: 0,
        };
        assert_eq!(reward(&zero, &RewardRates::default()), Credits::ZERO);
    }

    #[test]
    fn reward_saturates_instead_of_wrapping() {
        let s = Scores {
            interesting: 10,
            useful: 10,
            understandable: 10,
        };
        let huge = Credits::from_micros(i64::MAX / 2);
        let rates = RewardRates {
            interesting: huge,
            useful: huge,
            understandable: huge,
        };
        assert_eq!(reward(&s, &rates), Credits::from_micros(i64::MAX));
        let low = Credits::from_micros(i64::MIN);
        let rates = RewardRates {
            interesting: low,
            useful: low,
            understandable: low,
        };
        assert_eq!(reward(&s, &rates), Credits::from_micros(i64::MIN));
    }

    fn queued(id: i64, bid: i64, at: i64) -> QueuedPrompt {
        QueuedPrompt {
            id: PromptId(id),
            bid_amount: Credits::from_micros(bid),
            submitted_at: at,
        }
    }

    #[test]
    fn the_highest_bid_is_shown_first() {
        assert_eq!(next_active(&[]), None);
        let q = [queued(1, 10, 0), queued(2, 30, 5), queued(3, 20, 1)];
        assert_eq!(next_active(&q), Some(PromptId(2)));
    }

    #[test]
    fn equal_bids_go_by_submission_time_then_id() {
        let by_time = [queued(1, 10, 9), queued(2, 10, 3), queued(3, 10, 7)];
        assert_eq!(next_active(&by_time), Some(PromptId(2)));
        let by_id = [queued(9, 10, 3), queued(4, 10, 3), queued(6, 10, 3)];
        assert_eq!(next_active(&by_id), Some(PromptId(4)));
        let mut reversed = by_id;
        reversed.reverse();
        assert_eq!(next_active(&reversed), Some(PromptId(4)));
    }

    #[test]
    fn a_prompt_expires_when_its_ttl_has_fully_elapsed() {
        assert!(!is_expired(1_000, 1_999, 1_000));
        assert!(is_expired(1_000, 2_000, 1_000));
        assert!(is_expired(1_000, 5_000, 1_000));
        // A clock that stepped backwards does not expire anything.
        assert!(!is_expired(1_000, 500, 1_000));
    }

    #[test]
    fn expiry_does_not_overflow_at_the_extremes() {
        assert!(is_expired(i64::MIN, i64::MAX, i64::MAX));
        assert!(!is_expired(i64::MAX, i64::MIN, 0));
        assert!(is_expired(0, i64::MAX, i64::MAX));
        assert!(!is_expired(1, i64::MAX, i64::MAX));
    }
}
