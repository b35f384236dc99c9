//! `/metrics` in the Prometheus text format (SPEC §13): request counts and latency
//! recorded by a middleware, the cycle duration observed by the Orchestrator, and
//! the world's figures (population, credits, prices, utilisation, executions by
//! outcome) read from the store at each scrape. The LLM proxy adds its token and
//! call counters to the same registry. docs/observability.md lists every name.

use super::error::ApiResult;
use super::state::ApiState;
use super::trace::RequestTrace;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
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
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The registry and every metric in it. Names follow Prometheus' conventions
/// (checked by `promtool check metrics` in the tests): the `agora_` prefix, base
/// units as suffixes (`_seconds`, `_credits`, `_ratio`), `_total` on counters, and
/// one family per quantity, so that summing over a label means something.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    agents: Family<StatusLabels, Gauge>,
    agent_balance: FloatGauge,
    agent_held: FloatGauge,
    minted: FloatGauge,
    burned: FloatGauge,
    executions: Family<StatusLabels, Gauge>,
    pending_bids: Gauge,
    pending_prompts: Gauge,
    price: Family<ResourceLabels, FloatGauge>,
    utilisation: Family<ResourceLabels, FloatGauge>,
    current_cycle: Gauge,
    cycle_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("agora");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
            }),
            agents: Family::default(),
            agent_balance: FloatGauge::default(),
            agent_held: FloatGauge::default(),
            minted: FloatGauge::default(),
            burned: FloatGauge::default(),
            executions: Family::default(),
            pending_bids: Gauge::default(),
            pending_prompts: Gauge::default(),
            price: Family::default(),
            utilisation: Family::default(),
            current_cycle: Gauge::default(),
            // 0.5 ms to 16 s: a cycle of a small world takes milliseconds, one of
            // 100,000 bids tens of them, and a stuck database seconds.
            cycle_duration: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            registry: Registry::default(),
        };
        // Counters get `_total` appended by the encoder.
        r.register(
            "api_requests",
            "System Service requests answered, by method, route template and status",
            m.requests.clone(),
        );
        r.register(
            "api_request_duration_seconds",
            "Time to answer a System Service request, by route template",
            m.latency.clone(),
        );
        r.register("agents", "Agents by status (alive, dead)", m.agents.clone());
        r.register(
            "agent_balance_credits",
            "Credits in agents' accounts, held ones included",
            m.agent_balance.clone(),
        );
        r.register(
            "agent_held_credits",
            "Credits of agents held by pending bids and prompts",
            m.agent_held.clone(),
        );
        r.register(
            "minted_credits",
            "Credits ever minted (genesis grant, human rewards, operator grants)",
            m.minted.clone(),
        );
        r.register(
            "burned_credits",
            "Credits burned (payments for resources, fees) less refunds",
            m.burned.clone(),
        );
        r.register(
            "executions",
            "Executions by status: scheduled, running, or how they ended",
            m.executions.clone(),
        );
        r.register(
            "pending_bids",
            "Bids waiting to be cleared",
            m.pending_bids.clone(),
        );
        r.register(
            "pending_prompts",
            "Prompts waiting for the human",
            m.pending_prompts.clone(),
        );
        r.register(
            "market_price_credits",
            "Current price in credits per unit, by resource",
            m.price.clone(),
        );
        r.register(
            "market_utilisation_ratio",
            "Share of the supply sold in the last cycle, by resource",
            m.utilisation.clone(),
        );
        r.register(
            "current_cycle",
            "Number of the last allocation cycle that began",
            m.current_cycle.clone(),
        );
        r.register(
            "cycle_duration_seconds",
            "Time the Orchestrator's loop took for one allocation cycle",
            m.cycle_duration.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// The registry, for metrics defined outside this module (the LLM proxy's).
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The cycle duration histogram, for the Orchestrator to observe each cycle in
    /// (a handle: observations through it show in this registry).
    pub fn cycle_duration(&self) -> Histogram {
        self.cycle_duration.clone()
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

fn status(s: &str) -> StatusLabels {
    StatusLabels {
        status: s.to_string(),
    }
}

fn resource(r: &str) -> ResourceLabels {
    ResourceLabels {
        resource: r.to_string(),
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
    let trace = req.extensions().get::<Arc<RequestTrace>>().cloned();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe(&method, &route, status, elapsed.as_secs_f64());
    super::trace::access(trace.as_deref(), &method, &route, status, elapsed);
    response
}

const MICROS: f64 = 1_000_000.0;

/// The OpenMetrics media type, answered to scrapers that ask for it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prometheus' classic text format, answered to everyone else (and `promtool`).
const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric in the Prometheus text format (0.0.4), or in OpenMetrics for a
/// client whose `Accept` asks for it.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "always",
    responses((status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics 1.0 when `Accept` asks for `application/openmetrics-text`", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> ApiResult<Response> {
    let m = &state.metrics;
    let stats = state.store.stats().await?;
    m.agents
        .get_or_create(&status("alive"))
        .set(stats.agents_alive);
    m.agents
        .get_or_create(&status("dead"))
        .set(stats.agents_dead);
    m.agent_balance.set(stats.agent_balances as f64 / MICROS);
    m.agent_held.set(stats.agent_held as f64 / MICROS);
    m.minted.set(stats.minted as f64 / MICROS);
    m.burned.set(stats.burned as f64 / MICROS);
    for (s, n) in &stats.executions {
        m.executions.get_or_create(&status(s)).set(*n);
    }
    m.pending_bids.set(stats.pending_bids);
    m.pending_prompts.set(stats.pending_prompts);
    for market in state.store.markets().await? {
        m.price
            .get_or_create(&resource(&market.resource))
            .set(market.price as f64 / MICROS);
        m.utilisation
            .get_or_create(&resource(&market.resource))
            .set(market.utilisation);
    }
    m.current_cycle.set(state.store.current_cycle().await?.0);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry).map_err(|_| {
        super::error::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "metrics encoding failed",
        )
    })?;
    let wants_openmetrics = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    Ok(if wants_openmetrics {
        ([(CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        ([(CONTENT_TYPE, TEXT_004)], text_004(&text)).into_response()
    })
}

/// OpenMetrics text (what the encoder writes) as Prometheus' 0.0.4 text format:
/// there a counter's `HELP` and `TYPE` name its samples' full name (with
/// `_total`), and there are no `UNIT` or `EOF` lines. Without this a 0.0.4 parser
/// reads every counter as an untyped metric without help.
fn text_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::text_004;

    #[test]
    fn counters_are_named_by_their_samples_in_the_classic_format() {
        let om = "# HELP agora_api_requests Requests.\n# TYPE agora_api_requests counter\n\
                  agora_api_requests_total{route=\"/x\"} 1\n# HELP agora_agents Agents.\n\
                  # TYPE agora_agents gauge\n# UNIT agora_agents agents\nagora_agents 2\n# EOF\n";
        assert_eq!(
            text_004(om),
            "# HELP agora_api_requests_total Requests.\n# TYPE agora_api_requests_total counter\n\
             agora_api_requests_total{route=\"/x\"} 1\n# HELP agora_agents Agents.\n\
             # TYPE agora_agents gauge\nagora_agents 2\n"
        );
    }
}
