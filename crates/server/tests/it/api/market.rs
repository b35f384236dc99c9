//! Market endpoints over HTTP (SPEC §5, §11).

use super::harness::TestApi;
use crate::api_contract;
use reqwest::Method;
use serde_json::json;

api_contract!(
    prices_and_state,
    bids_place_list_raise_withdraw,
    bad_bids_are_refused_and_change_nothing
);

async fn prices_and_state(api: TestApi) {
    let a = api.agent(10).await;
    let p = api.get("/market/prices", &a.token).await.expect(200);
    assert_eq!(p["prices"]["cpu_seconds"], "1");
    assert_eq!(p["prices"]["memory_mb"], "0.1");
    assert_eq!(p["prices"]["tokens"], "0.001");
    assert_eq!(p["prices"]["attention_share"], "10");
    let s = api
        .get("/market/state?history=5&book=10", &a.token)
        .await
        .expect(200);
    assert_eq!(s["markets"].as_array().unwrap().len(), 4);
    assert_eq!(s["paused"], false);
    api.get("/market/state?history=0", &a.token)
        .await
        .expect_error(400, "invalid_query");
    api.get("/market/state?book=abc", &a.token)
        .await
        .expect_error(400, "invalid_query");
}

async fn bids_place_list_raise_withdraw(api: TestApi) {
    let a = api.agent(100).await;
    let bundle = json!({"cpu_seconds": 2, "memory_mb": 128, "tokens": 500, "attention_share": 0.1});
    let bid = api
        .post(
            "/market/bid",
            &a.token,
            json!({"bundle": bundle, "amount": 40}),
        )
        .await
        .expect(201);
    assert_eq!(bid["status"], "pending");
    assert_eq!(bid["amount"], "40");
    assert_eq!(bid["bundle"]["memory_mb"], 128.0);
    let id = bid["id"].as_i64().unwrap();
    let mine = api.get("/market/bids", &a.token).await.expect(200);
    assert!(mine.as_array().unwrap().iter().any(|b| b["id"] == id));
    let s = api.get("/market/state", &a.token).await.expect(200);
    assert!(s["bid_book"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["id"] == id));
    let path = format!("/market/bid/{id}");
    let raised = api
        .call(
            Method::PATCH,
            &path,
            Some(&a.token),
            Some(json!({"amount": "45.5"})),
        )
        .await
        .expect(200);
    assert_eq!(raised["amount"], "45.5");
    let bal = api.get("/economic/balance", &a.token).await.expect(200);
    assert_eq!(bal["held"], "45.5");
    api.call(
        Method::PATCH,
        &path,
        Some(&a.token),
        Some(json!({"amount": "10"})),
    )
    .await
    .expect_error(400, "not_a_raise");
    let w = api
        .call(Method::DELETE, &path, Some(&a.token), None)
        .await
        .expect(200);
    assert_eq!(w["status"], "withdrawn");
    api.call(Method::DELETE, &path, Some(&a.token), None)
        .await
        .expect_error(409, "bid_not_pending");
    api.call(Method::DELETE, "/market/bid/999999", Some(&a.token), None)
        .await
        .expect_error(404, "unknown_bid");
    api.call(Method::DELETE, "/market/bid/abc", Some(&a.token), None)
        .await
        .expect_error(400, "invalid_path");
    let bal = api.get("/economic/balance", &a.token).await.expect(200);
    assert_eq!(bal["held"], "0");
    assert_eq!(bal["available"], "100");
    api.t.assert_audit_clean().await;
}

async fn bad_bids_are_refused_and_change_nothing(api: TestApi) {
    let a = api.agent(100).await;
    let ok = json!({"cpu_seconds": 1, "memory_mb": 64});
    let below = api
        .post(
            "/market/bid",
            &a.token,
            json!({"bundle": ok, "amount": "1"}),
        )
        .await;
    below.expect_error(400, "below_reserve");
    assert_eq!(below.body["error"]["details"]["reserve"], "7.4");
    for (amount, code) in [
        (json!(-5), "invalid_amount"),
        (json!(0), "invalid_amount"),
        (json!("NaN"), "invalid_amount"),
        (json!("ten"), "invalid_amount"),
        (json!(1e300), "invalid_amount"),
        (json!("99999999999999999999"), "invalid_amount"),
        (json!(null), "invalid_amount"),
        (json!([1]), "invalid_amount"),
        (json!("1.0000001"), "invalid_amount"),
    ] {
        api.post(
            "/market/bid",
            &a.token,
            json!({"bundle": ok, "amount": amount}),
        )
        .await
        .expect_error(400, code);
    }
    api.post("/market/bid", &a.token, json!({"bundle": ok}))
        .await
        .expect_error(400, "invalid_amount");
    for bundle in [
        json!({"cpu_seconds": -1, "memory_mb": 64}),
        json!({"cpu_seconds": 1, "memory_mb": 1e12}),
        json!({"cpu_seconds": 1, "memory_mb": 64, "attention_share": 2}),
        json!({"cpu_seconds": 0, "memory_mb": 0}),
    ] {
        api.post(
            "/market/bid",
            &a.token,
            json!({"bundle": bundle, "amount": "50"}),
        )
        .await
        .expect_error(400, "invalid_bundle");
    }
    api.post(
        "/market/bid",
        &a.token,
        json!({"bundle": {"gpu": 1}, "amount": "50"}),
    )
    .await
    .expect_error(422, "invalid_body");
    api.post(
        "/market/bid",
        &a.token,
        json!({"bundle": ok, "amount": "500"}),
    )
    .await
    .expect_error(409, "insufficient_funds");
    api.post(
        "/market/bid",
        &a.token,
        json!({"bundle": ok, "amount": "50", "beneficiary": 987654}),
    )
    .await
    .expect_error(404, "unknown_agent");
    let bal = api.get("/economic/balance", &a.token).await.expect(200);
    assert_eq!(bal["held"], "0");
    assert_eq!(bal["balance"], "100");
    api.t.assert_audit_clean().await;
}
