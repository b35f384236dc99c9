//! `Idempotency-Key` on every money-moving request that creates something
//! (SPEC §4): a bid, a spawn, a message, an operator-created agent. A retry
//! replays the first outcome and moves nothing; concurrent retries make one
//! effect; the same key with another request is refused.

use super::harness::{answer, Answer, TestApi};
use crate::api_contract;
use serde_json::{json, Value};

api_contract!(
    bids_spawns_and_messages_happen_once_per_key,
    concurrent_retries_make_one_effect,
    operator_created_agents_happen_once_per_key,
);

async fn send(api: &TestApi, path: &str, token: &str, key: &str, body: &Value) -> Answer {
    let r = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    answer(r).await
}

fn replayed(a: &Answer) -> bool {
    a.status.as_u16() == 200
        && a.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
}

async fn bids_spawns_and_messages_happen_once_per_key(api: TestApi) {
    let a = api.agent(100).await;
    let b = api.agent(0).await;
    let bid = json!({"bundle": {"cpu_seconds": 1, "memory_mb": 64}, "amount": "10"});
    let spawn =
        json!({"initial_credits": "20", "files": [{"path": "main.py", "content": "print(1)"}]});
    let msg = json!({"to": b.id.0, "content": "hello"});
    for (path, body, id_field) in [
        ("/market/bid", &bid, "id"),
        ("/social/spawn", &spawn, "agent"),
        ("/social/message", &msg, "id"),
    ] {
        let first = send(&api, path, &a.token, &format!("k-{path}"), body).await;
        assert_eq!(first.status.as_u16(), 201, "{path}: {:#}", first.body);
        let again = send(&api, path, &a.token, &format!("k-{path}"), body).await;
        assert!(
            replayed(&again),
            "{path}: {:?} {:#}",
            again.status,
            again.body
        );
        assert_eq!(
            again.body[id_field], first.body[id_field],
            "{path}: the first outcome"
        );
        let mut other = body.clone();
        other["zzz_changed"] = json!(1);
        // Another body under the same key is a conflict (checked before the body's
        // own validity would matter, so use a valid variation where possible).
        let changed = match path {
            "/market/bid" => json!({"bundle": {"cpu_seconds": 1, "memory_mb": 64}, "amount": "11"}),
            "/social/spawn" => {
                json!({"initial_credits": "21", "files": [{"path": "main.py", "content": "print(1)"}]})
            }
            _ => json!({"to": b.id.0, "content": "hello again"}),
        };
        send(&api, path, &a.token, &format!("k-{path}"), &changed)
            .await
            .expect_error(409, "idempotency_conflict");
    }
    // One bid held (10), one spawn paid (fee 10 + 20), one message fee (0.1).
    let bal = api.get("/economic/balance", &a.token).await.expect(200);
    assert_eq!(bal["held"], "10");
    assert_eq!(bal["balance"], "69.9");
    let agents = api
        .get("/social/agents?limit=1000", &a.token)
        .await
        .expect(200);
    assert_eq!(agents.as_array().unwrap().len(), 3, "one child, not two");
    let inbox = api.get("/social/inbox", &b.token).await.expect(200);
    assert_eq!(inbox.as_array().unwrap().len(), 1, "one message, not two");
    // Keys are scoped to the caller: b may use the same key for its own request.
    let b_msg = json!({"to": a.id.0, "content": "hi"});
    let r = send(
        &api,
        "/social/message",
        &b.token,
        "k-/social/message",
        &b_msg,
    )
    .await;
    r.expect_error(409, "insufficient_funds");
    api.t.assert_audit_clean().await;
}

async fn concurrent_retries_make_one_effect(api: TestApi) {
    let a = api.agent(100).await;
    let spawn = json!({"initial_credits": "20", "files": [{"path": "main.py", "content": "print(1)"}],
                       "bid": {"bundle": {"cpu_seconds": 1, "memory_mb": 64}, "amount": "10"}});
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let req = api
                .http
                .post(format!("{}/social/spawn", api.base))
                .bearer_auth(&a.token)
                .header("Idempotency-Key", "spawn-once")
                .json(&spawn);
            tokio::spawn(async move { answer(req.send().await.unwrap()).await })
        })
        .collect();
    let mut children = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(matches!(r.status.as_u16(), 200 | 201), "{:#}", r.body);
        children.push(r.body["agent"].clone());
    }
    children.dedup();
    assert_eq!(children.len(), 1, "every retry names the same child");
    let bal = api.get("/economic/balance", &a.token).await.expect(200);
    assert_eq!(bal["balance"], "70", "paid once: fee 10 + 20 credits");
    let ws = api.t.workspaces();
    let staging: Vec<_> = std::fs::read_dir(&ws)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
        .collect();
    assert!(
        staging.is_empty(),
        "replays leave no staging folders: {staging:?}"
    );
    api.t.assert_audit_clean().await;
}

async fn operator_created_agents_happen_once_per_key(api: TestApi) {
    let body =
        json!({"initial_credits": "50", "files": [{"path": "main.py", "content": "print(1)"}]});
    let first = send(&api, "/admin/agents", &api.operator, "create-1", &body).await;
    assert_eq!(first.status.as_u16(), 201, "{:#}", first.body);
    let again = send(&api, "/admin/agents", &api.operator, "create-1", &body).await;
    assert!(replayed(&again), "{:#}", again.body);
    assert_eq!(again.body["agent"]["id"], first.body["agent"]["id"]);
    let list = api.get("/admin/agents", &api.operator).await.expect(200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["balance"]["balance"], "50", "minted once");
    api.t.assert_audit_clean().await;
}
