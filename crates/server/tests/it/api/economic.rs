//! Ledger endpoints over HTTP (SPEC §4, §11): balances, payments under
//! concurrency, idempotent retries, and bad amounts that change nothing.

use super::harness::{answer, TestApi};
use crate::api_contract;
use serde_json::{json, Value};

api_contract!(
    balance_transfer_and_history,
    ten_concurrent_transfers_of_everything_move_it_once,
    a_repeated_idempotency_key_moves_money_once,
    bad_amounts_change_nothing,
);

async fn balance_transfer_and_history(api: TestApi) {
    let a = api.agent(100).await;
    let b = api.agent(5).await;
    let bal = api.get("/economic/balance", &a.token).await.expect(200);
    assert_eq!(
        bal,
        json!({"agent": a.id.0, "balance": "100", "held": "0", "available": "100"})
    );
    let t = api
        .post(
            "/economic/transfer",
            &a.token,
            json!({"to": b.id.0, "amount": "12.345678", "memo": "thanks"}),
        )
        .await
        .expect(201);
    assert_eq!(t["amount"], "12.345678");
    assert_eq!(t["kind"], "transfer");
    assert_eq!(t["debit"], format!("agent:{}", a.id.0));
    assert_eq!(
        api.get("/economic/balance", &b.token).await.expect(200)["balance"],
        "17.345678"
    );
    let h = api
        .get("/economic/history?limit=10", &a.token)
        .await
        .expect(200);
    assert_eq!(h[0]["id"], t["id"], "newest first");
    assert_eq!(h[0]["memo"], "thanks");
    api.get("/economic/history?limit=0", &a.token)
        .await
        .expect_error(400, "invalid_query");
    api.post(
        "/economic/transfer",
        &a.token,
        json!({"to": a.id.0, "amount": "1"}),
    )
    .await
    .expect_error(400, "self_transfer");
    api.post(
        "/economic/transfer",
        &a.token,
        json!({"to": 424242, "amount": "1"}),
    )
    .await
    .expect_error(404, "unknown_agent");
    api.post(
        "/economic/transfer",
        &a.token,
        json!({"to": b.id.0, "amount": "1", "memo": "x".repeat(1001)}),
    )
    .await
    .expect_error(400, "invalid_memo");
    api.t.assert_audit_clean().await;
}

async fn ten_concurrent_transfers_of_everything_move_it_once(api: TestApi) {
    let a = api.agent(100).await;
    let b = api.agent(0).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let req = api
                .http
                .post(format!("{}/economic/transfer", api.base))
                .bearer_auth(&a.token)
                .json(&json!({"to": b.id.0, "amount": 100}));
            tokio::spawn(async move { answer(req.send().await.unwrap()).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            201 => ok += 1,
            _ => r.expect_error(409, "insufficient_funds"),
        }
    }
    assert_eq!(ok, 1, "exactly one transfer of the whole balance");
    assert_eq!(
        api.get("/economic/balance", &a.token).await.expect(200)["balance"],
        "0"
    );
    assert_eq!(
        api.get("/economic/balance", &b.token).await.expect(200)["balance"],
        "100"
    );
    api.t.assert_audit_clean().await;
}

async fn a_repeated_idempotency_key_moves_money_once(api: TestApi) {
    let a = api.agent(100).await;
    let b = api.agent(0).await;
    let send = |key: &str, amount: &str| {
        api.http
            .post(format!("{}/economic/transfer", api.base))
            .bearer_auth(&a.token)
            .header("Idempotency-Key", key)
            .json(&json!({"to": b.id.0, "amount": amount}))
            .send()
    };
    let first = answer(send("pay-1", "10").await.unwrap()).await;
    let first_id = first.body["id"].clone();
    assert_eq!(first.status.as_u16(), 201);
    let again = answer(send("pay-1", "10").await.unwrap()).await;
    assert_eq!(again.status.as_u16(), 200);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["id"], first_id);
    // Eight concurrent retries of a new key: one transfer.
    let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(send("pay-2", "7"))).collect();
    let mut ids = Vec::new();
    for t in tasks {
        let r = answer(t.await.unwrap().unwrap()).await;
        assert!(matches!(r.status.as_u16(), 200 | 201), "{:#}", r.body);
        ids.push(r.body["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "all retries answer with the same transfer");
    // The same key for a different payment is refused.
    answer(send("pay-1", "11").await.unwrap())
        .await
        .expect_error(409, "idempotency_conflict");
    let bad = answer(send(&"k".repeat(201), "1").await.unwrap()).await;
    bad.expect_error(400, "invalid_idempotency_key");
    assert_eq!(
        api.get("/economic/balance", &b.token).await.expect(200)["balance"],
        "17"
    );
    api.t.assert_audit_clean().await;
}

async fn bad_amounts_change_nothing(api: TestApi) {
    let a = api.agent(100).await;
    let b = api.agent(0).await;
    let amounts: Vec<Value> = vec![
        json!(-100),
        json!("-1"),
        json!(0),
        json!("0.0000001"),
        json!("NaN"),
        json!("Infinity"),
        json!("1e3"),
        json!("a hundred"),
        json!(""),
        json!(1e300),
        json!(9.3e18),
        json!("9223372036854.775808"),
        json!(true),
        json!({"credits": 1}),
        Value::Null,
    ];
    for amount in amounts {
        let r = api
            .post(
                "/economic/transfer",
                &a.token,
                json!({"to": b.id.0, "amount": amount}),
            )
            .await;
        r.expect_error(400, "invalid_amount");
    }
    api.post("/economic/transfer", &a.token, json!({"to": b.id.0}))
        .await
        .expect_error(400, "invalid_amount");
    api.post(
        "/economic/transfer",
        &a.token,
        json!({"to": "b", "amount": 1}),
    )
    .await
    .expect_error(422, "invalid_body");
    // Not JSON, JSON with a raw NaN, bytes that are not UTF-8, the wrong content type.
    for (body, ctype, status, code) in [
        (
            b"{\"to\": 1, \"amount\": NaN}".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b"{\"to\": 1, \"amount\": \"\xff\xfe\"}".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b"not json".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (b"{}".to_vec(), "text/plain", 415, "unsupported_media_type"),
    ] {
        let r = api
            .http
            .post(format!("{}/economic/transfer", api.base))
            .bearer_auth(&a.token)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        answer(r).await.expect_error(status, code);
    }
    // An oversized body is refused before it is read whole. The server then closes
    // that connection, so it goes over a client of its own: a pooled connection
    // reused by the next request could be the closed one.
    let huge = format!(
        "{{\"to\": {}, \"amount\": 1, \"memo\": \"{}\"}}",
        b.id.0,
        "x".repeat(5 << 20)
    );
    let r = reqwest::Client::new()
        .post(format!("{}/economic/transfer", api.base))
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    answer(r).await.expect_error(413, "body_too_large");
    let bal = api.get("/economic/balance", &a.token).await.expect(200);
    assert_eq!(bal["balance"], "100");
    assert_eq!(
        api.get("/economic/history", &a.token)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        2,
        "only the grant and the execution's payment"
    );
    api.t.assert_audit_clean().await;
}
