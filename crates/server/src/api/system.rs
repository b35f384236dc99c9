//! What an agent may know about itself and the rules (SPEC §11): its execution
//! context (bundle, tokens left, deadline, credits) and the economy's
//! configuration.

use super::auth::Caller;
use super::error::ApiResult;
use super::schema::{CreditAmount, Errors};
use super::state::ApiState;
use super::views::{BalanceView, BundleView};
use agora_core::Credits;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(context))
        .routes(routes!(config))
}

/// The caller's own execution.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContextView {
    pub agent: i64,
    pub execution: i64,
    /// The cycle whose allocation woke this execution.
    pub cycle: i64,
    /// The cycle now.
    pub current_cycle: i64,
    pub bundle: BundleView,
    /// LLM tokens charged so far.
    pub tokens_used: i64,
    /// LLM tokens the bundle still allows.
    pub tokens_left: i64,
    /// When the wall-clock window ends, µs since the Unix epoch.
    pub deadline: i64,
    /// True when the bundle has attention and no prompt was submitted yet.
    pub can_prompt: bool,
    pub balance: BalanceView,
}

/// The caller's execution context: bundle, tokens left, deadline, credits.
#[utoipa::path(get, path = "/system/context", tag = "system",
    security(("execution_token" = [])),
    responses((status = 200, body = ContextView), Errors))]
async fn context(caller: Caller, State(s): State<ApiState>) -> ApiResult<Json<ContextView>> {
    let exec = s.store.execution(caller.execution).await?;
    let balance = s.store.balance(caller.agent).await?;
    let wall_ms = exec
        .bundle
        .wall_millis()
        .map(|w| w as i64)
        .unwrap_or((s.config.limits.default_wall_seconds * 1000.0) as i64);
    let since = exec.started_at.unwrap_or(exec.created_at);
    let tokens = exec.bundle.get(agora_core::Resource::Tokens) as i64;
    let prompted = s
        .store
        .prompt_of_execution(caller.execution)
        .await?
        .is_some();
    let quota = s.store.llm_quota(caller.execution).await?;
    Ok(Json(ContextView {
        agent: caller.agent.0,
        execution: caller.execution.0,
        cycle: exec.cycle,
        current_cycle: s.store.current_cycle().await?.0,
        bundle: (&exec.bundle).into(),
        tokens_used: exec.tokens_used,
        // What a new LLM call could still hold: calls in flight hold theirs.
        tokens_left: (tokens - exec.tokens_used - quota.held).max(0),
        deadline: since.saturating_add(wall_ms.saturating_mul(1000)),
        can_prompt: exec.bundle.get(agora_core::Resource::AttentionShare) > 0 && !prompted,
        balance: BalanceView::new(caller.agent.0, &balance),
    }))
}

/// The rules of the economy an agent plays by.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    pub cycle_interval_ms: u64,
    #[schema(value_type = CreditAmount)]
    pub spawn_cost: Credits,
    #[schema(value_type = CreditAmount)]
    pub message_cost: Credits,
    pub max_pending_bids: i64,
    /// A bid can win until its placement cycle + this many cycles.
    pub bid_ttl_cycles: i64,
    pub prompt_ttl_seconds: u64,
    /// Credits minted per point of each score (0..=10) of a rating.
    #[schema(value_type = CreditAmount)]
    pub rate_interesting: Credits,
    #[schema(value_type = CreditAmount)]
    pub rate_useful: Credits,
    #[schema(value_type = CreditAmount)]
    pub rate_understandable: Credits,
    /// The largest bundle a bid may ask for.
    pub max_bundle: BundleView,
    /// The wall-clock window of a bundle that names none, seconds.
    pub default_wall_seconds: f64,
    /// Utilisation at or above which a price rises, and its factor.
    pub high_utilisation: f64,
    pub raise_factor: f64,
    /// Utilisation at or below which a price falls, and its factor.
    pub low_utilisation: f64,
    pub lower_factor: f64,
}

/// The economy's configuration: costs, limits, rates, price rules.
#[utoipa::path(get, path = "/system/config", tag = "system",
    security(("execution_token" = [])),
    responses((status = 200, body = ConfigView), Errors))]
async fn config(_: Caller, State(s): State<ApiState>) -> ApiResult<Json<ConfigView>> {
    Ok(Json(config_view(&s.config)))
}

/// The agent-visible part of the configuration.
pub fn config_view(c: &crate::config::Config) -> ConfigView {
    ConfigView {
        cycle_interval_ms: c.market.cycle_interval_ms,
        spawn_cost: c.economy.spawn_cost,
        message_cost: c.economy.message_cost,
        max_pending_bids: c.economy.max_pending_bids,
        bid_ttl_cycles: c.economy.bid_ttl_cycles,
        prompt_ttl_seconds: c.attention.prompt_ttl_seconds,
        rate_interesting: c.attention.rate_interesting,
        rate_useful: c.attention.rate_useful,
        rate_understandable: c.attention.rate_understandable,
        max_bundle: BundleView {
            cpu_seconds: c.limits.max_cpu_seconds,
            memory_mb: c.limits.max_memory_mb,
            tokens: c.limits.max_tokens,
            attention_share: 1.0,
            wall_seconds: Some(c.limits.max_wall_seconds),
        },
        default_wall_seconds: c.limits.default_wall_seconds,
        high_utilisation: c.market.high_utilisation,
        raise_factor: c.market.raise_factor,
        low_utilisation: c.market.low_utilisation,
        lower_factor: c.market.lower_factor,
    }
}
