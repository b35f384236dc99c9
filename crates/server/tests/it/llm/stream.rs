//! Streams: passed through event by event and byte for byte (minus the usage
//! chunk the client did not ask for), not buffered, `[DONE]` kept; a client that
//! leaves mid-stream is still charged; an upstream that dies mid-stream is
//! charged an estimate, flagged.

use super::{request, Llm};
use crate::contract;
use crate::harness::TestStore;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};
use std::time::Duration;

contract!(
    a_stream_is_not_buffered,
    a_client_that_leaves_mid_stream_is_charged_and_leaves_no_hold,
    an_upstream_that_dies_mid_stream_is_charged_an_estimate,
);

fn stream_request(mock: Value, include_usage: Option<bool>) -> Value {
    let mut body = request(mock);
    body["stream"] = json!(true);
    if let Some(u) = include_usage {
        body["stream_options"] = json!({"include_usage": u});
    }
    body
}

async fn a_stream_is_not_buffered(t: TestStore) {
    let llm = Llm::start(t, |_| {}).await;
    let a = llm.api.agent(10).await;
    let mut r = llm
        .chat(
            &a.token,
            stream_request(json!({"gate": true, "content": ["a", "b"]}), None),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The upstream waits at its gate after the first event: the client has it
    // before the gate opens, or this times out.
    let first = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .expect("the first event arrives while the upstream is still generating")
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"data: {"), "{first:?}");
    llm.mock.open_gate();
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let text = String::from_utf8(rest).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        !text.contains("\"usage\":{"),
        "the usage chunk is hidden: {text}"
    );
    let q = llm.settled(a.execution).await;
    assert_eq!(q.used, 10 + 2);
}

async fn a_client_that_leaves_mid_stream_is_charged_and_leaves_no_hold(t: TestStore) {
    let llm = Llm::start(t, |_| {}).await;
    let a = llm.api.agent(10).await;
    let pieces: Vec<String> = (0..60).map(|i| format!("w{i} ")).collect();
    let mut r = llm
        .chat(
            &a.token,
            stream_request(
                json!({"content": pieces, "delay_ms": 5, "prompt_tokens": 9}),
                None,
            ),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.chunk().await.unwrap().unwrap();
    r.chunk().await.unwrap().unwrap();
    drop(r);
    let q = llm.settled(a.execution).await;
    let rec = &llm.calls_of(a.execution).await[0];
    assert!(q.used > 0 && rec.charged > 0, "{rec:?}");
    // The proxy drained the upstream to its usage: the real count, not a guess.
    assert_eq!(rec.source.as_deref(), Some("upstream"), "{rec:?}");
    assert_eq!(rec.charged, 9 + 60);
    assert_eq!(rec.status, "client_closed");
    assert_eq!(q.used, rec.charged);
}

async fn an_upstream_that_dies_mid_stream_is_charged_an_estimate(t: TestStore) {
    let llm = Llm::start(t, |_| {}).await;
    let a = llm.api.agent(10).await;
    let r = llm
        .chat(
            &a.token,
            stream_request(
                json!({"content": ["one", "two", "three"], "die_after": 3}),
                None,
            ),
        )
        .await;
    assert_eq!(r.status(), 200);
    let text = String::from_utf8(r.bytes().await.map(|b| b.to_vec()).unwrap_or_default()).unwrap();
    assert!(
        text.contains("\"upstream_error\""),
        "the fault is told as a last event: {text}"
    );
    let q = llm.settled(a.execution).await;
    let rec = &llm.calls_of(a.execution).await[0];
    assert_eq!(rec.source.as_deref(), Some("estimated"));
    assert_eq!(rec.status, "upstream_error");
    assert!(rec.charged > 0 && rec.charged <= rec.held);
    assert_eq!(q.used, rec.charged);
}

/// An OpenAI-style stream with a usage chunk: `events` content chunks.
fn upstream_stream(events: usize) -> (String, String) {
    let mut text = String::new();
    for i in 0..events {
        let c = json!({"id": "c", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": format!("tök{i} ✓\n")}}], "usage": null});
        text.push_str(&format!("data: {c}\n\n"));
    }
    let usage = format!(
        "data: {}\n\n",
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": events, "total_tokens": 4 + events}})
    );
    text.push_str(&usage);
    text.push_str("data: [DONE]\n\n");
    (text, usage)
}

/// Client bytes = upstream bytes minus the hidden usage chunk, whatever the
/// upstream's chunk boundaries (cut at random points, each piece its own write).
#[test]
fn stream_bytes_survive_any_chunking() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (llm, agent) = rt.block_on(async {
        let llm = Llm::start(crate::harness::sqlite().await, |_| {}).await;
        let agent = llm.agent_with_tokens(10_000.0).await;
        (llm, agent)
    });
    let strategy = (
        1usize..6,
        proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |(events, cuts, client_asks)| {
            let (text, usage) = upstream_stream(events);
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len())).collect();
            points.sort_unstable();
            points.dedup();
            // Cut anywhere, even inside a UTF-8 character: the mock sends bytes.
            let mut pieces = Vec::new();
            let mut at = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                pieces.push(bytes[at..p].to_vec());
                at = p;
            }
            let raw: Vec<Value> = pieces.iter().map(|p| json!(p)).collect();
            let got = rt.block_on(async {
                let body = stream_request(json!({"raw": raw}), client_asks.then_some(true));
                let r = llm.chat(&agent.token, body).await;
                assert_eq!(r.status(), 200);
                let got = r.bytes().await.unwrap().to_vec();
                llm.settled(agent.execution).await;
                got
            });
            let want = if client_asks {
                text.clone()
            } else {
                text.replace(&usage, "")
            };
            prop_assert_eq!(String::from_utf8_lossy(&got), want);
            Ok(())
        })
        .unwrap();
    let used = rt.block_on(llm.quota(agent.execution)).used;
    assert_eq!(
        used as usize,
        llm.mock.reported(),
        "every call charged its reported usage"
    );
}
