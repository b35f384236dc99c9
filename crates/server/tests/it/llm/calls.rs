//! Single calls: forwarding, the charge, the output cap clamped, models, and
//! every refusal in OpenAI's shape (bad token, model, body, quota, concurrency,
//! no upstream).

use super::{request, Llm, KEY};
use crate::contract;
use crate::harness::TestStore;
use agora_core::lifecycle::ExecutionStatus;
use agora_server::llm::TokenizeMode;
use serde_json::{json, Value};

contract!(
    a_call_is_forwarded_and_charged_its_reported_usage,
    missing_or_oversized_max_tokens_reaches_the_upstream_clamped,
    a_tokenizing_upstream_gives_an_exact_prompt_hold,
    models_are_listed_through_the_allow_list,
    refusals_are_openai_shaped_and_never_reach_the_upstream,
    expired_or_foreign_tokens_are_refused,
);

/// Asserts an error answer in the `/v1` shape (OpenAI's fields and agora's).
async fn expect_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body:#}");
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body:#}");
    assert!(e["message"].is_string() && e["type"].is_string() && e["details"].is_object());
    body
}

async fn a_call_is_forwarded_and_charged_its_reported_usage(t: TestStore) {
    let llm = Llm::start(t, |_| {}).await;
    let a = llm.api.agent(10).await;
    let r = llm
        .chat(
            &a.token,
            request(json!({"content": ["Hi", " there", "!"], "prompt_tokens": 12})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let call: i64 = r.headers()["x-agora-llm-call"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hi there!");
    assert_eq!(body["usage"]["total_tokens"], 15);
    // Charged before the answer was sent: no waiting needed.
    let q = llm.quota(a.execution).await;
    assert_eq!((q.used, q.held), (15, 0));
    let records = llm.calls_of(a.execution).await;
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.id, call);
    assert_eq!(
        (rec.prompt_tokens, rec.completion_tokens),
        (Some(12), Some(3))
    );
    assert_eq!((rec.charged, rec.status.as_str()), (15, "completed"));
    assert_eq!(rec.source.as_deref(), Some("upstream"));
    assert_eq!(rec.model, "mock-model");
    assert!(rec.latency_ms.is_some() && rec.overhead_us.is_some());
    // The agent's own view agrees.
    let ctx = llm.api.get("/system/context", &a.token).await.expect(200);
    assert_eq!(ctx["tokens_used"], 15);
    let tokens = ctx["bundle"]["tokens"].as_f64().unwrap() as i64;
    assert_eq!(ctx["tokens_left"], tokens - 15);
    // While a call is in flight, what it holds is not left for another.
    let slow = {
        let http = llm.api.http.clone();
        let url = format!("{}/v1/chat/completions", llm.api.base);
        let body = request(json!({"content": ["x"], "first_byte_delay_ms": 600}));
        let token = a.token.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let mut held = 0;
    for _ in 0..50 {
        held = llm.quota(a.execution).await.held;
        if held > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(held > 0, "the slow call holds tokens");
    let ctx = llm.api.get("/system/context", &a.token).await.expect(200);
    assert_eq!(ctx["tokens_left"], tokens - 15 - held);
    assert_eq!(slow.await.unwrap(), 200);
    // The upstream got the host's key and never the agent's token.
    let seen = llm.mock.seen();
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert!(!seen[0].body.to_string().contains(&a.token));
}

async fn missing_or_oversized_max_tokens_reaches_the_upstream_clamped(t: TestStore) {
    let llm = Llm::start(t, |_| {}).await;
    // 1000 tokens in the bundle.
    let a = llm.api.agent(10).await;
    let mut caps = Vec::new();
    for extra in [
        json!({}),
        json!({"max_tokens": 100_000}),
        json!({"max_completion_tokens": 99_999}),
    ] {
        let mut body = request(json!({"prompt_tokens": 1}));
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = llm.chat(&a.token, body).await;
        assert_eq!(r.status(), 200);
        let header: u64 = r.headers()["x-agora-max-tokens-clamped"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        caps.push(header);
    }
    let seen = llm.mock.seen();
    let records = llm.calls_of(a.execution).await;
    for (i, cap) in caps.iter().enumerate() {
        let body = &seen[i].body;
        let sent = body["max_tokens"]
            .as_u64()
            .or(body["max_completion_tokens"].as_u64())
            .unwrap();
        assert_eq!(sent, *cap, "the upstream saw the announced cap");
        assert!(*cap < 1000, "clamped under the bundle's tokens");
        // The hold was the prompt's bound plus that cap, and fitted.
        assert!(records[i].held as u64 > *cap && records[i].held <= 1000);
    }
    assert!(
        seen[2].body.get("max_tokens").is_none(),
        "no second cap inserted"
    );
    // A cap that fits passes unchanged and unannounced.
    let mut body = request(json!({}));
    body["max_tokens"] = json!(5);
    let r = llm.chat(&a.token, body).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-agora-max-tokens-clamped").is_none());
    assert_eq!(llm.mock.seen()[3].body["max_tokens"], 5);
}

async fn a_tokenizing_upstream_gives_an_exact_prompt_hold(t: TestStore) {
    let llm = Llm::start(t, |c| c.tokenize = TokenizeMode::Vllm).await;
    let a = llm.api.agent(10).await;
    let mut body = request(json!({}));
    body["max_tokens"] = json!(20);
    assert_eq!(llm.chat(&a.token, body).await.status(), 200);
    // The mock's tokenizer counts 7.
    assert_eq!(llm.calls_of(a.execution).await[0].held, 7 + 20);
}

async fn models_are_listed_through_the_allow_list(t: TestStore) {
    let llm = Llm::start(t, |c| c.models = vec!["mock-model".into()]).await;
    let a = llm.api.agent(10).await;
    let list = llm.api.get("/v1/models", &a.token).await.expect(200);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock-model"]);
    let mut body = request(json!({}));
    body["model"] = json!("other-model");
    let e = expect_error(llm.chat(&a.token, body).await, 403, "model_not_allowed").await;
    assert_eq!(e["error"]["type"], "permission_error");
    assert_eq!(llm.mock.calls(), 0);
}

async fn refusals_are_openai_shaped_and_never_reach_the_upstream(t: TestStore) {
    let llm = Llm::start(t, |c| {
        c.max_concurrent_per_execution = 1;
        c.max_body_bytes = 64 * 1024;
    })
    .await;
    let a = llm.api.agent(10).await;
    let url = format!("{}/v1/chat/completions", llm.api.base);
    for (body, code) in [
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "invalid_request",
        ),
        (json!({"model": "m", "messages": "x"}), "invalid_request"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}),
            "invalid_request",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "invalid_request",
        ),
        (json!([1, 2]), "invalid_request"),
    ] {
        expect_error(llm.chat(&a.token, body).await, 400, code).await;
    }
    let r = llm
        .api
        .http
        .post(&url)
        .bearer_auth(&a.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_json").await;
    let big = "x".repeat(100 * 1024);
    let r = llm.chat(&a.token, request(json!({"pad": big}))).await;
    expect_error(r, 413, "body_too_large").await;
    let r = llm
        .api
        .http
        .get(&url)
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    expect_error(r, 405, "method_not_allowed").await;
    // A prompt larger than the whole bundle: 402 before the upstream.
    let long = "word ".repeat(400);
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": long}]});
    let e = expect_error(llm.chat(&a.token, body).await, 402, "insufficient_quota").await;
    assert_eq!(e["error"]["type"], "insufficient_quota");
    assert!(e["error"]["details"]["needed"].as_u64().unwrap() > 1000);
    assert_eq!(e["error"]["details"]["remaining"], 1000);
    // One call in flight (held at the mock's gate) is the limit: 429 with Retry-After.
    let mut body = request(json!({"gate": true}));
    body["stream"] = json!(true);
    let first = llm.chat(&a.token, body).await;
    assert_eq!(first.status(), 200);
    let r = llm.chat(&a.token, request(json!({}))).await;
    assert_eq!(r.headers()["retry-after"], "1");
    expect_error(r, 429, "too_many_concurrent_calls").await;
    llm.mock.open_gate();
    first.bytes().await.unwrap();
    assert_eq!(
        llm.mock.calls(),
        1,
        "only the admitted call reached the upstream"
    );
    // The slot is given back before the answer ends: a client that has read the
    // end calls again at once, and is not refused as still in flight.
    // Upstream faults are the proxy's 502, not the agent's 401.
    let r = llm.chat(&a.token, request(json!({"status": 401}))).await;
    expect_error(r, 502, "upstream_refused_credentials").await;
    let r = llm.chat(&a.token, request(json!({"status": 500}))).await;
    expect_error(r, 502, "upstream_error").await;
    let r = llm.chat(&a.token, request(json!({"status": 400}))).await;
    expect_error(r, 400, "upstream_rejected").await;
    let q = llm.settled(a.execution).await;
    assert_eq!(
        q.used,
        llm.calls_of(a.execution)
            .await
            .iter()
            .map(|c| c.charged)
            .sum::<i64>()
    );

    // Without an upstream every call is 503, also on /v1/models.
    let none = Llm::start(crate::harness::sqlite().await, |c| c.base_url = None).await;
    let b = none.api.agent(10).await;
    expect_error(
        none.chat(&b.token, request(json!({}))).await,
        503,
        "no_upstream",
    )
    .await;
    let r = none.models(&b.token).await;
    expect_error(r, 503, "no_upstream").await;
}

async fn expired_or_foreign_tokens_are_refused(t: TestStore) {
    let llm = Llm::start(t, |_| {}).await;
    let url = format!("{}/v1/chat/completions", llm.api.base);
    let r = llm
        .api
        .http
        .post(&url)
        .json(&request(json!({})))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let e = expect_error(
        llm.chat("agora_x_not-a-real-token", request(json!({})))
            .await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(e["error"]["type"], "authentication_error");
    // The upstream key is not a token here either.
    expect_error(
        llm.chat(KEY, request(json!({}))).await,
        401,
        "invalid_token",
    )
    .await;
    let operator = llm.api.operator.clone();
    expect_error(
        llm.chat(&operator, request(json!({}))).await,
        403,
        "agent_token_required",
    )
    .await;
    let a = llm.api.agent(10).await;
    assert_eq!(llm.chat(&a.token, request(json!({}))).await.status(), 200);
    llm.api
        .t
        .store
        .finish_execution(a.execution, ExecutionStatus::Succeeded, Some(0), None)
        .await
        .unwrap();
    expect_error(
        llm.chat(&a.token, request(json!({}))).await,
        401,
        "invalid_token",
    )
    .await;
    let r = llm.models(&a.token).await;
    expect_error(r, 401, "invalid_token").await;
    assert_eq!(llm.mock.calls(), 1);
}
