//! `/metrics` in the Prometheus text format (SPEC §13): request counts and latency
//! recorded by a middleware, and the world's figures (population, credits, prices,
//! utilisation, executions by outcome) read from the store at each scrape.

use super::error::ApiResult;
use super::state::ApiState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The registry and every metric in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    agents: Family<KindLabels, Gauge>,
    credits: Family<KindLabels, FloatGauge>,
    executions: Family<KindLabels, Gauge>,
    pending: Family<KindLabels, Gauge>,
    price: Family<KindLabels, FloatGauge>,
    utilisation: Family<KindLabels, FloatGauge>,
    cycle: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("agora");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "System Service requests answered",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register(
            "api_request_duration_seconds",
            "Time to answer a System Service request",
            latency.clone(),
        );
        let agents = Family::<KindLabels, Gauge>::default();
        registry.register(
            "agents",
            "Agents by status (kind = alive | dead)",
            agents.clone(),
        );
        let credits = Family::<KindLabels, FloatGauge>::default();
        registry.register(
            "credits",
            "Credits by kind: agent_balances, agent_held, minted, burned",
            credits.clone(),
        );
        let executions = Family::<KindLabels, Gauge>::default();
        registry.register("executions", "Executions by status", executions.clone());
        let pending = Family::<KindLabels, Gauge>::default();
        registry.register(
            "pending",
            "Pending work by kind: bids, prompts",
            pending.clone(),
        );
        let price = Family::<KindLabels, FloatGauge>::default();
        registry.register(
            "market_price_credits",
            "Current price per unit by resource",
            price.clone(),
        );
        let utilisation = Family::<KindLabels, FloatGauge>::default();
        registry.register(
            "market_utilisation_ratio",
            "Utilisation of the last cycle by resource",
            utilisation.clone(),
        );
        let cycle = Gauge::default();
        registry.register(
            "cycle",
            "The last allocation cycle that began",
            cycle.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            agents,
            credits,
            executions,
            pending,
            price,
            utilisation,
            cycle,
        }
    }

    /// The registry, for metrics defined outside this module (the LLM proxy's).
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }
}

fn kind(k: &str) -> KindLabels {
    KindLabels {
        kind: k.to_string(),
    }
}

/// Counts and times every request by its route template (never the raw path, so
/// ids do not explode the label space).
pub async fn track(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe(&method, &route, status, elapsed.as_secs_f64());
    tracing::debug!(
        component = "api",
        method = %method,
        route = %route,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    response
}

const MICROS: f64 = 1_000_000.0;

/// Prometheus text exposition of every metric.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "always",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<ApiState>) -> ApiResult<Response> {
    let m = &state.metrics;
    let stats = state.store.stats().await?;
    m.agents
        .get_or_create(&kind("alive"))
        .set(stats.agents_alive);
    m.agents.get_or_create(&kind("dead")).set(stats.agents_dead);
    for (k, v) in [
        ("agent_balances", stats.agent_balances),
        ("agent_held", stats.agent_held),
        ("minted", stats.minted),
        ("burned", stats.burned),
    ] {
        m.credits.get_or_create(&kind(k)).set(v as f64 / MICROS);
    }
    for (status, n) in &stats.executions {
        m.executions.get_or_create(&kind(status)).set(*n);
    }
    m.pending
        .get_or_create(&kind("bids"))
        .set(stats.pending_bids);
    m.pending
        .get_or_create(&kind("prompts"))
        .set(stats.pending_prompts);
    for market in state.store.markets().await? {
        m.price
            .get_or_create(&kind(&market.resource))
            .set(market.price as f64 / MICROS);
        m.utilisation
            .get_or_create(&kind(&market.resource))
            .set(market.utilisation);
    }
    m.cycle.set(state.store.current_cycle().await?.0);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry).map_err(|_| {
        super::error::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "metrics encoding failed",
        )
    })?;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}
