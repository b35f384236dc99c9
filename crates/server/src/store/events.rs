//! The append-only event log of SPEC §13: every state change writes a row in the
//! same transaction as the change itself, so the log never disagrees with the state.

use super::error::StoreResult;
use super::now_micros;
use agora_core::{AgentId, Cycle};
use sqlx::{AnyConnection, Row};

/// The kinds of event (§13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    BidPlaced,
    BidRejected,
    BidWithdrawn,
    BidExpired,
    BidRaised,
    ResourcesAllocated,
    ExecutionStarted,
    ExecutionFinished,
    CreditsTransferred,
    CreditsMinted,
    CreditsBurned,
    PromptSubmitted,
    PromptExpired,
    HumanRewardIssued,
    AgentCreated,
    AgentSpawned,
    AgentDied,
    MessageSent,
    PriceUpdate,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BidPlaced => "bid_placed",
            EventType::BidRejected => "bid_rejected",
            EventType::BidWithdrawn => "bid_withdrawn",
            EventType::BidExpired => "bid_expired",
            EventType::BidRaised => "bid_raised",
            EventType::ResourcesAllocated => "resources_allocated",
            EventType::ExecutionStarted => "execution_started",
            EventType::ExecutionFinished => "execution_finished",
            EventType::CreditsTransferred => "credits_transferred",
            EventType::CreditsMinted => "credits_minted",
            EventType::CreditsBurned => "credits_burned",
            EventType::PromptSubmitted => "prompt_submitted",
            EventType::PromptExpired => "prompt_expired",
            EventType::HumanRewardIssued => "human_reward_issued",
            EventType::AgentCreated => "agent_created",
            EventType::AgentSpawned => "agent_spawned",
            EventType::AgentDied => "agent_died",
            EventType::MessageSent => "message_sent",
            EventType::PriceUpdate => "price_update",
        }
    }
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventType,
    /// The component that caused it (economy, market, attention, orchestrator, …).
    pub source: &'static str,
    pub agent: Option<AgentId>,
    pub cycle: Option<Cycle>,
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(
        kind: EventType,
        source: &'static str,
        agent: Option<AgentId>,
        data: serde_json::Value,
    ) -> Self {
        NewEvent {
            kind,
            source,
            agent,
            cycle: None,
            data,
        }
    }

    pub fn in_cycle(mut self, cycle: Cycle) -> Self {
        self.cycle = Some(cycle);
        self
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub at: i64,
    pub cycle: Option<i64>,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub agent_id: Option<i64>,
    pub data: serde_json::Value,
}

/// Appends an event inside the caller's transaction.
pub async fn append(c: &mut AnyConnection, e: NewEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (at, cycle, source, type, agent_id, data) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_micros())
    .bind(e.cycle.map(|c| c.0))
    .bind(e.source)
    .bind(e.kind.as_str())
    .bind(e.agent.map(|a| a.0))
    .bind(e.data.to_string())
    .execute(c)
    .await?;
    Ok(())
}

impl super::Store {
    /// Appends one event in a transaction of its own.
    pub async fn record_event(&self, e: NewEvent) -> StoreResult<()> {
        self.write_tx(move |c| {
            let e = e.clone();
            Box::pin(append(c, e))
        })
        .await
    }

    /// Events with id > `after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: i64, limit: i64) -> StoreResult<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT id, at, cycle, source, type, agent_id, data FROM events \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(event_from).collect()
    }
}

/// The columns [`event_from`] reads.
pub(super) const EVENT_COLUMNS: &str = "id, at, cycle, source, type, agent_id, data";

/// Reads an `events` row selected with [`EVENT_COLUMNS`].
pub(super) fn event_from(r: &sqlx::any::AnyRow) -> StoreResult<EventRecord> {
    let data: String = r.try_get("data")?;
    Ok(EventRecord {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        cycle: r.try_get("cycle")?,
        source: r.try_get("source")?,
        kind: r.try_get("type")?,
        agent_id: r.try_get("agent_id")?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
    })
}
