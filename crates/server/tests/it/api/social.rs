//! Social endpoints over HTTP (SPEC §9, §11): spawn from files or a copy of the
//! parent's workspace, all or nothing with the child's first bid; messages and
//! their fee; the inbox; the directory.

use super::harness::{test_bundle, TestAgent, TestApi};
use crate::api_contract;
use crate::harness::cr;
use agora_core::{AgentId, Credits};
use agora_server::store::SpawnRequest;
use base64::Engine as _;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

api_contract!(
    spawn_from_files,
    spawn_from_a_copy_of_the_workspace,
    refused_spawns_change_nothing,
    messages_cost_a_fee_and_are_read_once,
    bad_messages_are_refused,
    the_directory_lists_agents_by_id,
);

/// Gives an existing agent `credits` and a running execution, like the harness's
/// `agent` does for a new one.
async fn running(api: &TestApi, id: AgentId, credits: i64) -> TestAgent {
    api.t
        .store
        .grant(id, cr(credits + 20), "test")
        .await
        .unwrap();
    api.execute(id, test_bundle()).await
}

fn credits(text: &str) -> Credits {
    text.parse().unwrap()
}

async fn workspace(api: &TestApi, id: AgentId) -> PathBuf {
    PathBuf::from(api.t.store.agent(id).await.unwrap().workspace)
}

/// Names in the workspaces folder, sorted: no staging folder may be left there.
fn workspace_names(api: &TestApi) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(api.t.workspaces()) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// A bundle whose reserve at the default prices is 7.4 credits.
fn small_bundle() -> Value {
    json!({"cpu_seconds": 1, "memory_mb": 64})
}

async fn spawn_from_files(api: TestApi) {
    // A parent that is itself a child, so the lineage has two generations.
    let grandparent = api.t.agent(100).await;
    let p = api
        .t
        .store
        .spawn(SpawnRequest {
            parent: grandparent,
            initial_credits: cr(1),
            spawn_cost: cr(0),
            workspaces_root: api.t.workspaces(),
        })
        .await
        .unwrap();
    let parent = running(&api, p, 99).await;
    assert_eq!(api.t.balance(p).await, cr(100));

    let lib = base64::engine::general_purpose::STANDARD.encode([0u8, 159, 146, 150, 255]);
    let body = json!({
        "initial_credits": "30",
        "files": [
            {"path": "main.py", "content": "print('hello')\n"},
            {"path": "agent.toml", "content": "entry = \"main.py\"\n", "encoding": "utf8"},
            {"path": "lib/deep/blob.bin", "content": lib, "encoding": "base64"},
        ],
        "bid": {"bundle": small_bundle(), "amount": "10"},
    });
    let made = api
        .post("/social/spawn", &parent.token, body)
        .await
        .expect(201);
    let child = AgentId(made["agent"].as_i64().unwrap());
    let bid = &made["bid"];
    assert_eq!(bid["status"], "pending");
    assert_eq!(bid["payer"], child.0);
    assert_eq!(bid["beneficiary"], child.0);
    assert_eq!(bid["amount"], "10");

    // The parent paid the fee (10, burned) and the endowment (30).
    assert_eq!(api.t.balance(p).await, cr(60));
    let c = api.t.store.balance(child).await.unwrap();
    assert_eq!(c.balance, cr(30));
    assert_eq!(c.held, cr(10));
    assert_eq!(c.available, cr(20));
    let rec = api.t.store.agent(child).await.unwrap();
    assert_eq!(rec.lineage, vec![p, grandparent]);
    assert_eq!(rec.parent_id, Some(p));
    assert_eq!(rec.status.as_str(), "alive");
    let pending = api.t.store.bid_book(100).await.unwrap();
    assert!(pending
        .iter()
        .any(|b| b.beneficiary == child && b.status.as_str() == "pending"));

    let ws = workspace(&api, child).await;
    assert_eq!(
        std::fs::read_to_string(ws.join("main.py")).unwrap(),
        "print('hello')\n"
    );
    assert_eq!(
        std::fs::read(ws.join("lib/deep/blob.bin")).unwrap(),
        [0u8, 159, 146, 150, 255]
    );
    assert!(ws.join("agent.toml").is_file());
    let mode = std::fs::metadata(ws.join("main.py"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let mode = std::fs::metadata(ws.join("lib/deep"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(
        !workspace_names(&api).iter().any(|n| n.starts_with('.')),
        "{:?}",
        workspace_names(&api)
    );

    // Without a bid: the child just gets its credits.
    let made = api
        .post(
            "/social/spawn",
            &parent.token,
            json!({"initial_credits": 2.5, "files": [{"path": "main.py", "content": ""}]}),
        )
        .await
        .expect(201);
    assert_eq!(made["bid"], Value::Null);
    let second = AgentId(made["agent"].as_i64().unwrap());
    assert_eq!(api.t.balance(second).await, credits("2.5"));
    assert_eq!(api.t.balance(p).await, credits("47.5"));
    api.t.assert_audit_clean().await;
}

async fn spawn_from_a_copy_of_the_workspace(api: TestApi) {
    let parent = api.agent(100).await;
    let src = workspace(&api, parent.id).await;
    std::fs::create_dir_all(src.join("notes/old")).unwrap();
    std::fs::write(src.join("main.py"), "import notes\n").unwrap();
    std::fs::write(src.join("notes/old/a.txt"), "remember").unwrap();
    std::fs::write(src.join("env.json"), "{\"token\": \"the parent's\"}").unwrap();
    let made = api
        .post(
            "/social/spawn",
            &parent.token,
            json!({"initial_credits": "5.5", "clone_workspace": true}),
        )
        .await
        .expect(201);
    let child = AgentId(made["agent"].as_i64().unwrap());
    let ws = workspace(&api, child).await;
    assert_ne!(ws, src);
    assert_eq!(
        std::fs::read_to_string(ws.join("main.py")).unwrap(),
        "import notes\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("notes/old/a.txt")).unwrap(),
        "remember"
    );
    // The parent's execution token stays with the parent.
    assert!(!ws.join("env.json").exists());
    // The parent's workspace is untouched.
    assert!(src.join("env.json").exists());
    assert_eq!(api.t.balance(child).await, credits("5.5"));
    assert_eq!(api.t.balance(parent.id).await, credits("84.5"));
    assert_eq!(
        api.t.store.agent(child).await.unwrap().lineage,
        vec![parent.id]
    );
    api.t.assert_audit_clean().await;
}

async fn refused_spawns_change_nothing(api: TestApi) {
    let parent = api.agent(100).await;
    let src = workspace(&api, parent.id).await;
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("main.py"), "print(1)").unwrap();
    let main = json!({"path": "main.py", "content": "print(1)"});
    let with_file = |path: &str| json!({"initial_credits": 10, "files": [main.clone(), {"path": path, "content": "x"}]});
    let mut cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"initial_credits": -5, "files": [main.clone()]}),
            400,
            "invalid_amount",
        ),
        (
            json!({"initial_credits": 0, "files": [main.clone()]}),
            400,
            "invalid_amount",
        ),
        (json!({"files": [main.clone()]}), 400, "invalid_amount"),
        (with_file("../x"), 400, "invalid_path"),
        (with_file("/etc/passwd"), 400, "invalid_path"),
        (with_file("a/../../b"), 400, "invalid_path"),
        (with_file("a\\b"), 400, "invalid_path"),
        (with_file(""), 400, "invalid_path"),
        (with_file("a\u{0}b"), 400, "invalid_path"),
        (with_file("main.py"), 400, "invalid_path"),
        (
            json!({"initial_credits": 10, "files": [{"path": "app.py", "content": ""}]}),
            400,
            "missing_entry_point",
        ),
        (
            json!({"initial_credits": 10, "files": [{"path": "main.py", "content": "!!", "encoding": "base64"}]}),
            400,
            "invalid_encoding",
        ),
        (
            json!({"initial_credits": 10, "files": [main.clone()], "clone_workspace": true}),
            400,
            "invalid_workspace_source",
        ),
        (
            json!({"initial_credits": 10}),
            400,
            "invalid_workspace_source",
        ),
        (
            json!({"initial_credits": 10, "files": [main.clone()],
                   "bid": {"bundle": small_bundle(), "amount": "7"}}),
            400,
            "below_reserve",
        ),
        (
            json!({"initial_credits": 10, "files": [main.clone()],
                   "bid": {"bundle": small_bundle(), "amount": "11"}}),
            409,
            "insufficient_funds",
        ),
        (
            json!({"initial_credits": 10, "files": [main.clone()],
                   "bid": {"bundle": {"cpu_seconds": -1}, "amount": "11"}}),
            400,
            "invalid_bundle",
        ),
        (
            json!({"initial_credits": 91, "files": [main.clone()]}),
            409,
            "insufficient_funds",
        ),
    ];
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"path": format!("f{i}"), "content": ""}))
        .collect();
    cases.push((
        json!({"initial_credits": 10, "files": many}),
        400,
        "too_many_files",
    ));
    let big = "x".repeat(1024 * 1024 + 1);
    cases.push((
        json!({"initial_credits": 10, "files": [main.clone(),
            {"path": "a", "content": big}, {"path": "b", "content": big}]}),
        400,
        "files_too_large",
    ));

    let agents_before = api.t.store.agents(0, 1000).await.unwrap().len();
    let names_before = workspace_names(&api);
    let check_unchanged = |what: String| {
        let api = &api;
        let names_before = names_before.clone();
        async move {
            let b = api.t.store.balance(parent.id).await.unwrap();
            assert_eq!((b.balance, b.held), (cr(100), cr(0)), "{what}");
            assert_eq!(
                api.t.store.agents(0, 1000).await.unwrap().len(),
                agents_before,
                "{what}"
            );
            assert_eq!(workspace_names(api), names_before, "{what}");
            api.t.assert_audit_clean().await;
        }
    };
    for (body, status, code) in cases {
        let what = format!("{body:.200}");
        api.post("/social/spawn", &parent.token, body)
            .await
            .expect_error(status, code);
        check_unchanged(what).await;
    }

    // A link in the parent's workspace refuses a copy, wherever it hides.
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("lib/passwd")).unwrap();
    let r = api
        .post(
            "/social/spawn",
            &parent.token,
            json!({"initial_credits": 10, "clone_workspace": true}),
        )
        .await;
    r.expect_error(400, "links_not_allowed");
    assert_eq!(r.body["error"]["details"]["path"], "lib/passwd");
    check_unchanged("symlink".into()).await;
    std::fs::remove_file(src.join("lib/passwd")).unwrap();

    // A copy without the entry point is refused like sent files.
    std::fs::remove_file(src.join("main.py")).unwrap();
    api.post(
        "/social/spawn",
        &parent.token,
        json!({"initial_credits": 10, "clone_workspace": true}),
    )
    .await
    .expect_error(400, "missing_entry_point");
    check_unchanged("no main.py".into()).await;
}

async fn messages_cost_a_fee_and_are_read_once(api: TestApi) {
    let a = api.agent(10).await;
    let b = api.agent(10).await;
    let sent = api
        .post(
            "/social/message",
            &a.token,
            json!({"to": b.id.0, "content": "hello, b"}),
        )
        .await
        .expect(201);
    assert_eq!(sent["fee"], "0.1");
    let second = api
        .post(
            "/social/message",
            &a.token,
            json!({"to": b.id.0, "content": "é".repeat(8 * 1024)}),
        )
        .await
        .expect(201);
    // The fee is burned: the sender is poorer, the recipient no richer.
    assert_eq!(api.t.balance(a.id).await, credits("9.8"));
    assert_eq!(api.t.balance(b.id).await, cr(10));
    let burned = api
        .t
        .store
        .account_balance(agora_core::Account::Burn)
        .await
        .unwrap()
        .unwrap()
        .balance;
    assert!(burned >= credits("0.2"));

    let inbox = api.get("/social/inbox", &b.token).await.expect(200);
    let inbox = inbox.as_array().unwrap();
    assert_eq!(inbox.len(), 2);
    assert_eq!(inbox[0]["id"], sent["id"]);
    assert_eq!(inbox[0]["from"], a.id.0);
    assert_eq!(inbox[0]["to"], b.id.0);
    assert_eq!(inbox[0]["content"], "hello, b");
    assert!(inbox[0]["read_at"].as_i64().unwrap() > 0);
    assert_eq!(inbox[1]["id"], second["id"]);
    // Read once: the next read is empty, and the sender's inbox never had them.
    assert_eq!(
        api.get("/social/inbox", &b.token).await.expect(200),
        json!([])
    );
    assert_eq!(
        api.get("/social/inbox", &a.token).await.expect(200),
        json!([])
    );

    // Paging: oldest first, `limit` at a time.
    for i in 0..3 {
        api.post(
            "/social/message",
            &a.token,
            json!({"to": b.id.0, "content": format!("m{i}")}),
        )
        .await
        .expect(201);
    }
    let page = api.get("/social/inbox?limit=2", &b.token).await.expect(200);
    assert_eq!(page[0]["content"], "m0");
    assert_eq!(page[1]["content"], "m1");
    let rest = api.get("/social/inbox?limit=2", &b.token).await.expect(200);
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["content"], "m2");
    api.t.assert_audit_clean().await;
}

async fn bad_messages_are_refused(api: TestApi) {
    let a = api.agent(10).await;
    let b = api.agent(10).await;
    let poor = api.agent(0).await;
    for (body, status, code) in [
        (
            json!({"to": 999_999, "content": "hi"}),
            404,
            "unknown_agent",
        ),
        (
            json!({"to": a.id.0, "content": "hi"}),
            400,
            "message_to_self",
        ),
        (json!({"to": b.id.0, "content": ""}), 400, "invalid_content"),
        (
            json!({"to": b.id.0, "content": "x".repeat(16 * 1024 + 1)}),
            400,
            "content_too_large",
        ),
        (json!({"to": b.id.0, "content": 5}), 422, "invalid_body"),
        (json!({"to": "b", "content": "hi"}), 422, "invalid_body"),
    ] {
        api.post("/social/message", &a.token, body)
            .await
            .expect_error(status, code);
    }
    api.post(
        "/social/message",
        &poor.token,
        json!({"to": b.id.0, "content": "hi"}),
    )
    .await
    .expect_error(409, "insufficient_funds");
    assert_eq!(api.t.balance(a.id).await, cr(10));
    assert_eq!(
        api.get("/social/inbox", &b.token).await.expect(200),
        json!([])
    );
    // Exactly 16 KiB is fine.
    api.post(
        "/social/message",
        &a.token,
        json!({"to": b.id.0, "content": "x".repeat(16 * 1024)}),
    )
    .await
    .expect(201);
    api.get("/social/inbox?limit=1001", &b.token)
        .await
        .expect_error(400, "invalid_query");
    api.t.assert_audit_clean().await;
}

async fn the_directory_lists_agents_by_id(api: TestApi) {
    let a = api.agent(10).await;
    let b = api.agent(10).await;
    // An agent with no bid and nothing running is culled: one dead agent.
    let dead = api.t.agent(0).await;
    let cycle = api.t.store.current_cycle().await.unwrap();
    assert_eq!(api.t.store.cull(cycle).await.unwrap(), vec![dead]);

    let ids = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect()
    };
    let all = api.get("/social/agents", &a.token).await.expect(200);
    assert_eq!(ids(&all), vec![a.id.0, b.id.0, dead.0]);
    assert_eq!(all[0]["status"], "alive");
    assert_eq!(all[0]["lineage"], json!([]));
    let alive = api
        .get("/social/agents?status=alive", &a.token)
        .await
        .expect(200);
    assert_eq!(ids(&alive), vec![a.id.0, b.id.0]);
    let gone = api
        .get("/social/agents?status=dead", &a.token)
        .await
        .expect(200);
    assert_eq!(ids(&gone), vec![dead.0]);
    assert_eq!(gone[0]["death_reason"], "culled");
    let page = api
        .get(
            &format!("/social/agents?after={}&limit=1", a.id.0),
            &a.token,
        )
        .await
        .expect(200);
    assert_eq!(ids(&page), vec![b.id.0]);
    let page = api
        .get(
            &format!("/social/agents?status=alive&after={}", b.id.0),
            &a.token,
        )
        .await
        .expect(200);
    assert_eq!(page, json!([]));
    for bad in ["status=zombie", "limit=0", "limit=1001", "after=x"] {
        api.get(&format!("/social/agents?{bad}"), &a.token)
            .await
            .expect_error(400, "invalid_query");
    }
}
