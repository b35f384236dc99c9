//! Agents and their lifecycle in the store: creation with an account, lineage,
//! reading, and death (SPEC §1 law 2, §3, §8).

use super::error::{Rejection, StoreResult};
use super::events::{self, EventType, NewEvent};
use super::{now_micros, Store};
use agora_core::lifecycle::{AgentStatus, DeathReason};
use agora_core::{AgentId, Credits, Cycle};
use serde_json::json;
use sqlx::{AnyConnection, Row};
use std::path::{Path, PathBuf};

/// An agent about to be created.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub parent: Option<AgentId>,
    /// The folder under which the agent's workspace `agent-<id>` is made.
    pub workspaces_root: PathBuf,
}

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentRecord {
    pub id: AgentId,
    pub status: AgentStatus,
    pub death_reason: Option<DeathReason>,
    pub death_at: Option<i64>,
    pub parent_id: Option<AgentId>,
    /// Ancestors, nearest first.
    pub lineage: Vec<AgentId>,
    pub workspace: String,
    pub execution_count: i64,
    pub total_credits_earned: Credits,
    pub total_credits_spent: Credits,
    pub created_at: i64,
    pub last_execution_at: Option<i64>,
}

/// The workspace folder of an agent.
pub fn workspace_path(root: &Path, id: AgentId) -> PathBuf {
    root.join(format!("agent-{}", id.0))
}

/// Creates an agent and its account inside the caller's transaction.
pub async fn create(c: &mut AnyConnection, new: &NewAgent) -> StoreResult<AgentId> {
    let lineage: Vec<i64> = match new.parent {
        None => Vec::new(),
        Some(p) => {
            let raw: Option<String> =
                sqlx::query_scalar("SELECT lineage FROM agents WHERE id = $1")
                    .bind(p.0)
                    .fetch_optional(&mut *c)
                    .await?;
            let raw = raw.ok_or(Rejection::UnknownAgent(p))?;
            let mut l = vec![p.0];
            l.extend(serde_json::from_str::<Vec<i64>>(&raw).unwrap_or_default());
            l
        }
    };
    let lineage_json = serde_json::to_string(&lineage).unwrap_or_else(|_| "[]".into());
    let row = sqlx::query(
        "INSERT INTO agents (status, parent_id, lineage, workspace, created_at) \
         VALUES ('alive', $1, $2, '', $3) RETURNING id",
    )
    .bind(new.parent.map(|p| p.0))
    .bind(lineage_json)
    .bind(now_micros())
    .fetch_one(&mut *c)
    .await?;
    let id = AgentId(row.try_get("id")?);
    let workspace = workspace_path(&new.workspaces_root, id);
    sqlx::query("UPDATE agents SET workspace = $1 WHERE id = $2")
        .bind(workspace.to_string_lossy().into_owned())
        .bind(id.0)
        .execute(&mut *c)
        .await?;
    sqlx::query("INSERT INTO accounts (kind, agent_id) VALUES ('agent', $1)")
        .bind(id.0)
        .execute(&mut *c)
        .await?;
    Ok(id)
}

/// Marks an alive agent dead; returns false if it already was.
pub async fn kill(
    c: &mut AnyConnection,
    agent: AgentId,
    reason: DeathReason,
    cycle: Option<Cycle>,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE agents SET status = 'dead', death_reason = $1, death_at = $2 \
         WHERE id = $3 AND status = 'alive'",
    )
    .bind(reason.as_str())
    .bind(now_micros())
    .bind(agent.0)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    let mut e = NewEvent::new(
        EventType::AgentDied,
        "orchestrator",
        Some(agent),
        json!({"reason": reason}),
    );
    e.cycle = cycle;
    events::append(c, e).await?;
    Ok(true)
}

pub(super) const AGENT_COLUMNS: &str =
    "id, status, death_reason, death_at, parent_id, lineage, workspace, \
     execution_count, total_credits_earned, total_credits_spent, created_at, last_execution_at";

pub(super) fn agent_from(r: &sqlx::any::AnyRow) -> StoreResult<AgentRecord> {
    let status: String = r.try_get("status")?;
    let reason: Option<String> = r.try_get("death_reason")?;
    let lineage: String = r.try_get("lineage")?;
    Ok(AgentRecord {
        id: AgentId(r.try_get("id")?),
        status: AgentStatus::parse(&status).unwrap_or(AgentStatus::Dead),
        death_reason: reason.as_deref().and_then(DeathReason::parse),
        death_at: r.try_get("death_at")?,
        parent_id: r.try_get::<Option<i64>, _>("parent_id")?.map(AgentId),
        lineage: serde_json::from_str::<Vec<i64>>(&lineage)
            .unwrap_or_default()
            .into_iter()
            .map(AgentId)
            .collect(),
        workspace: r.try_get("workspace")?,
        execution_count: r.try_get("execution_count")?,
        total_credits_earned: Credits::from_micros(r.try_get("total_credits_earned")?),
        total_credits_spent: Credits::from_micros(r.try_get("total_credits_spent")?),
        created_at: r.try_get("created_at")?,
        last_execution_at: r.try_get("last_execution_at")?,
    })
}

impl Store {
    /// Creates an agent with an empty account.
    pub async fn create_agent(&self, new: NewAgent) -> StoreResult<AgentId> {
        self.write_tx(move |c| {
            let new = new.clone();
            Box::pin(async move {
                let id = create(c, &new).await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::AgentCreated,
                        "orchestrator",
                        Some(id),
                        json!({"parent": new.parent}),
                    ),
                )
                .await?;
                Ok(id)
            })
        })
        .await
    }

    pub async fn agent(&self, id: AgentId) -> StoreResult<AgentRecord> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        agent_from(&row.ok_or(Rejection::UnknownAgent(id))?)
    }

    /// Agents in id order, after `after`, at most `limit`.
    pub async fn agents(&self, after: i64, limit: i64) -> StoreResult<Vec<AgentRecord>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(agent_from).collect()
    }

    /// How many agents are alive.
    pub async fn alive_count(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE status = 'alive'")
                .fetch_one(self.reader())
                .await?,
        )
    }
}
