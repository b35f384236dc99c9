//! A span per System Service request (SPEC §13): `request` (a fresh id) and
//! `component = "api"` from the start, then `agent` and `execution` once the
//! execution token is known ([`RequestTrace::identify`], called by the `Caller`
//! extractor), so every line logged while answering carries them. Requests on an
//! execution's own Unix socket also run inside that execution's span
//! ([`within`]). One line per request closes it ([`access`]): at info for agents'
//! requests, the activity worth keeping, at debug for the operator's and the
//! console's polling.

use super::auth::Caller;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::field::Empty;
use tracing::{Instrument, Span};

/// The request's span and who it turned out to be from; in the request's extensions.
#[derive(Debug)]
pub struct RequestTrace {
    span: Span,
    caller: OnceLock<Caller>,
}

impl RequestTrace {
    /// Records the agent and execution the request's token names.
    pub fn identify(&self, caller: Caller) {
        if self.caller.set(caller).is_ok() {
            self.span.record("agent", caller.agent.0);
            self.span.record("execution", caller.execution.0);
        }
    }

    fn caller(&self) -> Option<Caller> {
        self.caller.get().copied()
    }
}

/// A request id: unique within the process, and unlikely to repeat across restarts
/// (the counter starts at a random point).
fn next_id() -> String {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        // Room below the top for any number of requests before it wraps.
        AtomicU64::new(u64::from_le_bytes(seed) >> 8)
    });
    format!("{:014x}", next.fetch_add(1, Ordering::Relaxed))
}

/// The outermost middleware: opens the request's span and runs the rest in it.
pub async fn request(mut req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        component = "api",
        request = %next_id(),
        agent = Empty,
        execution = Empty,
    );
    req.extensions_mut().insert(Arc::new(RequestTrace {
        span: span.clone(),
        caller: OnceLock::new(),
    }));
    next.run(req).instrument(span).await
}

/// `router` with every request run inside `span` (an execution's, for its socket).
pub fn within(router: Router, span: Span) -> Router {
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        next.run(req).instrument(span.clone())
    }))
}

/// The line that closes a request.
pub fn access(
    trace: Option<&RequestTrace>,
    method: &str,
    route: &str,
    status: u16,
    elapsed: Duration,
) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if trace.and_then(RequestTrace::caller).is_some() {
        tracing::info!(component = "api", method, route, status, micros, "request");
    } else {
        tracing::debug!(component = "api", method, route, status, micros, "request");
    }
}
