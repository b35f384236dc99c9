//! What the console's agent pages read (SPEC §12): one page of the population with
//! balances and children counts in the order the human asked for, an agent's
//! descendants for its lineage tree, and the small counts the pages poll.

use super::agents::{agent_from, AgentRecord, AGENT_COLUMNS};
use super::error::StoreResult;
use super::Store;
use agora_core::lifecycle::AgentStatus;
use agora_core::{AgentId, Credits, PromptId};
use sqlx::Row;

/// The order of the console's agent table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentOrder {
    /// Oldest first.
    #[default]
    Id,
    /// Richest first.
    Balance,
    /// Most executions first.
    Executions,
    /// Most recently executed first.
    LastExecution,
}

impl AgentOrder {
    /// Every order with its name in a URL.
    pub const ALL: [(AgentOrder, &'static str); 4] = [
        (AgentOrder::Id, "id"),
        (AgentOrder::Balance, "balance"),
        (AgentOrder::Executions, "executions"),
        (AgentOrder::LastExecution, "last_execution"),
    ];

    pub fn parse(text: &str) -> Option<AgentOrder> {
        Self::ALL.iter().find(|(_, n)| *n == text).map(|(o, _)| *o)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(o, _)| *o == self)
            .map(|(_, n)| *n)
            .unwrap_or("id")
    }

    fn sql(self) -> &'static str {
        match self {
            AgentOrder::Id => "agents.id",
            AgentOrder::Balance => "account_balance DESC, agents.id",
            AgentOrder::Executions => "agents.execution_count DESC, agents.id",
            AgentOrder::LastExecution => "COALESCE(agents.last_execution_at, 0) DESC, agents.id",
        }
    }
}

/// One row of the console's agent table.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub agent: AgentRecord,
    pub balance: Credits,
    pub held: Credits,
    pub children: i64,
}

/// What the Attention page polls: the active prompt and how many wait behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionState {
    pub active: Option<PromptId>,
    pub waiting: i64,
}

/// One agent of a lineage tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeNode {
    pub id: AgentId,
    pub parent: Option<AgentId>,
    pub alive: bool,
}

impl Store {
    /// One page of agents (`offset`, `limit`) of one status or all, in `order`,
    /// and how many agents match in all.
    pub async fn agent_table(
        &self,
        status: Option<AgentStatus>,
        order: AgentOrder,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<AgentRow>, i64)> {
        let filter = if status.is_some() {
            "WHERE agents.status = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {columns}, accounts.balance AS account_balance, accounts.held AS account_held, \
             (SELECT COUNT(*) FROM agents c WHERE c.parent_id = agents.id) AS children \
             FROM agents JOIN accounts ON accounts.agent_id = agents.id {filter} \
             ORDER BY {order} LIMIT $1 OFFSET $2",
            columns = AGENT_COLUMNS
                .split(',')
                .map(|c| format!("agents.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", "),
            order = order.sql(),
        );
        let mut q = sqlx::query(&sql).bind(limit).bind(offset);
        if let Some(s) = status {
            q = q.bind(s.as_str());
        }
        let rows = q
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(AgentRow {
                    agent: agent_from(r)?,
                    balance: Credits::from_micros(r.try_get("account_balance")?),
                    held: Credits::from_micros(r.try_get("account_held")?),
                    children: r.try_get("children")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let total: i64 = match status {
            Some(s) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE status = $1")
                    .bind(s.as_str())
                    .fetch_one(self.reader())
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM agents")
                    .fetch_one(self.reader())
                    .await?
            }
        };
        Ok((rows, total))
    }

    /// The active prompt and the number of pending ones (two indexed reads).
    pub async fn attention_state(&self) -> StoreResult<AttentionState> {
        let active: Option<i64> =
            sqlx::query_scalar("SELECT id FROM prompts WHERE status = 'active'")
                .fetch_optional(self.reader())
                .await?;
        let waiting: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM prompts WHERE status = 'pending'")
                .fetch_one(self.reader())
                .await?;
        Ok(AttentionState {
            active: active.map(PromptId),
            waiting,
        })
    }

    /// How many bids wait in the book.
    pub async fn pending_bid_count(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM bids WHERE status = 'pending'")
                .fetch_one(self.reader())
                .await?,
        )
    }

    /// An agent and its descendants, breadth first, at most `limit` of them.
    pub async fn descendants(&self, root: AgentId, limit: i64) -> StoreResult<Vec<TreeNode>> {
        let rows = sqlx::query(
            "WITH RECURSIVE tree (id, parent_id, status, depth) AS ( \
               SELECT id, parent_id, status, 0 FROM agents WHERE id = $1 \
               UNION ALL \
               SELECT a.id, a.parent_id, a.status, tree.depth + 1 \
               FROM agents a JOIN tree ON a.parent_id = tree.id WHERE tree.depth < 64 \
             ) SELECT id, parent_id, status FROM tree ORDER BY depth, id LIMIT $2",
        )
        .bind(root.0)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TreeNode {
                    id: AgentId(r.try_get("id")?),
                    parent: r.try_get::<Option<i64>, _>("parent_id")?.map(AgentId),
                    alive: r.try_get::<String, _>("status")? == AgentStatus::Alive.as_str(),
                })
            })
            .collect()
    }
}
