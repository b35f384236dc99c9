//! Bootstrap of an empty world (SPEC §8): the genesis agent, its initial grant and
//! its first bid, created in one transaction and recorded so that a restart resumes
//! the world instead of creating a second genesis.

use super::agents::{self, NewAgent};
use super::bids::{place_bid_in, NewBid};
use super::error::StoreResult;
use super::events::{self, EventType, NewEvent};
use super::ledger::{mint_grant, Refs};
use super::Store;
use agora_core::{AgentId, Bundle, Credits};
use serde_json::json;
use std::path::PathBuf;

/// What bootstrap needs to know.
#[derive(Debug, Clone)]
pub struct Genesis {
    pub workspaces_root: PathBuf,
    pub initial_credits: Credits,
    pub first_bid: Bundle,
    pub first_bid_amount: Credits,
    pub bid_ttl_cycles: i64,
    pub max_pending_bids: i64,
}

/// What bootstrap found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapOutcome {
    pub genesis: AgentId,
    /// False when the world already existed and was resumed.
    pub created: bool,
}

impl Store {
    /// Creates the genesis agent, grants it its initial credits from `mint` and
    /// places its first bid as an ordinary pending bid — all or nothing. On a world
    /// that already has a genesis agent, returns it and changes nothing.
    pub async fn bootstrap_genesis(&self, g: Genesis) -> StoreResult<BootstrapOutcome> {
        self.write_tx(move |c| {
            let g = g.clone();
            Box::pin(async move {
                let existing: Option<String> = sqlx::query_scalar(
                    "SELECT value FROM system_state WHERE key = 'genesis_agent'",
                )
                .fetch_optional(&mut *c)
                .await?;
                if let Some(id) = existing.and_then(|v| v.parse().ok()) {
                    return Ok(BootstrapOutcome {
                        genesis: AgentId(id),
                        created: false,
                    });
                }
                let id = agents::create(
                    c,
                    &NewAgent {
                        parent: None,
                        workspaces_root: g.workspaces_root.clone(),
                    },
                )
                .await?;
                events::append(
                    c,
                    NewEvent::new(
                        EventType::AgentCreated,
                        "orchestrator",
                        Some(id),
                        json!({"genesis": true}),
                    ),
                )
                .await?;
                let refs = Refs {
                    memo: "genesis".into(),
                    ..Refs::default()
                };
                mint_grant(c, id, g.initial_credits, &refs).await?;
                let bid = NewBid {
                    payer: id,
                    beneficiary: id,
                    bundle: g.first_bid,
                    amount: g.first_bid_amount,
                    ttl_cycles: g.bid_ttl_cycles,
                    max_pending: g.max_pending_bids,
                };
                place_bid_in(c, &bid).await?;
                sqlx::query("INSERT INTO system_state (key, value) VALUES ('genesis_agent', $1)")
                    .bind(id.0.to_string())
                    .execute(&mut *c)
                    .await?;
                Ok(BootstrapOutcome {
                    genesis: id,
                    created: true,
                })
            })
        })
        .await
    }
}
