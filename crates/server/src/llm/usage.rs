//! What a call is charged: the upstream's reported usage when there is one, else
//! an estimate from what the proxy saw, flagged `estimated`. The store then
//! charges at most the call's hold, so no estimate can overshoot the quota.

use crate::store::UsageSource;
use serde::Deserialize;

/// OpenAI's `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<i64>,
    #[serde(default)]
    pub completion_tokens: Option<i64>,
    #[serde(default)]
    pub total_tokens: Option<i64>,
}

impl Usage {
    /// Prompt + completion, when both are reported and sane.
    pub fn total(&self) -> Option<i64> {
        match (self.prompt_tokens, self.completion_tokens) {
            (Some(p), Some(c)) if p >= 0 && c >= 0 => p.checked_add(c),
            _ => None,
        }
    }
}

/// What the proxy saw of the generated answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Stream chunks that carried choices.
    pub chunks: u64,
    /// Bytes of generated text (content, reasoning, tool call names and arguments).
    pub content_bytes: u64,
}

/// The tokens a call is charged and how they were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub source: UsageSource,
}

impl Charge {
    pub fn total(&self) -> i64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Nothing: the upstream refused or failed before processing anything.
    pub fn nothing() -> Charge {
        Charge {
            prompt_tokens: 0,
            completion_tokens: 0,
            source: UsageSource::Estimated,
        }
    }

    /// The upstream's usage if reported, else an estimate: the prompt as held
    /// (exact or an upper bound) plus, for the completion, the larger of the
    /// chunks and the bytes of text seen (each generated token is at least one
    /// byte or its own chunk), at most `output_cap`. Never 0 for a call the
    /// upstream started to answer, since the prompt was processed.
    pub fn of(
        usage: Option<Usage>,
        observed: Observed,
        prompt_hold: u64,
        output_cap: u64,
    ) -> Charge {
        if let Some(u) = usage {
            if let (Some(p), Some(c), Some(_)) = (u.prompt_tokens, u.completion_tokens, u.total()) {
                return Charge {
                    prompt_tokens: p,
                    completion_tokens: c,
                    source: UsageSource::Upstream,
                };
            }
        }
        let completion = observed.chunks.max(observed.content_bytes).min(output_cap);
        Charge {
            prompt_tokens: i64::try_from(prompt_hold.max(1)).unwrap_or(i64::MAX),
            completion_tokens: i64::try_from(completion).unwrap_or(i64::MAX),
            source: UsageSource::Estimated,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reported_usage_wins_and_an_estimate_is_flagged() {
        let u = Usage {
            prompt_tokens: Some(5),
            completion_tokens: Some(9),
            total_tokens: None,
        };
        let c = Charge::of(Some(u), Observed::default(), 100, 50);
        assert_eq!((c.total(), c.source), (14, UsageSource::Upstream));
        let seen = Observed {
            chunks: 3,
            content_bytes: 12,
        };
        let c = Charge::of(None, seen, 100, 50);
        assert_eq!((c.total(), c.source), (112, UsageSource::Estimated));
        let c = Charge::of(None, seen, 100, 10);
        assert_eq!(c.completion_tokens, 10);
        let bad = Usage {
            prompt_tokens: Some(-1),
            ..u
        };
        assert_eq!(
            Charge::of(Some(bad), seen, 1, 1).source,
            UsageSource::Estimated
        );
    }
}
