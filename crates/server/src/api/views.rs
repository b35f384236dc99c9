//! What the System Service sends and receives, as typed, documented JSON. Each
//! view is built from a store record; amounts are [`CreditAmount`] strings and
//! times are microseconds since the Unix epoch.

use super::error::ApiError;
use super::schema::{
    AgentStatusSchema, BidStatusSchema, CreditAmount, DeathReasonSchema, ExecutionStatusSchema,
    PromptStatusSchema,
};
use crate::store::{
    AgentRecord, Balance, BidRecord, EventRecord, ExecutionRecord, MessageRecord, PromptRecord,
    ResponseRecord, TransferRecord,
};
use agora_core::{Bundle, BundleLimits, BundleSpec, Credits};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A bundle of resources in displayed units.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleView {
    /// CPU time budget in seconds (millisecond precision).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub cpu_seconds: f64,
    /// Peak memory in whole MB.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub memory_mb: f64,
    /// LLM tokens, prompt + completion.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub tokens: f64,
    /// Share of the human's attention, 0..=1; > 0 allows one prompt.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    pub attention_share: f64,
    /// Wall-clock window in seconds; the configured default when absent.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub wall_seconds: Option<f64>,
}

impl BundleView {
    /// Validates against the configured caps.
    pub fn parse(&self, limits: &BundleLimits) -> Result<Bundle, ApiError> {
        let spec = BundleSpec {
            cpu_seconds: self.cpu_seconds,
            memory_mb: self.memory_mb,
            tokens: self.tokens,
            attention_share: self.attention_share,
            wall_seconds: self.wall_seconds,
        };
        Bundle::parse(&spec, limits)
            .map_err(|e| ApiError::bad_request("invalid_bundle", e.to_string()))
    }
}

impl From<&Bundle> for BundleView {
    fn from(b: &Bundle) -> BundleView {
        let s = b.to_spec();
        BundleView {
            cpu_seconds: s.cpu_seconds,
            memory_mb: s.memory_mb,
            tokens: s.tokens,
            attention_share: s.attention_share,
            wall_seconds: s.wall_seconds,
        }
    }
}

/// A bid.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BidView {
    pub id: i64,
    /// The agent whose credits are held and paid.
    pub payer: i64,
    /// The agent woken if the bid wins.
    pub beneficiary: i64,
    pub bundle: BundleView,
    #[schema(value_type = CreditAmount)]
    pub amount: Credits,
    #[schema(value_type = BidStatusSchema)]
    pub status: String,
    pub placed_at: i64,
    pub placed_cycle: i64,
    /// The last cycle in which the bid can win.
    pub expiry_cycle: i64,
    pub decided_at: Option<i64>,
    pub won_cycle: Option<i64>,
    pub execution_id: Option<i64>,
}

impl From<&BidRecord> for BidView {
    fn from(b: &BidRecord) -> BidView {
        BidView {
            id: b.id.0,
            payer: b.payer.0,
            beneficiary: b.beneficiary.0,
            bundle: (&b.bundle).into(),
            amount: b.amount,
            status: b.status.as_str().to_string(),
            placed_at: b.placed_at,
            placed_cycle: b.placed_cycle,
            expiry_cycle: b.expiry_cycle,
            decided_at: b.decided_at,
            won_cycle: b.won_cycle,
            execution_id: b.execution_id,
        }
    }
}

/// An agent's money.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BalanceView {
    pub agent: i64,
    #[schema(value_type = CreditAmount)]
    pub balance: Credits,
    /// Reserved by pending bids and escrowed prompts.
    #[schema(value_type = CreditAmount)]
    pub held: Credits,
    /// `balance − held`: what new commitments are checked against.
    #[schema(value_type = CreditAmount)]
    pub available: Credits,
}

impl BalanceView {
    pub fn new(agent: i64, b: &Balance) -> BalanceView {
        BalanceView {
            agent,
            balance: b.balance,
            held: b.held,
            available: b.available,
        }
    }
}

/// A ledger transfer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    pub id: i64,
    /// `mint`, `burn` or `agent:<id>`.
    pub debit: String,
    pub credit: String,
    #[schema(value_type = CreditAmount)]
    pub amount: Credits,
    /// reward, grant, resource_payment, transfer, spawn_fee, spawn_endowment,
    /// message_fee, attention_bid or refund.
    pub kind: String,
    pub memo: String,
    pub bid_id: Option<i64>,
    pub execution_id: Option<i64>,
    pub prompt_id: Option<i64>,
    pub created_at: i64,
}

impl From<&TransferRecord> for TransferView {
    fn from(t: &TransferRecord) -> TransferView {
        TransferView {
            id: t.id,
            debit: t.debit.clone(),
            credit: t.credit.clone(),
            amount: t.amount,
            kind: t.kind.clone(),
            memo: t.memo.clone(),
            bid_id: t.bid_id,
            execution_id: t.execution_id,
            prompt_id: t.prompt_id,
            created_at: t.created_at,
        }
    }
}

/// An agent as others see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    pub id: i64,
    #[schema(value_type = AgentStatusSchema)]
    pub status: String,
    #[schema(value_type = Option<DeathReasonSchema>)]
    pub death_reason: Option<String>,
    pub death_at: Option<i64>,
    pub parent: Option<i64>,
    /// Ancestors, nearest first: [parent, grandparent, …].
    pub lineage: Vec<i64>,
    pub execution_count: i64,
    #[schema(value_type = CreditAmount)]
    pub total_credits_earned: Credits,
    #[schema(value_type = CreditAmount)]
    pub total_credits_spent: Credits,
    pub created_at: i64,
    pub last_execution_at: Option<i64>,
}

impl From<&AgentRecord> for AgentView {
    fn from(a: &AgentRecord) -> AgentView {
        AgentView {
            id: a.id.0,
            status: a.status.as_str().to_string(),
            death_reason: a.death_reason.map(|d| d.as_str().to_string()),
            death_at: a.death_at,
            parent: a.parent_id.map(|p| p.0),
            lineage: a.lineage.iter().map(|l| l.0).collect(),
            execution_count: a.execution_count,
            total_credits_earned: a.total_credits_earned,
            total_credits_spent: a.total_credits_spent,
            created_at: a.created_at,
            last_execution_at: a.last_execution_at,
        }
    }
}

/// An execution.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecutionView {
    pub id: i64,
    pub agent: i64,
    pub bid: i64,
    pub bundle: BundleView,
    pub cycle: i64,
    #[schema(value_type = ExecutionStatusSchema)]
    pub status: String,
    pub exit_code: Option<i64>,
    pub termination_reason: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
}

impl From<&ExecutionRecord> for ExecutionView {
    fn from(e: &ExecutionRecord) -> ExecutionView {
        ExecutionView {
            id: e.id.0,
            agent: e.agent.0,
            bid: e.bid.0,
            bundle: (&e.bundle).into(),
            cycle: e.cycle,
            status: e.status.as_str().to_string(),
            exit_code: e.exit_code,
            termination_reason: e.termination_reason.clone(),
            created_at: e.created_at,
            started_at: e.started_at,
            ended_at: e.ended_at,
        }
    }
}

/// A prompt to the human.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromptView {
    pub id: i64,
    pub agent: i64,
    pub execution: i64,
    /// What the agent shows the human: any JSON value but null.
    #[schema(value_type = serde_json::Value)]
    pub content: serde_json::Value,
    /// The escrowed attention bid.
    #[schema(value_type = CreditAmount)]
    pub bid_amount: Credits,
    #[schema(value_type = PromptStatusSchema)]
    pub status: String,
    pub submitted_at: i64,
    pub activated_at: Option<i64>,
    pub decided_at: Option<i64>,
}

impl From<&PromptRecord> for PromptView {
    fn from(p: &PromptRecord) -> PromptView {
        PromptView {
            id: p.id.0,
            agent: p.agent.0,
            execution: p.execution.0,
            content: p.content.clone(),
            bid_amount: p.bid_amount,
            status: p.status.as_str().to_string(),
            submitted_at: p.submitted_at,
            activated_at: p.activated_at,
            decided_at: p.decided_at,
        }
    }
}

/// A human's rating of a prompt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResponseView {
    pub prompt: i64,
    #[schema(minimum = 0, maximum = 10)]
    pub interesting: i64,
    #[schema(minimum = 0, maximum = 10)]
    pub useful: i64,
    #[schema(minimum = 0, maximum = 10)]
    pub understandable: i64,
    pub reason: String,
    #[schema(value_type = CreditAmount)]
    pub credits_awarded: Credits,
    pub rated_at: i64,
}

impl From<&ResponseRecord> for ResponseView {
    fn from(r: &ResponseRecord) -> ResponseView {
        ResponseView {
            prompt: r.prompt.0,
            interesting: r.interesting,
            useful: r.useful,
            understandable: r.understandable,
            reason: r.reason.clone(),
            credits_awarded: r.credits_awarded,
            rated_at: r.rated_at,
        }
    }
}

/// A message between agents.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: i64,
    pub from: i64,
    pub to: i64,
    pub content: String,
    pub sent_at: i64,
    pub read_at: i64,
}

impl From<&MessageRecord> for MessageView {
    fn from(m: &MessageRecord) -> MessageView {
        MessageView {
            id: m.id,
            from: m.from.0,
            to: m.to.0,
            content: m.content.clone(),
            sent_at: m.sent_at,
            read_at: m.read_at,
        }
    }
}

/// One event of the append-only log (SPEC §13).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub at: i64,
    pub cycle: Option<i64>,
    /// The component that recorded it.
    pub source: String,
    /// bid_placed, resources_allocated, credits_transferred, …
    #[serde(rename = "type")]
    pub kind: String,
    pub agent: Option<i64>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&EventRecord> for EventView {
    fn from(e: &EventRecord) -> EventView {
        EventView {
            id: e.id,
            at: e.at,
            cycle: e.cycle,
            source: e.source.clone(),
            kind: e.kind.clone(),
            agent: e.agent_id,
            data: e.data.clone(),
        }
    }
}
