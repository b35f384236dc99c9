//! The upstream key stays on the host (SPEC §10): it is sent to the upstream and
//! appears in no answer, header or log line, even when the upstream echoes it
//! back in an error; the agent's token never reaches the upstream.

use super::{request, Llm, KEY};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every log line of the process, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_upstream_key_never_leaves_the_host() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // nextest runs each test in a process of its own; under `cargo test` another
    // test may have set one first, and then the log half proves less.
    let captured = tracing::subscriber::set_global_default(subscriber).is_ok();

    let llm = Llm::start(crate::harness::sqlite().await, |_| {}).await;
    let a = llm.api.agent(10).await;
    let mut texts = Vec::new();
    let mut stream = request(json!({}));
    stream["stream"] = json!(true);
    for body in [
        request(json!({})),
        stream,
        request(json!({"status": 500})),
        request(json!({"status": 400})),
        request(json!({"status": 401})),
        request(json!({"status": 429})),
    ] {
        let r = llm.chat(&a.token, body).await;
        texts.push(format!("{:?}", r.headers()));
        texts.push(String::from_utf8_lossy(&r.bytes().await.unwrap()).into_owned());
    }
    let r = llm.models(&a.token).await;
    texts.push(format!("{:?}", r.headers()));
    texts.push(r.text().await.unwrap());
    llm.settled(a.execution).await;
    // The upstream did echo it: the proxy scrubbed it.
    assert!(
        texts
            .iter()
            .any(|t| t.contains("refused; you sent Bearer ***")),
        "{texts:#?}"
    );
    for t in &texts {
        assert!(!t.contains(KEY), "the key leaked into an answer: {t}");
    }
    for seen in llm.mock.seen() {
        assert_eq!(
            seen.authorization.as_deref(),
            Some(&*format!("Bearer {KEY}"))
        );
        assert!(!seen.body.to_string().contains(&a.token));
    }
    let state_debug = format!("{:?}", llm.api.state);
    assert!(
        !state_debug.contains(KEY),
        "Debug of the state redacts the key"
    );
    if captured {
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(
            log.contains("llm call settled"),
            "the log was captured: {log}"
        );
        assert!(!log.contains(KEY), "the key leaked into the log");
        assert!(
            !log.contains(&a.token),
            "the agent's token leaked into the log"
        );
    }
}
