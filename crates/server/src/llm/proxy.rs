//! The proxy's shared state: the upstream (if any), the per-execution limit on
//! calls in flight, and the proxy's metrics.

use super::config::LlmConfig;
use super::error::LlmError;
use super::upstream::Upstream;
use agora_core::ExecutionId;
use axum::http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The LLM proxy of one System Service.
#[derive(Debug)]
pub struct LlmProxy {
    pub config: LlmConfig,
    upstream: Option<Upstream>,
    /// Why there is no upstream, for the 503.
    unavailable: String,
    inflight: Arc<Inflight>,
    pub metrics: LlmMetrics,
}

impl LlmProxy {
    /// The proxy `config` describes. A client that cannot be built (no TLS roots,
    /// a key that is not a header value) leaves it without an upstream, said in
    /// every 503 and in the log, rather than stopping the service.
    pub fn new(config: &LlmConfig) -> LlmProxy {
        match Upstream::from_config(config) {
            Ok(upstream) => LlmProxy::with_upstream(config, upstream),
            Err(e) => {
                tracing::error!(component = "llm_proxy", error = %e, "the LLM upstream is unusable");
                let mut p = LlmProxy::with_upstream(config, None);
                p.unavailable = format!("the LLM upstream is unusable: {e}");
                p
            }
        }
    }

    /// A proxy with an upstream built elsewhere (benchmarks).
    pub fn with_upstream(config: &LlmConfig, upstream: Option<Upstream>) -> LlmProxy {
        LlmProxy {
            config: config.clone(),
            upstream,
            unavailable: String::new(),
            inflight: Arc::default(),
            metrics: LlmMetrics::default(),
        }
    }

    /// The upstream, or the 503 every call gets without one.
    pub fn upstream(&self) -> Result<&Upstream, LlmError> {
        match &self.upstream {
            Some(u) => Ok(u),
            None if self.unavailable.is_empty() => Err(LlmError::no_upstream()),
            None => Err(LlmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_upstream",
                self.unavailable.clone(),
            )),
        }
    }

    /// A slot for one more call of `execution`, or 429 when it has
    /// `max_concurrent_per_execution` in flight.
    pub fn permit(&self, execution: ExecutionId) -> Result<InflightPermit, LlmError> {
        let max = self.config.max_concurrent_per_execution;
        let mut map = self
            .inflight
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = map.entry(execution).or_insert(0);
        if *n >= max {
            return Err(LlmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_concurrent_calls",
                format!("this execution already has {max} LLM calls in flight"),
            )
            .with_details(serde_json::json!({"max_concurrent_per_execution": max}))
            .retry_after(1));
        }
        *n += 1;
        Ok(InflightPermit {
            inflight: self.inflight.clone(),
            execution,
        })
    }
}

/// Calls in flight per execution.
#[derive(Debug, Default)]
struct Inflight {
    calls: Mutex<HashMap<ExecutionId, u32>>,
}

/// One call's slot; given back when dropped, after the call is settled.
#[derive(Debug)]
pub struct InflightPermit {
    inflight: Arc<Inflight>,
    execution: ExecutionId,
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        let mut map = self
            .inflight
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = map.get_mut(&self.execution) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.execution);
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// The proxy's metrics (SPEC §13 "tokens").
#[derive(Debug, Clone)]
pub struct LlmMetrics {
    tokens_charged: Counter,
    calls: Family<StatusLabels, Counter>,
    refusals: Family<CodeLabels, Counter>,
    overhead: Histogram,
}

impl Default for LlmMetrics {
    fn default() -> Self {
        LlmMetrics {
            tokens_charged: Counter::default(),
            calls: Family::default(),
            refusals: Family::default(),
            overhead: Histogram::new(exponential_buckets(0.000_025, 2.0, 14)),
        }
    }
}

impl LlmMetrics {
    /// Adds every metric to `registry` (prefix `agora_llm_`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("llm");
        r.register(
            "tokens_charged",
            "LLM tokens charged to executions",
            self.tokens_charged.clone(),
        );
        r.register("calls", "LLM calls settled, by status", self.calls.clone());
        r.register(
            "refusals",
            "LLM calls refused before reaching the upstream, by code",
            self.refusals.clone(),
        );
        r.register(
            "overhead_seconds",
            "Time the proxy adds to a call, outside the upstream",
            self.overhead.clone(),
        );
    }

    pub fn settled(&self, status: &str, charged: i64, overhead_seconds: f64) {
        self.tokens_charged
            .inc_by(u64::try_from(charged).unwrap_or(0));
        self.calls
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc();
        self.overhead.observe(overhead_seconds);
    }

    pub fn refused(&self, code: &str) {
        self.refusals
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permits_bound_calls_per_execution_and_come_back() {
        let config = LlmConfig {
            max_concurrent_per_execution: 2,
            ..LlmConfig::default()
        };
        let p = LlmProxy::with_upstream(&config, None);
        let a = p.permit(ExecutionId(1)).unwrap();
        let _b = p.permit(ExecutionId(1)).unwrap();
        let e = p.permit(ExecutionId(1)).unwrap_err();
        assert_eq!((e.status.as_u16(), e.retry_after), (429, Some(1)));
        assert!(
            p.permit(ExecutionId(2)).is_ok(),
            "another execution has its own"
        );
        drop(a);
        assert!(p.permit(ExecutionId(1)).is_ok());
        assert_eq!(p.upstream().unwrap_err().code, "no_upstream");
    }
}
