//! Operator endpoints over HTTP (SPEC §11 `/admin/…`, §13 events), on SQLite and
//! PostgreSQL: every one refuses agents and strangers, and each does what the
//! operator asks without changing anything when the request is bad.

use super::harness::{Answer, TestApi};
use crate::api_contract;
use crate::harness::cr;
use agora_core::attention::{RewardRates, Scores};
use agora_core::lifecycle::ExecutionStatus;
use agora_core::Credits;
use agora_server::store::NewAgent;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

api_contract!(
    every_admin_endpoint_refuses_agents_and_strangers,
    agents_are_listed_with_balances_and_paged,
    agent_detail_shows_lineage_executions_bids_and_prompts,
    agent_detail_pages_back_through_each_list,
    executions_show_their_log,
    transactions_are_listed_oldest_first,
    events_are_filtered_by_type_and_agent,
    grant_mints_credits_for_alive_agents_only,
    bad_grant_amounts_are_refused_and_change_nothing,
    grant_retries_with_an_idempotency_key_mint_once,
    audit_reports_clean_and_broken_ledgers,
    event_stream_delivers_live_events_and_resumes,
    pause_and_resume_round_trip,
    create_agent_from_files_with_credits_and_a_first_bid,
    a_refused_create_leaves_nothing_behind,
);

/// The `/admin/…` operations the OpenAPI document lists, as (method, path).
async fn admin_operations(api: &TestApi) -> Vec<(Method, String)> {
    let doc: Value = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/admin") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            ops.push((m, path.clone()));
        }
    }
    ops
}

async fn every_admin_endpoint_refuses_agents_and_strangers(api: TestApi) {
    let a = api.agent(10).await;
    let ops = admin_operations(&api).await;
    // Guards against a document that lost its admin paths (and a vacuous pass).
    assert!(ops.len() >= 12, "admin operations documented: {ops:?}");
    for (method, path) in ops {
        let path = path.replace("{id}", &a.id.0.to_string());
        let body = (method == Method::POST).then(|| json!({}));
        let r = api
            .call(method.clone(), &path, Some(&a.token), body.clone())
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "operator_token_required"),
            "{method} {path} with an execution token: {:#}",
            r.body
        );
        let r = api.call(method.clone(), &path, None, body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "unauthenticated"),
            "{method} {path} without a token: {:#}",
            r.body
        );
        let r = api
            .call(method.clone(), &path, Some("agora_o_not-the-token"), body)
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "invalid_token"),
            "{method} {path} with a wrong operator token: {:#}",
            r.body
        );
    }
    // Nothing was paused, granted or created by the refused requests.
    assert!(!api.t.store.paused().await.unwrap());
    assert_eq!(api.t.balance(a.id).await, cr(10));
}

/// An agent that died of law 2: its only bid won, its execution ended.
async fn dead_agent(api: &TestApi) -> agora_core::AgentId {
    let d = api.agent(5).await;
    api.t
        .store
        .finish_execution(d.execution, ExecutionStatus::Succeeded, Some(0), None)
        .await
        .unwrap();
    d.id
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["agent"]["id"].as_i64().unwrap())
        .collect()
}

async fn agents_are_listed_with_balances_and_paged(api: TestApi) {
    let a = api.agent(100).await;
    let dead = dead_agent(&api).await;
    let b = api.agent(7).await;
    let op = &api.operator;

    let all = api.get("/admin/agents", op).await.expect(200);
    assert_eq!(ids(&all), vec![a.id.0, dead.0, b.id.0]);
    let first = &all[0];
    assert_eq!(first["agent"]["status"], "alive");
    assert_eq!(first["balance"]["agent"], a.id.0);
    assert_eq!(first["balance"]["balance"], "100");
    assert_eq!(first["balance"]["available"], "100");
    assert_eq!(all[1]["agent"]["status"], "dead");
    assert_eq!(all[1]["agent"]["death_reason"], "no_bid");

    let alive = api.get("/admin/agents?status=alive", op).await.expect(200);
    assert_eq!(ids(&alive), vec![a.id.0, b.id.0]);
    let dead_only = api.get("/admin/agents?status=dead", op).await.expect(200);
    assert_eq!(ids(&dead_only), vec![dead.0]);
    let page = api
        .get(&format!("/admin/agents?after={}&limit=1", a.id.0), op)
        .await
        .expect(200);
    assert_eq!(ids(&page), vec![dead.0]);

    for bad in ["status=zombie", "limit=0", "limit=1001", "after=x"] {
        api.get(&format!("/admin/agents?{bad}"), op)
            .await
            .expect_error(400, "invalid_query");
    }
}

async fn agent_detail_shows_lineage_executions_bids_and_prompts(api: TestApi) {
    let a = api.agent(100).await;
    let store = &api.t.store;
    let child = store
        .create_agent(NewAgent {
            parent: Some(a.id),
            workspaces_root: api.t.workspaces(),
        })
        .await
        .unwrap();
    let prompt = store
        .submit_prompt(a.id, a.execution, json!({"text": "look"}), cr(5))
        .await
        .unwrap();
    store
        .reward_prompt(
            prompt.id,
            Scores {
                interesting: 1,
                useful: 2,
                understandable: 3,
            },
            "clear".into(),
            RewardRates::default(),
        )
        .await
        .unwrap();

    let d = api
        .get(&format!("/admin/agents/{}", a.id.0), &api.operator)
        .await
        .expect(200);
    assert_eq!(d["agent"]["id"], a.id.0);
    assert_eq!(d["children"], json!([child.0]));
    assert!(d["workspace"]
        .as_str()
        .unwrap()
        .ends_with(&format!("agent-{}", a.id.0)));
    assert_eq!(d["executions"][0]["id"], a.execution.0);
    assert_eq!(d["executions"][0]["status"], "scheduled");
    assert_eq!(d["bids"][0]["status"], "won");
    assert_eq!(d["bids"][0]["execution_id"], a.execution.0);
    assert_eq!(d["prompts"][0]["prompt"]["id"], prompt.id.0);
    assert_eq!(d["prompts"][0]["prompt"]["status"], "responded");
    assert_eq!(d["prompts"][0]["response"]["useful"], 2);
    assert_eq!(d["prompts"][0]["response"]["credits_awarded"], "300");
    // 100 − 5 escrow + 300 reward.
    assert_eq!(d["balance"]["balance"], "395");

    let c = api
        .get(&format!("/admin/agents/{}", child.0), &api.operator)
        .await
        .expect(200);
    assert_eq!(c["agent"]["parent"], a.id.0);
    assert_eq!(c["agent"]["lineage"], json!([a.id.0]));
    assert_eq!(c["executions"], json!([]));
    assert_eq!(c["prompts"], json!([]));

    api.get("/admin/agents/999999", &api.operator)
        .await
        .expect_error(404, "unknown_agent");
    api.get("/admin/agents/abc", &api.operator)
        .await
        .expect_error(400, "invalid_path");
}

async fn agent_detail_pages_back_through_each_list(api: TestApi) {
    let a = api.agent(1000).await;
    let bundle = json!({"cpu_seconds": 1, "memory_mb": 64});
    for _ in 0..70 {
        let bid = api
            .post(
                "/market/bid",
                &a.token,
                json!({"bundle": bundle, "amount": 10}),
            )
            .await
            .expect(201);
        let path = format!("/market/bid/{}", bid["id"]);
        api.call(Method::DELETE, &path, Some(&a.token), None)
            .await
            .expect(200);
    }
    let path = format!("/admin/agents/{}", a.id.0);
    let ids = |d: &Value| -> Vec<i64> {
        d["bids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_i64().unwrap())
            .collect()
    };
    let first = api.get(&path, &api.operator).await.expect(200);
    let newest = ids(&first);
    assert_eq!(newest.len(), 50);
    let second = api
        .get(&format!("{path}?bids_before={}", newest[49]), &api.operator)
        .await
        .expect(200);
    let older = ids(&second);
    // 70 withdrawn bids and the won bid of the agent's execution: 21 are left.
    assert_eq!(older.len(), 21);
    let all: Vec<i64> = newest.iter().chain(&older).copied().collect();
    assert!(
        all.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeat"
    );
    assert_eq!(second["bids"][20]["execution_id"], a.execution.0);
    // The other lists stay at their newest.
    assert_eq!(second["executions"][0]["id"], a.execution.0);
    let empty = api
        .get(
            &format!("{path}?bids_before=1&executions_before=1"),
            &api.operator,
        )
        .await
        .expect(200);
    assert_eq!(empty["bids"], json!([]));
    assert_eq!(empty["executions"], json!([]));
    for bad in [
        "bids_before=0",
        "executions_before=-1",
        "prompts_before=abc",
        "bids_before=99999999999999999999",
    ] {
        api.get(&format!("{path}?{bad}"), &api.operator)
            .await
            .expect_error(400, "invalid_query");
    }
}

async fn set_log_path(api: &TestApi, execution: i64, path: &std::path::Path) {
    api.t
        .raw(&format!(
            "UPDATE executions SET log_path = '{}' WHERE id = {execution}",
            path.display()
        ))
        .await;
}

async fn executions_show_their_log(api: TestApi) {
    let a = api.agent(10).await;
    let op = &api.operator;
    let path = format!("/admin/executions/{}", a.execution.0);
    let e = api.get(&path, op).await.expect(200);
    assert_eq!(e["execution"]["id"], a.execution.0);
    assert_eq!(e["execution"]["agent"], a.id.0);
    assert_eq!(e["tokens_used"], 0);
    assert_eq!(e["log_path"], Value::Null);
    api.get(&format!("{path}/log"), op)
        .await
        .expect_error(404, "no_log");

    let log = api.t.dir.path().join("exec.log");
    std::fs::write(&log, "hello from the agent\nsecond line\n").unwrap();
    set_log_path(&api, a.execution.0, &log).await;
    let e = api.get(&path, op).await.expect(200);
    assert_eq!(e["log_path"], log.display().to_string());
    let r = api
        .http
        .get(format!("{}{path}/log", api.base))
        .bearer_auth(op)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(r.headers().get("x-log-truncated").is_none());
    assert_eq!(
        r.text().await.unwrap(),
        "hello from the agent\nsecond line\n"
    );

    // A long log is cut to its last MiB, at a line boundary.
    let line = "x".repeat(99) + "\n";
    let mut text = line.repeat(20_000);
    text.push_str("the last line\n");
    std::fs::write(&log, &text).unwrap();
    let r = api
        .http
        .get(format!("{}{path}/log", api.base))
        .bearer_auth(op)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-log-truncated"], "true");
    let body = r.text().await.unwrap();
    assert!(body.len() <= 1024 * 1024 && body.len() > 1000 * 1000);
    assert!(body.ends_with("the last line\n"));
    assert!(body.starts_with(&line), "starts at a line boundary");

    // A log file that went away is no log, not a fault.
    std::fs::remove_file(&log).unwrap();
    api.get(&format!("{path}/log"), op)
        .await
        .expect_error(404, "no_log");
    for p in ["/admin/executions/999999", "/admin/executions/999999/log"] {
        api.get(p, op).await.expect_error(404, "unknown_execution");
    }
}

async fn transactions_are_listed_oldest_first(api: TestApi) {
    let a = api.agent(10).await;
    let b = api.agent(20).await;
    let op = &api.operator;
    let all = api.get("/admin/transactions", op).await.expect(200);
    let rows = all.as_array().unwrap();
    // Per agent: a grant from mint and its winning bid paid to burn.
    assert_eq!(rows.len(), 4);
    let ids: Vec<i64> = rows.iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    assert_eq!(rows[0]["debit"], "mint");
    assert_eq!(rows[0]["credit"], format!("agent:{}", a.id.0));
    assert_eq!(rows[0]["kind"], "grant");
    assert_eq!(rows[3]["credit"], "burn");
    assert_eq!(rows[3]["debit"], format!("agent:{}", b.id.0));
    let page = api
        .get(&format!("/admin/transactions?after={}&limit=2", ids[0]), op)
        .await
        .expect(200);
    let page: Vec<i64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page, ids[1..3]);
    api.get("/admin/transactions?limit=-1", op)
        .await
        .expect_error(400, "invalid_query");
}

async fn events_are_filtered_by_type_and_agent(api: TestApi) {
    let a = api.agent(10).await;
    let b = api.agent(10).await;
    let op = &api.operator;
    let all = api.get("/admin/events?limit=1000", op).await.expect(200);
    let all = all.as_array().unwrap().clone();
    assert!(all.len() >= 8, "{all:?}");
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for kind in [
        "agent_created",
        "credits_minted",
        "bid_placed",
        "resources_allocated",
    ] {
        assert!(all.iter().any(|e| e["type"] == kind), "{kind} recorded");
    }

    let minted_b = api
        .get(
            &format!("/admin/events?type=credits_minted&agent={}", b.id.0),
            op,
        )
        .await
        .expect(200);
    let minted_b = minted_b.as_array().unwrap();
    assert_eq!(minted_b.len(), 1);
    assert_eq!(minted_b[0]["agent"], b.id.0);
    assert_eq!(minted_b[0]["data"]["kind"], "grant");
    assert_eq!(minted_b[0]["source"], "economy");

    let of_a = api
        .get(&format!("/admin/events?agent={}", a.id.0), op)
        .await
        .expect(200);
    assert!(of_a
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["agent"] == a.id.0));
    assert!(!of_a.as_array().unwrap().is_empty());

    let after = api
        .get(&format!("/admin/events?after={}&limit=2", ids[0]), op)
        .await
        .expect(200);
    assert_eq!(after[0]["id"], ids[1]);
    assert_eq!(after.as_array().unwrap().len(), 2);

    let none = api.get("/admin/events?type=no_such_event", op).await;
    assert_eq!(none.expect(200), json!([]));
    for bad in ["type=Bad%20Type", "type=", "limit=5000", "agent=x"] {
        api.get(&format!("/admin/events?{bad}"), op)
            .await
            .expect_error(400, "invalid_query");
    }
}

async fn grant(api: &TestApi, body: Value) -> Answer {
    api.post("/admin/grant", &api.operator, body).await
}

async fn grant_mints_credits_for_alive_agents_only(api: TestApi) {
    let a = api.agent(10).await;
    let t = grant(
        &api,
        json!({"agent": a.id.0, "amount": "2.5", "memo": "for the essay"}),
    )
    .await
    .expect(201);
    assert_eq!(t["debit"], "mint");
    assert_eq!(t["credit"], format!("agent:{}", a.id.0));
    assert_eq!(t["amount"], "2.5");
    assert_eq!(t["kind"], "grant");
    assert_eq!(t["memo"], "for the essay");
    assert_eq!(api.t.balance(a.id).await, Credits::from_micros(12_500_000));
    let plain = grant(&api, json!({"agent": a.id.0, "amount": 3}))
        .await
        .expect(201);
    assert_eq!(plain["memo"], "operator grant");
    assert_eq!(api.t.balance(a.id).await, Credits::from_micros(15_500_000));

    grant(&api, json!({"agent": 999999, "amount": "1"}))
        .await
        .expect_error(404, "unknown_agent");
    let dead = dead_agent(&api).await;
    grant(&api, json!({"agent": dead.0, "amount": "1"}))
        .await
        .expect_error(409, "agent_dead");
    api.t.assert_audit_clean().await;
}

async fn bad_grant_amounts_are_refused_and_change_nothing(api: TestApi) {
    let a = api.agent(10).await;
    let before = api
        .get("/admin/transactions?limit=1000", &api.operator)
        .await
        .expect(200);
    for amount in [
        json!(-5),
        json!("-5"),
        json!(0),
        json!("0"),
        json!("NaN"),
        json!("abc"),
        json!(1e300),
        json!("1e300"),
        json!("0.0000001"),
        json!("99999999999999999999"),
        json!(null),
        json!(true),
        json!([1]),
    ] {
        grant(&api, json!({"agent": a.id.0, "amount": amount}))
            .await
            .expect_error(400, "invalid_amount");
    }
    grant(&api, json!({"agent": a.id.0}))
        .await
        .expect_error(400, "invalid_amount");
    grant(
        &api,
        json!({"agent": a.id.0, "amount": "1", "memo": "m".repeat(1001)}),
    )
    .await
    .expect_error(400, "invalid_memo");
    grant(&api, json!({"amount": "1"}))
        .await
        .expect_error(422, "invalid_body");
    grant(&api, json!({"agent": "one", "amount": "1"}))
        .await
        .expect_error(422, "invalid_body");
    grant(&api, json!({"agent": a.id.0, "amount": "1", "from": 1}))
        .await
        .expect_error(422, "invalid_body");
    let after = api
        .get("/admin/transactions?limit=1000", &api.operator)
        .await
        .expect(200);
    assert_eq!(before, after, "no transfer was recorded");
    assert_eq!(api.t.balance(a.id).await, cr(10));
    api.t.assert_audit_clean().await;
}

async fn grant_retries_with_an_idempotency_key_mint_once(api: TestApi) {
    let a = api.agent(10).await;
    let send = |amount: &'static str| {
        api.http
            .post(format!("{}/admin/grant", api.base))
            .bearer_auth(&api.operator)
            .header("idempotency-key", "grant-42")
            .json(&json!({"agent": a.id.0, "amount": amount}))
            .send()
    };
    let first = super::harness::answer(send("4").await.unwrap()).await;
    let retry = super::harness::answer(send("4").await.unwrap()).await;
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let first = first.expect(201);
    assert_eq!(retry.expect(200), first);
    assert_eq!(api.t.balance(a.id).await, cr(14));
    super::harness::answer(send("5").await.unwrap())
        .await
        .expect_error(409, "idempotency_conflict");
    assert_eq!(api.t.balance(a.id).await, cr(14));
    api.t.assert_audit_clean().await;
}

async fn audit_reports_clean_and_broken_ledgers(api: TestApi) {
    api.agent(10).await;
    let r = api.get("/admin/audit", &api.operator).await.expect(200);
    assert_eq!(r["clean"], true);
    assert_eq!(r["violations"], json!([]));
    assert_eq!(r["accounts"], 3);
    assert_eq!(r["transfers"], 2);
    assert_eq!(r["holds"], 1);
    api.t
        .raw("UPDATE accounts SET balance = balance + 5 WHERE kind = 'burn'")
        .await;
    let r = api.get("/admin/audit", &api.operator).await.expect(200);
    assert_eq!(r["clean"], false);
    let codes: Vec<&str> = r["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"balance_mismatch"), "{codes:?}");
    assert!(codes.contains(&"sum_not_zero"), "{codes:?}");
}

/// One Server-Sent Event.
#[derive(Debug)]
struct Sse {
    id: i64,
    event: String,
    data: Value,
}

/// Reads a live event stream record by record.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn open(api: &TestApi, query: &str, last_event_id: Option<i64>) -> SseReader {
        let mut req = api
            .http
            .get(format!("{}/admin/events/stream{query}", api.base))
            .bearer_auth(&api.operator);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped); fails the test after 10 s.
    async fn next(&mut self) -> Sse {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let record: String = self.buffer.drain(..end + 2).collect();
                    let mut e = Sse {
                        id: -1,
                        event: String::new(),
                        data: Value::Null,
                    };
                    for line in record.lines() {
                        if let Some(v) = line.strip_prefix("id: ") {
                            e.id = v.parse().unwrap();
                        } else if let Some(v) = line.strip_prefix("event: ") {
                            e.event = v.to_string();
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            e.data = serde_json::from_str(v).unwrap();
                        }
                    }
                    if e.id >= 0 {
                        return e;
                    }
                    continue;
                }
                let chunk = self.response.chunk().await.unwrap().expect("stream open");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("an event within 10 s")
    }
}

async fn event_stream_delivers_live_events_and_resumes(api: TestApi) {
    let a = api.agent(10).await;
    // Connected before the grant: the stream starts after the newest event.
    let mut live = SseReader::open(&api, "", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = grant(&api, json!({"agent": a.id.0, "amount": "1"}))
        .await
        .expect(201);
    let e = live.next().await;
    assert_eq!(e.event, "credits_minted");
    assert_eq!(e.data["type"], "credits_minted");
    assert_eq!(e.data["id"], e.id);
    assert_eq!(e.data["agent"], a.id.0);
    assert_eq!(e.data["data"]["transfer_id"], t["id"]);

    // A second event arrives on the same stream.
    grant(&api, json!({"agent": a.id.0, "amount": "2"}))
        .await
        .expect(201);
    let e2 = live.next().await;
    assert!(e2.id > e.id);
    assert_eq!(e2.data["data"]["amount"], "2");
    drop(live);

    // A reconnecting client resumes right after the last event it saw.
    let mut resumed = SseReader::open(&api, "?after=0", Some(e.id - 1)).await;
    let again = resumed.next().await;
    assert_eq!((again.id, again.event.as_str()), (e.id, "credits_minted"));
    assert_eq!(resumed.next().await.id, e2.id);

    // From the start, filtered to one type.
    let mut history = SseReader::open(&api, "?after=0&type=bid_placed", None).await;
    let first = history.next().await;
    assert_eq!(first.event, "bid_placed");
    assert_eq!(first.data["agent"], a.id.0);

    let r = api
        .http
        .get(format!("{}/admin/events/stream", api.base))
        .bearer_auth(&api.operator)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    super::harness::answer(r)
        .await
        .expect_error(400, "invalid_last_event_id");
}

async fn pause_and_resume_round_trip(api: TestApi) {
    let a = api.agent(10).await;
    let op = &api.operator;
    let r = api
        .call(Method::POST, "/admin/pause", Some(op), None)
        .await
        .expect(200);
    assert_eq!(r, json!({"paused": true}));
    assert!(api.t.store.paused().await.unwrap());
    let state = api.get("/market/state", &a.token).await.expect(200);
    assert_eq!(state["paused"], true);
    // Pausing twice is fine.
    api.call(Method::POST, "/admin/pause", Some(op), None)
        .await
        .expect(200);
    let r = api
        .call(Method::POST, "/admin/resume", Some(op), None)
        .await
        .expect(200);
    assert_eq!(r, json!({"paused": false}));
    assert!(!api.t.store.paused().await.unwrap());
    let state = api.get("/market/state", &a.token).await.expect(200);
    assert_eq!(state["paused"], false);
}

async fn create_agent(api: &TestApi, body: Value) -> Answer {
    api.post("/admin/agents", &api.operator, body).await
}

async fn create_agent_from_files_with_credits_and_a_first_bid(api: TestApi) {
    let body = json!({
        "files": [
            {"path": "main.py", "content": "print('hello')\n"},
            {"path": "lib/data.bin", "content": "AAEC/w==", "encoding": "base64"},
        ],
        "initial_credits": "100",
        "bid": {"bundle": {"cpu_seconds": 1, "memory_mb": 64}, "amount": "20"},
    });
    let created = create_agent(&api, body).await.expect(201);
    let id = created["agent"]["id"].as_i64().unwrap();
    assert_eq!(created["agent"]["status"], "alive");
    assert_eq!(created["agent"]["parent"], Value::Null);
    assert_eq!(created["agent"]["lineage"], json!([]));
    assert_eq!(created["bid"]["status"], "pending");
    assert_eq!(created["bid"]["payer"], id);
    assert_eq!(created["bid"]["beneficiary"], id);
    assert_eq!(created["bid"]["amount"], "20");

    let ws = std::path::PathBuf::from(created["workspace"].as_str().unwrap());
    assert!(ws.starts_with(api.t.dir.path()), "{}", ws.display());
    assert_eq!(
        std::fs::read_to_string(ws.join("main.py")).unwrap(),
        "print('hello')\n"
    );
    assert_eq!(
        std::fs::read(ws.join("lib/data.bin")).unwrap(),
        vec![0u8, 1, 2, 255]
    );

    let d = api
        .get(&format!("/admin/agents/{id}"), &api.operator)
        .await
        .expect(200);
    assert_eq!(d["balance"]["balance"], "100");
    assert_eq!(d["balance"]["held"], "20");
    assert_eq!(d["balance"]["available"], "80");
    assert_eq!(d["workspace"], created["workspace"]);
    let minted = api
        .get(
            &format!("/admin/events?type=credits_minted&agent={id}"),
            &api.operator,
        )
        .await
        .expect(200);
    assert_eq!(minted[0]["data"]["amount"], "100");

    // Without a bid.
    let plain = create_agent(
        &api,
        json!({"files": [{"path": "main.py", "content": ""}], "initial_credits": 5}),
    )
    .await
    .expect(201);
    assert_eq!(plain["bid"], Value::Null);
    assert!(plain["agent"]["id"].as_i64().unwrap() > id);
    api.t.assert_audit_clean().await;
}

/// What a refused create must leave as it was: agents, transfers, workspaces.
async fn world_snapshot(api: &TestApi) -> (Value, Value, Vec<String>) {
    let agents = api
        .get("/admin/agents?limit=1000", &api.operator)
        .await
        .expect(200);
    let transfers = api
        .get("/admin/transactions?limit=1000", &api.operator)
        .await
        .expect(200);
    let mut folders: Vec<String> = match std::fs::read_dir(api.t.workspaces()) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    folders.sort();
    (agents, transfers, folders)
}

async fn a_refused_create_leaves_nothing_behind(api: TestApi) {
    api.agent(10).await;
    let before = world_snapshot(&api).await;
    let main = json!([{"path": "main.py", "content": "print(1)"}]);
    let bundle = json!({"cpu_seconds": 1, "memory_mb": 64});
    let refused = [
        // Below the reserve (1 + 6.4 credits).
        (
            json!({"files": main, "initial_credits": "100", "bid": {"bundle": bundle, "amount": "1"}}),
            400,
            "below_reserve",
        ),
        // More than the agent's credits.
        (
            json!({"files": main, "initial_credits": "10", "bid": {"bundle": bundle, "amount": "50"}}),
            409,
            "insufficient_funds",
        ),
        (
            json!({"files": main, "initial_credits": "-1"}),
            400,
            "invalid_amount",
        ),
        (json!({"files": main}), 400, "invalid_amount"),
        (
            json!({"files": main, "initial_credits": "10", "bid": {"bundle": bundle}}),
            400,
            "invalid_amount",
        ),
        (
            json!({"files": main, "initial_credits": "10",
                   "bid": {"bundle": {"cpu_seconds": -1}, "amount": "10"}}),
            400,
            "invalid_bundle",
        ),
        (
            json!({"files": [{"path": "../escape.py", "content": ""}, {"path": "main.py", "content": ""}],
                   "initial_credits": "10"}),
            400,
            "invalid_path",
        ),
        (
            json!({"files": [{"path": "other.py", "content": ""}], "initial_credits": "10"}),
            400,
            "",
        ),
        (json!({"initial_credits": "10"}), 422, "invalid_body"),
        (
            json!({"files": main, "initial_credits": "10", "parent": 1}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in refused {
        let r = create_agent(&api, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {:#}", r.body);
        if !code.is_empty() {
            assert_eq!(r.code(), code, "{body}: {:#}", r.body);
        }
        assert_eq!(world_snapshot(&api).await, before, "{body} changed nothing");
    }
    api.t.assert_audit_clean().await;
}
