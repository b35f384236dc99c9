//! Identity at the System Service (SPEC §11): an agent is whoever its execution
//! token says, only while that execution runs; operator and agent tokens do not
//! open each other's doors.

use super::harness::TestApi;
use crate::api_contract;
use agora_core::lifecycle::ExecutionStatus;
use reqwest::Method;
use serde_json::json;

api_contract!(
    missing_or_malformed_tokens_are_401,
    operator_token_cannot_act_as_an_agent,
    a_token_dies_with_its_execution,
    a_body_cannot_name_another_acting_agent,
);

async fn missing_or_malformed_tokens_are_401(api: TestApi) {
    api.call(Method::GET, "/economic/balance", None, None)
        .await
        .expect_error(401, "unauthenticated");
    api.get("/economic/balance", "agora_x_not-a-real-token")
        .await
        .expect_error(401, "invalid_token");
    api.get("/economic/balance", "")
        .await
        .expect_error(401, "unauthenticated");
    let r = api
        .http
        .get(format!("{}/economic/balance", api.base))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    super::harness::answer(r)
        .await
        .expect_error(401, "unauthenticated");
}

async fn operator_token_cannot_act_as_an_agent(api: TestApi) {
    for path in ["/economic/balance", "/market/prices", "/system/context"] {
        api.get(path, &api.operator)
            .await
            .expect_error(403, "agent_token_required");
    }
}

async fn a_token_dies_with_its_execution(api: TestApi) {
    let a = api.agent(50).await;
    api.get("/economic/balance", &a.token).await.expect(200);
    // Running, then ended: the same token is refused from then on.
    api.t
        .store
        .finish_execution(a.execution, ExecutionStatus::Succeeded, Some(0), None)
        .await
        .unwrap();
    api.get("/economic/balance", &a.token)
        .await
        .expect_error(401, "invalid_token");
    let r = api
        .post(
            "/economic/transfer",
            &a.token,
            json!({"to": 1, "amount": "1"}),
        )
        .await;
    r.expect_error(401, "invalid_token");
    // A token revoked explicitly is refused too, even though its execution runs.
    let b = api.agent(50).await;
    api.t.store.revoke_tokens(b.execution).await.unwrap();
    api.get("/economic/balance", &b.token)
        .await
        .expect_error(401, "invalid_token");
}

async fn a_body_cannot_name_another_acting_agent(api: TestApi) {
    let a = api.agent(100).await;
    let b = api.agent(100).await;
    // No request type has a field naming the acting agent; trying one is refused.
    api.post(
        "/economic/transfer",
        &a.token,
        json!({"from": b.id.0, "to": a.id.0, "amount": "5"}),
    )
    .await
    .expect_error(422, "invalid_body");
    api.post(
        "/market/bid",
        &a.token,
        json!({"payer": b.id.0, "bundle": {"cpu_seconds": 1, "memory_mb": 64}, "amount": "20"}),
    )
    .await
    .expect_error(422, "invalid_body");
    // A bid for b placed by a is paid by a.
    let bid = api
        .post(
            "/market/bid",
            &a.token,
            json!({"beneficiary": b.id.0, "bundle": {"cpu_seconds": 1, "memory_mb": 64}, "amount": "20"}),
        )
        .await
        .expect(201);
    assert_eq!(bid["payer"], a.id.0);
    assert_eq!(bid["beneficiary"], b.id.0);
    let bal_a = api.get("/economic/balance", &a.token).await.expect(200);
    let bal_b = api.get("/economic/balance", &b.token).await.expect(200);
    assert_eq!(bal_a["held"], "20");
    assert_eq!(bal_b["held"], "0");
    // b cannot withdraw or raise a's bid, though it benefits from it.
    let path = format!("/market/bid/{}", bid["id"]);
    api.call(Method::DELETE, &path, Some(&b.token), None)
        .await
        .expect_error(403, "not_your_bid");
    api.call(
        Method::PATCH,
        &path,
        Some(&b.token),
        Some(json!({"amount": "30"})),
    )
    .await
    .expect_error(403, "not_your_bid");
    api.t.assert_audit_clean().await;
}
