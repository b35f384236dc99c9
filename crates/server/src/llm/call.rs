//! One proxied call, from hold to settlement, in a task of its own: the client's
//! request handler only waits for the answer's head, so a client that goes away
//! (which drops the handler) cannot interrupt the hold, the upstream call or the
//! settlement. A streamed answer is pumped from the upstream to the client event
//! by event; if the client leaves, the rest is drained so the real usage can be
//! charged. The call is settled exactly once, before its answer ends.

use super::config::LlmConfig;
use super::error::LlmError;
use super::proxy::InflightPermit;
use super::request::{Admission, ChatRequest, Plan};
use super::sse::SseFilter;
use super::usage::{Charge, Observed, Usage};
use crate::api::{ApiError, ApiState, Caller};
use crate::store::{HoldOutcome, LlmCallStatus, LlmSettlement, NewLlmCall};
use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Names the output cap the proxy set when it differs from the client's.
pub const CLAMPED_HEADER: HeaderName = HeaderName::from_static("x-agora-max-tokens-clamped");
/// The id of the call's LlmCall record.
pub const CALL_HEADER: HeaderName = HeaderName::from_static("x-agora-llm-call");

/// Events buffered between the upstream and a slow client.
const CLIENT_BUFFER: usize = 32;
/// Attempts at writing a settlement before the hold is left to expire.
const SETTLE_ATTEMPTS: u32 = 3;

/// Everything a call needs once the request is known to be acceptable.
pub struct Call {
    pub state: ApiState,
    pub caller: Caller,
    pub request: ChatRequest,
    /// When the proxy received the request.
    pub received: Instant,
    pub permit: InflightPermit,
}

/// Starts the call; the receiver gets the answer's head (and, for a stream, its
/// body as it comes).
pub fn spawn(call: Call) -> oneshot::Receiver<Response> {
    let (reply, rx) = oneshot::channel();
    // In the request's span: the settlement's lines keep the request's ids.
    tokio::spawn(run(call, reply).in_current_span());
    rx
}

/// What the settlement of an admitted call needs.
struct Held {
    state: ApiState,
    id: i64,
    execution: i64,
    model: String,
    prompt: u64,
    admission: Admission,
    n: u64,
    received: Instant,
    /// Time in the proxy before the upstream was asked.
    before_upstream: Duration,
    /// The call's slot among the execution's calls in flight. Given back the moment
    /// the call is settled, which is before its answer ends: a client that has read
    /// the end may call again at once without a spurious 429.
    permit: Option<InflightPermit>,
}

async fn run(call: Call, reply: oneshot::Sender<Response>) {
    let Call {
        state,
        caller,
        request,
        received,
        permit,
    } = call;
    // A refused call gives its slot back before the refusal is sent, as a settled
    // one does before its answer ends.
    let upstream = match state.llm.upstream() {
        Ok(u) => u,
        Err(e) => {
            drop(permit);
            return refuse(&state, reply, e);
        }
    };
    let config = &state.llm.config;
    let prompt = match upstream.count_prompt(&request).await {
        Some(n) => n,
        None => request.prompt_bound(config),
    };
    let plan = Plan {
        prompt,
        n: request.n,
        requested_max: request.requested_max,
        default_max: config.default_max_tokens,
    };
    let mut held = match admit(&state, caller, &request, plan).await {
        Ok((id, admission)) => Held {
            state: state.clone(),
            id,
            execution: caller.execution.0,
            model: request.model.clone(),
            prompt,
            admission,
            n: request.n,
            received,
            before_upstream: received.elapsed(),
            permit: Some(permit),
        },
        Err(e) => {
            drop(permit);
            return refuse(&state, reply, e);
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(CALL_HEADER, HeaderValue::from(held.id));
    if held.admission.clamped {
        headers.insert(CLAMPED_HEADER, HeaderValue::from(held.admission.max_tokens));
    }
    let body = request.upstream_body(held.admission.max_tokens, config.max_tokens_field);
    let response = match upstream.chat(body).await {
        Ok(r) => upstream.check(r).await,
        Err(e) => Err(e),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            held.settle(
                Charge::nothing(),
                LlmCallStatus::UpstreamError,
                e.status,
                None,
            )
            .await;
            let mut answer = e.into_response();
            answer.headers_mut().extend(headers);
            let _ = reply.send(answer);
            return;
        }
    };
    let first_byte = received.elapsed();
    if request.stream {
        stream(held, response, headers, !request.client_wants_usage, reply).await;
    } else {
        whole(held, response, headers, first_byte, reply).await;
    }
}

fn refuse(state: &ApiState, reply: oneshot::Sender<Response>, e: LlmError) {
    state.llm.metrics.refused(e.code);
    let _ = reply.send(e.into_response());
}

/// Holds the call's tokens; its LlmCall id and admission, or the refusal.
async fn admit(
    state: &ApiState,
    caller: Caller,
    request: &ChatRequest,
    plan: Plan,
) -> Result<(i64, Admission), LlmError> {
    let config = &state.llm.config;
    let outcome = state
        .store
        .hold_llm_tokens(
            NewLlmCall {
                execution: caller.execution,
                model: request.model.clone(),
                stream: request.stream,
                hold_ttl: config.hold_ttl(),
            },
            move |q| {
                plan.admit(u64::try_from(q.remaining()).unwrap_or(0))
                    .and_then(|a| i64::try_from(a.hold).ok())
            },
        )
        .await
        .map_err(|e| LlmError::from(ApiError::from(e)))?;
    let quota = match outcome {
        HoldOutcome::Held { call, quota, .. } => {
            match plan.admit(u64::try_from(quota.remaining()).unwrap_or(0)) {
                Some(a) => return Ok((call, a)),
                // The store held what `plan` said for this quota, so this cannot
                // happen; refusing would leave the hold to expire, settle it.
                None => {
                    return Err(LlmError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "admission disagreed with itself",
                    ))
                }
            }
        }
        HoldOutcome::Refused { quota } => quota,
        HoldOutcome::NotRunning => {
            return Err(LlmError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token's execution has ended",
            ))
        }
    };
    let remaining = quota.remaining();
    Err(LlmError::new(
        StatusCode::PAYMENT_REQUIRED,
        "insufficient_quota",
        format!(
            "this execution's token quota cannot fit the call: {remaining} tokens remain, the \
             prompt needs {} and each of {} choices at least 1 more",
            plan.prompt, plan.n
        ),
    )
    .with_details(json!({
        "remaining": remaining,
        "needed": plan.minimum(),
        "prompt_tokens": plan.prompt,
        "tokens": quota.tokens,
        "used": quota.used,
        "held": quota.held,
    })))
}

impl Held {
    /// The most the answer can contain: `n × max_tokens`.
    fn output_cap(&self) -> u64 {
        self.n.saturating_mul(self.admission.max_tokens)
    }

    /// Settles the call once; a store failure is retried, then left to the
    /// hold's expiry (which charges the whole hold, so never too little). Then
    /// gives the call's slot back.
    async fn settle(
        &mut self,
        charge: Charge,
        status: LlmCallStatus,
        http_status: StatusCode,
        first_token: Option<Duration>,
    ) {
        let after = self.received.elapsed();
        let overhead = self.before_upstream;
        if u64::try_from(charge.total()).unwrap_or(0) > self.admission.hold {
            // The quota still holds (the store charges at most the hold); the
            // prompt's bound or the upstream's cap did not, see docs/llm.md.
            tracing::warn!(component = "llm_proxy", call = self.id, model = %self.model,
                used = charge.total(), held = self.admission.hold,
                "the upstream reported more tokens than were held; charging the hold");
        }
        let settlement = LlmSettlement {
            prompt_tokens: Some(charge.prompt_tokens),
            completion_tokens: Some(charge.completion_tokens),
            source: charge.source,
            charge: charge.total(),
            status,
            http_status: Some(i64::from(http_status.as_u16())),
            latency_ms: Some(after.as_millis() as i64),
            first_token_ms: first_token.map(|d| d.as_millis() as i64),
            overhead_us: Some(overhead.as_micros() as i64),
        };
        for attempt in 1..=SETTLE_ATTEMPTS {
            match self
                .state
                .store
                .settle_llm_call(self.id, settlement.clone())
                .await
            {
                Ok(charged) => {
                    let charged = charged.unwrap_or(0);
                    self.state.llm.metrics.settled(
                        status.as_str(),
                        charged,
                        overhead.as_secs_f64(),
                    );
                    tracing::info!(
                        component = "llm_proxy",
                        execution = self.execution,
                        call = self.id,
                        model = %self.model,
                        status = status.as_str(),
                        source = charge.source.as_str(),
                        prompt_tokens = charge.prompt_tokens,
                        completion_tokens = charge.completion_tokens,
                        held = self.admission.hold,
                        charged,
                        latency_ms = after.as_millis() as u64,
                        "llm call settled"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(component = "llm_proxy", call = self.id, attempt, error = %e, "cannot settle an LLM call");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
            }
        }
        self.permit = None;
    }
}

#[derive(Deserialize)]
struct WholeView {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Vec<ChoiceView>,
}

#[derive(Deserialize)]
struct ChoiceView {
    #[serde(default)]
    message: Option<MessageView>,
}

#[derive(Deserialize)]
struct MessageView {
    #[serde(default)]
    content: Option<String>,
}

/// Reads a whole (non-streamed) answer, settles, then answers the client with
/// the upstream's bytes as they are.
async fn whole(
    mut held: Held,
    mut response: reqwest::Response,
    mut headers: HeaderMap,
    first_byte: Duration,
    reply: oneshot::Sender<Response>,
) {
    let config: &LlmConfig = &held.state.llm.config;
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    let mut body = Vec::new();
    let fault = loop {
        match next_chunk(&held, &mut response).await {
            Err(e) => break Some(e),
            Ok(None) => break None,
            Ok(Some(bytes)) => {
                if body.len() + bytes.len() > config.max_body_bytes {
                    break Some(LlmError::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        "the upstream's answer is larger than [llm] max_body_bytes",
                    ));
                }
                body.extend_from_slice(&bytes);
            }
        }
    };
    let view: Option<WholeView> = serde_json::from_slice(&body).ok();
    let observed = view.as_ref().map_or(Observed::default(), |v| Observed {
        chunks: v.choices.len() as u64,
        content_bytes: v
            .choices
            .iter()
            .filter_map(|c| c.message.as_ref()?.content.as_ref())
            .map(|c| c.len() as u64)
            .sum(),
    });
    let charge = Charge::of(
        view.and_then(|v| v.usage),
        observed,
        held.prompt,
        held.output_cap(),
    );
    if let Some(e) = fault {
        held.settle(
            charge,
            LlmCallStatus::UpstreamError,
            e.status,
            Some(first_byte),
        )
        .await;
        let mut answer = e.into_response();
        answer.headers_mut().extend(headers);
        let _ = reply.send(answer);
        return;
    }
    held.settle(
        charge,
        LlmCallStatus::Completed,
        StatusCode::OK,
        Some(first_byte),
    )
    .await;
    headers.insert(
        CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    let _ = reply.send((StatusCode::OK, headers, body).into_response());
}

/// Pumps a streamed answer to the client event by event, settles, then ends it.
async fn stream(
    mut held: Held,
    mut response: reqwest::Response,
    mut headers: HeaderMap,
    hide_usage: bool,
    reply: oneshot::Sender<Response>,
) {
    let state = held.state.clone();
    let config: &LlmConfig = &state.llm.config;
    let (tx, rx) = mpsc::channel::<Bytes>(CLIENT_BUFFER);
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    headers.insert(
        CONTENT_TYPE,
        response
            .headers()
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("text/event-stream")),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let mut client = reply
        .send((StatusCode::OK, headers, body).into_response())
        .ok()
        .map(|_| tx);
    let mut filter = SseFilter::new(hide_usage, config.max_sse_line_bytes);
    let mut out = Vec::new();
    let mut first_token = None;
    let fault = loop {
        let bytes = match next_chunk(&held, &mut response).await {
            Err(e) => break Some(e),
            Ok(None) => break None,
            Ok(Some(bytes)) => bytes,
        };
        out.clear();
        if filter.push(&bytes, &mut out).is_err() {
            break Some(LlmError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "the upstream sent an event line longer than [llm] max_sse_line_bytes",
            ));
        }
        if first_token.is_none() && filter.observed.chunks > 0 {
            first_token = Some(held.received.elapsed());
        }
        forward(&mut client, &out, config.idle_timeout()).await;
    };
    out.clear();
    filter.finish(&mut out);
    forward(&mut client, &out, config.idle_timeout()).await;
    let status = match (&fault, &client) {
        (Some(_), _) => LlmCallStatus::UpstreamError,
        (None, None) => LlmCallStatus::ClientClosed,
        (None, Some(_)) => LlmCallStatus::Completed,
    };
    let charge = Charge::of(
        filter.usage,
        filter.observed,
        held.prompt,
        held.output_cap(),
    );
    held.settle(charge, status, StatusCode::OK, first_token)
        .await;
    if let Some(e) = fault {
        // The head (200) is gone: the fault is told as an event, as OpenAI does.
        let event = format!("data: {}\n\n", e.body());
        forward(&mut client, event.as_bytes(), config.idle_timeout()).await;
        tracing::warn!(component = "llm_proxy", call = held.id, code = e.code, message = %e.message, "stream ended by an upstream fault");
    }
}

/// Sends bytes to the client unless it has gone (or stopped reading for longer
/// than the idle timeout, which counts as gone); then the rest is only drained.
async fn forward(client: &mut Option<mpsc::Sender<Bytes>>, bytes: &[u8], patience: Duration) {
    if bytes.is_empty() {
        return;
    }
    if let Some(tx) = client {
        let sent = tokio::time::timeout(patience, tx.send(Bytes::copy_from_slice(bytes))).await;
        if !matches!(sent, Ok(Ok(()))) {
            *client = None;
        }
    }
}

/// The upstream's next piece of body within the idle timeout; `Ok(None)` at its end.
async fn next_chunk(
    held: &Held,
    response: &mut reqwest::Response,
) -> Result<Option<Bytes>, LlmError> {
    let idle = held.state.llm.config.idle_timeout();
    match tokio::time::timeout(idle, response.chunk()).await {
        Err(_) => Err(idle_timeout()),
        Ok(Err(e)) => Err(held
            .state
            .llm
            .upstream()
            .map_or_else(|e| e, |u| u.broken(&e))),
        Ok(Ok(chunk)) => Ok(chunk),
    }
}

fn idle_timeout() -> LlmError {
    LlmError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        "the upstream went silent for longer than [llm] idle_timeout_ms",
    )
}
