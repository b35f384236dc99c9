//! Attention endpoints over HTTP (SPEC §7, §11): prompts escrow their bid and need
//! attention in the bundle, the human rates the active prompt exactly once, and
//! bad ratings change nothing.

use super::harness::{TestAgent, TestApi};
use crate::api_contract;
use crate::harness::cr;
use agora_core::{Bundle, BundleSpec, Credits};
use agora_server::config::Config;
use serde_json::{json, Value};

api_contract!(
    prompt_rate_and_read_the_response,
    a_prompt_needs_attention_in_the_bundle,
    bad_prompts_are_refused,
    the_queue_serves_the_highest_bid_first,
    a_prompt_is_rated_once,
    concurrent_ratings_pay_exactly_once,
    bad_scores_are_refused_and_change_nothing,
    human_endpoints_take_only_the_operator_token,
);

async fn submit(api: &TestApi, a: &TestAgent, bid: &str) -> i64 {
    let p = api
        .post(
            "/human/prompt",
            &a.token,
            json!({"content": {"text": "look"}, "bid_amount": bid}),
        )
        .await
        .expect(201);
    p["id"].as_i64().unwrap()
}

fn credits(text: &str) -> Credits {
    text.parse().unwrap()
}

fn rating(prompt: i64, i: i64, u: i64, c: i64) -> Value {
    json!({"prompt_id": prompt, "interesting": i, "useful": u, "understandable": c})
}

async fn prompt_rate_and_read_the_response(api: TestApi) {
    let a = api.agent(50).await;
    let content = json!({"title": "a poem", "lines": ["one", "two"], "n": 2});
    let p = api
        .post(
            "/human/prompt",
            &a.token,
            json!({"content": content, "bid_amount": "5.5"}),
        )
        .await
        .expect(201);
    assert_eq!(p["agent"], a.id.0);
    assert_eq!(p["execution"], a.execution.0);
    assert_eq!(p["content"], content);
    assert_eq!(p["bid_amount"], "5.5");
    // The queue was empty: the prompt is shown at once.
    assert_eq!(p["status"], "active");
    let id = p["id"].as_i64().unwrap();
    assert_eq!(api.t.available(a.id).await, credits("44.5"));

    let q = api.get("/human/queue", &api.operator).await.expect(200);
    assert_eq!(q["active"]["id"], id);
    assert_eq!(q["active"]["content"], content);
    assert_eq!(q["pending"], json!([]));

    let mut r = rating(id, 7, 8, 9);
    r["reason"] = json!("clear and useful");
    let paid = api
        .post("/human/reward", &api.operator, r)
        .await
        .expect(200);
    // Σ score × rate, rates 50 each by default.
    assert_eq!(paid["reward"], "1200");
    assert_eq!(paid["escrow_burned"], "5.5");
    assert_eq!(paid["agent"], a.id.0);
    assert_eq!(paid["prompt"], id);
    assert_eq!(paid["next_active"], Value::Null);
    let b = api.get("/economic/balance", &a.token).await.expect(200);
    assert_eq!(b["balance"], "1244.5");
    assert_eq!(b["held"], "0");

    let rs = api.get("/human/responses", &a.token).await.expect(200);
    assert_eq!(rs.as_array().unwrap().len(), 1);
    assert_eq!(rs[0]["prompt"], id);
    assert_eq!(rs[0]["interesting"], 7);
    assert_eq!(rs[0]["useful"], 8);
    assert_eq!(rs[0]["understandable"], 9);
    assert_eq!(rs[0]["reason"], "clear and useful");
    assert_eq!(rs[0]["credits_awarded"], "1200");
    api.get("/human/responses?limit=0", &a.token)
        .await
        .expect_error(400, "invalid_query");
    // Another agent sees only its own ratings.
    let other = api.agent(1).await;
    let none = api.get("/human/responses", &other.token).await.expect(200);
    assert_eq!(none, json!([]));
    let q = api.get("/human/queue", &api.operator).await.expect(200);
    assert_eq!(q, json!({"active": null, "pending": []}));

    // One prompt per execution, rated or not.
    api.post(
        "/human/prompt",
        &a.token,
        json!({"content": "again", "bid_amount": 1}),
    )
    .await
    .expect_error(409, "prompt_already_submitted");
    api.t.assert_audit_clean().await;
}

async fn a_prompt_needs_attention_in_the_bundle(api: TestApi) {
    let spec = BundleSpec {
        cpu_seconds: 1.0,
        memory_mb: 64.0,
        tokens: 0.0,
        attention_share: 0.0,
        wall_seconds: None,
    };
    let bundle = Bundle::parse(&spec, &Config::default().bundle_limits()).unwrap();
    let a = api.agent_with(50, bundle).await;
    api.post(
        "/human/prompt",
        &a.token,
        json!({"content": "hello", "bid_amount": 5}),
    )
    .await
    .expect_error(403, "no_attention");
    assert_eq!(api.t.available(a.id).await, cr(50));
    let q = api.get("/human/queue", &api.operator).await.expect(200);
    assert_eq!(q["active"], Value::Null);
    api.t.assert_audit_clean().await;
}

async fn bad_prompts_are_refused(api: TestApi) {
    let a = api.agent(50).await;
    let huge = "x".repeat(64 * 1024);
    for (body, status, code) in [
        (
            json!({"content": huge, "bid_amount": 1}),
            400,
            "content_too_large",
        ),
        (
            json!({"content": null, "bid_amount": 1}),
            400,
            "invalid_content",
        ),
        (json!({"bid_amount": 1}), 400, "invalid_content"),
        (
            json!({"content": "x", "bid_amount": -1}),
            400,
            "invalid_amount",
        ),
        (
            json!({"content": "x", "bid_amount": 0}),
            400,
            "invalid_amount",
        ),
        (json!({"content": "x"}), 400, "invalid_amount"),
        (
            json!({"content": "x", "bid_amount": 51}),
            409,
            "insufficient_funds",
        ),
        (
            json!({"content": "x", "bid_amount": 1, "agent": 1}),
            422,
            "invalid_body",
        ),
    ] {
        api.post("/human/prompt", &a.token, body)
            .await
            .expect_error(status, code);
    }
    assert_eq!(api.t.available(a.id).await, cr(50));
    let q = api.get("/human/queue", &api.operator).await.expect(200);
    assert_eq!(q["active"], Value::Null);
    // Just under the limit is fine: 64 KiB of compact JSON, quotes included.
    let fits = "x".repeat(64 * 1024 - 2);
    api.post(
        "/human/prompt",
        &a.token,
        json!({"content": fits, "bid_amount": 1}),
    )
    .await
    .expect(201);
    api.t.assert_audit_clean().await;
}

async fn the_queue_serves_the_highest_bid_first(api: TestApi) {
    let a = api.agent(50).await;
    let b = api.agent(50).await;
    let c = api.agent(50).await;
    let first = submit(&api, &a, "1").await;
    let low = submit(&api, &b, "2").await;
    let high = submit(&api, &c, "3").await;
    let q = api.get("/human/queue", &api.operator).await.expect(200);
    assert_eq!(q["active"]["id"], first);
    let pending: Vec<_> = q["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(pending, vec![high, low]);
    assert!(q["pending"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] == "pending"));
    let paid = api
        .post("/human/reward", &api.operator, rating(first, 0, 0, 0))
        .await
        .expect(200);
    assert_eq!(paid["reward"], "0");
    assert_eq!(paid["next_active"], high);
    // A pending prompt cannot be rated before its turn.
    api.post("/human/reward", &api.operator, rating(low, 1, 1, 1))
        .await
        .expect_error(409, "prompt_not_active");
    api.t.assert_audit_clean().await;
}

async fn a_prompt_is_rated_once(api: TestApi) {
    let a = api.agent(50).await;
    let id = submit(&api, &a, "5").await;
    api.post("/human/reward", &api.operator, rating(id, 1, 2, 3))
        .await
        .expect(200);
    let after_first = api.t.balance(a.id).await;
    assert_eq!(after_first, cr(45 + 300));
    let again = api
        .post("/human/reward", &api.operator, rating(id, 10, 10, 10))
        .await;
    again.expect_error(409, "prompt_not_active");
    assert_eq!(again.body["error"]["details"]["status"], "responded");
    assert_eq!(api.t.balance(a.id).await, after_first);
    api.post("/human/reward", &api.operator, rating(999_999, 1, 1, 1))
        .await
        .expect_error(404, "unknown_prompt");
    let rs = api.get("/human/responses", &a.token).await.expect(200);
    assert_eq!(rs.as_array().unwrap().len(), 1);
    assert_eq!(rs[0]["interesting"], 1);
    api.t.assert_audit_clean().await;
}

async fn concurrent_ratings_pay_exactly_once(api: TestApi) {
    let a = api.agent(50).await;
    let id = submit(&api, &a, "5").await;
    let before = api.t.balance(a.id).await;
    let url = format!("{}/human/reward", api.base);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let http = api.http.clone();
            let url = url.clone();
            let token = api.operator.clone();
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&rating(id, 10, 10, i % 11))
                    .send()
                    .await
                    .unwrap();
                super::harness::answer(r).await
            })
        })
        .collect();
    let mut ok = Vec::new();
    for t in tasks {
        let answer = t.await.unwrap();
        match answer.status.as_u16() {
            200 => ok.push(answer.body),
            _ => answer.expect_error(409, "prompt_not_active"),
        }
    }
    assert_eq!(ok.len(), 1, "exactly one rating wins: {ok:?}");
    let reward = credits(ok[0]["reward"].as_str().unwrap());
    // The escrow (5) was held before, so the balance drops by it once and rises by
    // one reward.
    assert_eq!(
        api.t.balance(a.id).await,
        before
            .checked_sub(cr(5))
            .unwrap()
            .checked_add(reward)
            .unwrap()
    );
    let rs = api.get("/human/responses", &a.token).await.expect(200);
    assert_eq!(rs.as_array().unwrap().len(), 1);
    api.t.assert_audit_clean().await;
}

async fn bad_scores_are_refused_and_change_nothing(api: TestApi) {
    let a = api.agent(50).await;
    let id = submit(&api, &a, "5").await;
    let before = api.t.balance(a.id).await;
    for field in ["interesting", "useful", "understandable"] {
        for bad in [
            json!(-1),
            json!(11),
            json!(5.5),
            json!("7"),
            json!(null),
            json!(true),
            json!([5]),
        ] {
            let mut body = rating(id, 5, 5, 5);
            body[field] = bad.clone();
            let r = api.post("/human/reward", &api.operator, body).await;
            r.expect_error(400, "invalid_scores");
            assert_eq!(r.body["error"]["details"]["field"], field, "{bad}");
        }
        let mut missing = rating(id, 5, 5, 5);
        missing.as_object_mut().unwrap().remove(field);
        let r = api.post("/human/reward", &api.operator, missing).await;
        r.expect_error(400, "invalid_scores");
        assert_eq!(r.body["error"]["details"]["field"], field);
    }
    let mut long = rating(id, 5, 5, 5);
    long["reason"] = json!("x".repeat(2001));
    api.post("/human/reward", &api.operator, long)
        .await
        .expect_error(400, "invalid_reason");
    api.post(
        "/human/reward",
        &api.operator,
        json!({"interesting": 1, "useful": 1, "understandable": 1}),
    )
    .await
    .expect_error(422, "invalid_body");
    assert_eq!(api.t.balance(a.id).await, before);
    let q = api.get("/human/queue", &api.operator).await.expect(200);
    assert_eq!(q["active"]["id"], id);
    assert_eq!(q["active"]["status"], "active");
    let rs = api.get("/human/responses", &a.token).await.expect(200);
    assert_eq!(rs, json!([]));
    // The edges are fine: 0 and 10, and 10.0 is a whole number.
    let mut edge = rating(id, 0, 10, 0);
    edge["understandable"] = json!(10.0);
    let paid = api
        .post("/human/reward", &api.operator, edge)
        .await
        .expect(200);
    assert_eq!(paid["reward"], "1000");
    api.t.assert_audit_clean().await;
}

async fn human_endpoints_take_only_the_operator_token(api: TestApi) {
    let a = api.agent(50).await;
    let id = submit(&api, &a, "5").await;
    api.get("/human/queue", &a.token)
        .await
        .expect_error(403, "operator_token_required");
    api.post("/human/reward", &a.token, rating(id, 10, 10, 10))
        .await
        .expect_error(403, "operator_token_required");
    api.post(
        "/human/prompt",
        &api.operator,
        json!({"content": "x", "bid_amount": 1}),
    )
    .await
    .expect_error(403, "agent_token_required");
    api.get("/human/responses", &api.operator)
        .await
        .expect_error(403, "agent_token_required");
    api.get("/human/queue", "not-a-token")
        .await
        .expect_error(401, "invalid_token");
    // The agent could not rate itself: nothing was paid, the prompt still waits.
    assert_eq!(api.t.balance(a.id).await, cr(50));
    let q = api.get("/human/queue", &api.operator).await.expect(200);
    assert_eq!(q["active"]["id"], id);
    api.t.assert_audit_clean().await;
}
