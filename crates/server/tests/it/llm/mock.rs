//! A real OpenAI-shaped upstream for the proxy's tests, served over HTTP on a
//! random loopback port. Each request says how it wants to be answered in a
//! `mock` object of its body (the proxy passes unknown fields through), so tests
//! can mix behaviours in one burst: content pieces, reported usage or none,
//! delays, an error status, death mid-stream, exact raw stream bytes, and a gate
//! that holds a stream after its first event until the test opens it.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub body: Value,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// Usage the mock reported, summed over every call.
    reported: AtomicUsize,
    gate: Notify,
}

/// The running mock.
pub struct Mock {
    /// The base URL, ending in `/v1`.
    pub url: String,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Mock {
    pub async fn start() -> Mock {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/tokenize", post(tokenize))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .ok();
        });
        Mock {
            url: format!("http://{addr}/v1"),
            shared,
            _stop: stop,
        }
    }

    /// Every chat request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Chat requests received so far.
    pub fn calls(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    /// Σ (prompt + completion) tokens the mock reported.
    pub fn reported(&self) -> usize {
        self.shared.reported.load(Ordering::SeqCst)
    }

    /// Lets every gated stream go on.
    pub fn open_gate(&self) {
        self.shared.gate.notify_waiters();
    }
}

fn cap(body: &Value) -> Option<u64> {
    ["max_tokens", "max_completion_tokens"]
        .iter()
        .filter_map(|k| body[*k].as_u64())
        .min()
}

/// The content pieces of an answer: the `mock.content` list (or two words), or
/// with `mock.fill` one piece per allowed token; never more than the output cap.
fn pieces(body: &Value) -> Vec<String> {
    let m = &body["mock"];
    let cap = cap(body).unwrap_or(u64::MAX) as usize;
    let mut pieces: Vec<String> = if m["fill"].as_bool() == Some(true) {
        (0..cap.min(10_000)).map(|i| format!("t{i} ")).collect()
    } else {
        match m["content"].as_array() {
            Some(a) => a
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect(),
            None => vec!["Hello".into(), " world".into()],
        }
    };
    pieces.truncate(cap);
    pieces
}

async fn chat(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    s.seen.lock().unwrap().push(Seen {
        body: body.clone(),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("").to_string()),
    });
    let m = body["mock"].clone();
    if let Some(status) = m["status"].as_u64() {
        // A careless upstream that echoes the credentials it was given.
        let echoed = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        return (
            StatusCode::from_u16(status as u16).unwrap(),
            Json(json!({"error": {"message": format!("refused; you sent {echoed}"), "type": "x"}})),
        )
            .into_response();
    }
    if let Some(ms) = m["first_byte_delay_ms"].as_u64() {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let prompt_tokens = m["prompt_tokens"].as_u64().unwrap_or(10) as usize;
    let report = m["usage"].as_bool() != Some(false);
    if let Some(raw) = m["raw"].as_array() {
        return raw_stream(&s, raw, m["piece_delay_ms"].as_u64().unwrap_or(1));
    }
    let pieces = pieces(&body);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": pieces.len(),
                       "total_tokens": prompt_tokens + pieces.len()});
    if body["stream"].as_bool() != Some(true) {
        if report {
            s.reported
                .fetch_add(prompt_tokens + pieces.len(), Ordering::SeqCst);
        }
        let mut answer = json!({"id": "cmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": pieces.concat()}}]});
        if report {
            answer["usage"] = usage;
        }
        return Json(answer).into_response();
    }
    let wants_usage = report && body["stream_options"]["include_usage"].as_bool() == Some(true);
    let die_after = m["die_after"].as_u64().map(|n| n as usize);
    let delay = Duration::from_millis(m["delay_ms"].as_u64().unwrap_or(0));
    let gated = m["gate"].as_bool() == Some(true);
    let total = prompt_tokens + pieces.len();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let shared = s.clone();
    tokio::spawn(async move {
        let chunk = |delta: Value, usage: Value| {
            let c = json!({"id": "cmpl-1", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": null}], "usage": usage});
            Bytes::from(format!("data: {c}\n\n"))
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        events.extend(
            pieces
                .iter()
                .map(|p| chunk(json!({"content": p}), Value::Null)),
        );
        for (i, e) in events.into_iter().enumerate() {
            if die_after == Some(i) {
                let _ = tx
                    .send(Err(std::io::Error::other("the upstream died")))
                    .await;
                return;
            }
            // The client may have gone; a real server generates on regardless.
            let _ = tx.send(Ok(e)).await;
            if gated && i == 0 {
                shared.gate.notified().await;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        if wants_usage {
            shared.reported.fetch_add(total, Ordering::SeqCst);
            let u = json!({"id": "cmpl-1", "object": "chat.completion.chunk", "choices": [],
                           "usage": usage});
            let _ = tx.send(Ok(Bytes::from(format!("data: {u}\n\n")))).await;
        }
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Sends the given pieces as they are, one write each, a moment apart.
fn raw_stream(s: &Arc<Shared>, raw: &[Value], delay_ms: u64) -> Response {
    // Each piece is a list of byte values, so a cut may fall inside a character.
    let pieces: Vec<Bytes> = raw
        .iter()
        .map(|p| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
                .collect::<Vec<u8>>()
                .into()
        })
        .collect();
    let text: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
    if let Some(total) = String::from_utf8_lossy(&text)
        .split("\"total_tokens\":")
        .nth(1)
        .and_then(|t| t.split(['}', ',']).next())
        .and_then(|t| t.trim().parse::<usize>().ok())
    {
        s.reported.fetch_add(total, Ordering::SeqCst);
    }
    let stream = futures_util::stream::iter(pieces).then(move |p| async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        Ok::<_, std::io::Error>(p)
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

use futures_util::StreamExt as _;

async fn models() -> Json<Value> {
    Json(json!({"object": "list", "data": [
        {"id": "mock-model", "object": "model"}, {"id": "other-model", "object": "model"}]}))
}

/// vLLM's tokenize: a fixed count, so tests can tell it was used.
async fn tokenize(Json(body): Json<Value>) -> Json<Value> {
    assert!(body["messages"].is_array());
    Json(json!({"count": 7, "max_model_len": 4096, "tokens": [1, 2, 3, 4, 5, 6, 7]}))
}
