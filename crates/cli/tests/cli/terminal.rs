//! The terminal commands against a running `agora up`: `agora human` rating the
//! active prompt from piped input (re-asking after bad numbers), `agora status`
//! and `agora agents` showing the world as the API sees it, `agora events export`
//! paging the whole log into ordered JSON lines and following it live, and the
//! one-line answers when the server is not there or the token is wrong.

use super::economy::World;
use super::{stdout, wait_at_most};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `agora <args> --url <the world>` with `stdin` piped in; the operator token
/// comes from the data directory, as it does by default.
fn client(dir: &Path, w: &World, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .args(["--url", &format!("http://{}", w.addr)])
        .env_remove("AGORA_URL")
        .env_remove("AGORA_OPERATOR_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    // Read on threads so that a full pipe cannot stall the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).unwrap();
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).unwrap();
        v
    });
    let status = wait_at_most(&mut child, Duration::from_secs(60));
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every event, paged by id, straight from the API.
fn all_events(w: &World) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e["id"].as_i64().unwrap());
        let page = w.get(&format!("/admin/events?after={after}&limit=1000"));
        let page = page.as_array().unwrap();
        out.extend(page.iter().cloned());
        if page.len() < 1000 {
            return out;
        }
    }
}

/// JSON lines, each parsed; fails on a line that is not a JSON object.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

/// `agora events export --follow` plus `args` against the world, and its output's
/// lines; stderr is piped for the caller to read once the child has ended.
fn follower(
    dir: &Path,
    w: &World,
    args: &[&str],
) -> (Child, std::io::Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("--data-dir")
        .arg(dir)
        .args(["events", "export", "--follow"])
        .args(args)
        .args(["--url", &format!("http://{}", w.addr)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Sends SIGINT, as Ctrl-C at a terminal does.
fn ctrl_c(child: &Child) {
    let sent = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn human_rates_the_active_prompt_and_the_export_holds_the_whole_story() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(dir.path(), &[], &[]);
    w.wait_for(
        "genesis prompts the human",
        Duration::from_secs(90),
        None,
        |w| w.get("/human/queue")["active"].is_object(),
    );
    let active = w.get("/human/queue")["active"].clone();
    let (prompt, agent) = (
        active["id"].as_i64().unwrap(),
        active["agent"].as_i64().unwrap(),
    );

    // Two bad answers are re-asked; a `q` after the rating quits, whether a next
    // prompt is shown or the queue is empty.
    let o = client(
        dir.path(),
        &w,
        &["human", "--poll-ms", "100"],
        "abc\n11\n7\n 5 \n6\nclear and useful\nq\n",
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(
        out.contains(&format!("── prompt {prompt} from agent {agent}")),
        "{out}"
    );
    assert!(
        out.contains("\"abc\" is not a whole number from 0 to 10"),
        "{out}"
    );
    assert!(
        out.contains("\"11\" is not a whole number from 0 to 10"),
        "{out}"
    );
    assert!(
        out.matches("interesting (0-10): ").count() >= 3,
        "asked again after each bad answer: {out}"
    );
    // 7 × 50 + 5 × 50 + 6 × 50 with the default rates.
    assert!(
        out.contains(&format!(
            "rated prompt {prompt}: 900 credits minted to agent {agent}"
        )),
        "{out}"
    );
    assert!(out.contains("rated 1 prompt(s), minted 900"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "no escape sequence reaches the terminal"
    );

    let detail = w.agent(agent);
    let rated = detail["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prompt"]["id"] == prompt)
        .unwrap_or_else(|| panic!("{detail}"));
    let r = &rated["response"];
    assert_eq!(
        (&r["interesting"], &r["useful"], &r["understandable"]),
        (&json!(7), &json!(5), &json!(6)),
        "{rated}"
    );
    assert_eq!(r["reason"], "clear and useful", "{rated}");
    assert_eq!(r["credits_awarded"], "900", "{rated}");

    // The whole log, seven events per request.
    let o = client(
        dir.path(),
        &w,
        &["events", "export", "--page-size", "7"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = json_lines(&stdout(&o));
    let got = ids(&exported);
    assert!(got.len() > 7, "more than one page: {} events", got.len());
    assert!(
        got.windows(2).all(|p| p[0] < p[1]),
        "ordered by id: {got:?}"
    );
    let last = *got.last().unwrap();
    let api: Vec<Value> = all_events(&w)
        .into_iter()
        .filter(|e| e["id"].as_i64().unwrap() <= last)
        .collect();
    assert_eq!(got, ids(&api), "every event up to the last, none twice");
    assert_eq!(exported, api, "each line is the event as the API sends it");
    let has = |kind: &str| {
        exported
            .iter()
            .any(|e| e["type"] == kind && e["data"]["prompt_id"] == prompt)
    };
    assert!(has("prompt_submitted"), "the prompt is in the log");
    assert!(has("human_reward_issued"), "the rating is in the log");

    // Filters, resumption and a file.
    let file = dir.path().join("rewards.jsonl");
    let o = client(
        dir.path(),
        &w,
        &[
            "events",
            "export",
            "--type",
            "human_reward_issued",
            "--agent",
            &agent.to_string(),
            "--output",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "the events go to the file");
    let rewards = json_lines(&std::fs::read_to_string(&file).unwrap());
    assert!(!rewards.is_empty());
    assert!(rewards
        .iter()
        .all(|e| e["type"] == "human_reward_issued" && e["agent"] == agent));
    let middle = got[got.len() / 2];
    let o = client(
        dir.path(),
        &w,
        &["events", "export", "--after", &middle.to_string()],
        "",
    );
    let tail = ids(&json_lines(&stdout(&o)));
    assert_eq!(
        tail.first(),
        got.iter().find(|i| **i > middle),
        "resumes after --after"
    );

    // --follow writes events that happen after it started, until Ctrl-C.
    let (mut child, mut lines) = follower(dir.path(), &w, &["--after", &last.to_string()]);
    let start = Instant::now();
    let mut followed = Vec::new();
    // The world keeps running: cycles and executions write events every second.
    while followed.len() < 3 {
        let line = lines.next().expect("the follower ended early").unwrap();
        followed.push(serde_json::from_str::<Value>(&line).unwrap());
        assert!(start.elapsed() < Duration::from_secs(60), "no new events");
    }
    let fids = ids(&followed);
    assert!(
        fids[0] > last && fids.windows(2).all(|p| p[0] < p[1]),
        "{fids:?}"
    );
    ctrl_c(&child);
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    assert!(status.success(), "Ctrl-C ends --follow cleanly");

    // Ctrl-C also ends it cleanly while it still pages through the past (one event
    // a request here), before it has begun to follow.
    let (mut child, mut lines) = follower(dir.path(), &w, &["--page-size", "1"]);
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    ctrl_c(&child);
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "Ctrl-C while paging: {status:?} {err}");
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let mut seen = vec![first];
    seen.extend(rest);
    let sids = ids(&seen);
    assert!(sids.windows(2).all(|p| p[0] < p[1]), "{sids:?}");
    assert!(
        err.contains(&format!("the last id {}", sids.last().unwrap())),
        "{err}"
    );
    w.up.interrupt();
}

#[test]
fn status_and_agents_show_the_world_as_the_api_does() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(dir.path(), &[], &[]);
    // An agent that runs once without bidding again dies of law 2.
    let (status, v) = w.post(
        "/admin/agents",
        &json!({"files": [{"path": "main.py", "content": "print('once')\n"}],
                "initial_credits": "500",
                "bid": {"bundle": {"cpu_seconds": 0.5, "memory_mb": 64}, "amount": "20"}}),
    );
    assert_eq!(status, 201, "{v}");
    let quitter = v["agent"]["id"].as_i64().unwrap();
    w.wait_for("the quitter dies", Duration::from_secs(60), None, |w| {
        w.agent(quitter)["agent"]["status"] == "dead"
    });
    let (status, v) = w.post("/admin/pause", &json!({}));
    assert_eq!(status, 200, "{v}");

    let o = client(dir.path(), &w, &["status"], "");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let agents = w.get("/admin/agents?limit=1000");
    let count = |s: &str| {
        agents
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["agent"]["status"] == s)
            .count()
    };
    let (alive, dead) = (count("alive"), count("dead"));
    assert!(alive >= 1 && dead >= 1);
    assert!(
        out.contains(&format!("population   {alive} alive, {dead} dead")),
        "{out}"
    );
    assert!(out.contains("allocation PAUSED"), "{out}");
    let cycle: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("cycle"))
        .and_then(|l| l.trim().split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(cycle >= 1, "{out}");
    // Nobody rated anything: the genesis grant and the quitter's credits.
    assert!(out.contains("minted 1500,"), "{out}");
    for resource in ["cpu_seconds", "memory_mb", "tokens", "attention_share"] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(resource) && l.contains('%')),
            "{resource} with its price and utilisation: {out}"
        );
    }
    assert!(
        out.contains("executions   ") && out.contains("succeeded "),
        "{out}"
    );
    assert!(out.contains("audit        clean ("), "{out}");
    // The same report as JSON, for scripts.
    let o = client(dir.path(), &w, &["status", "--json"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["paused"], true, "{report}");
    assert_eq!(report["population"]["alive"], alive as u64, "{report}");
    assert_eq!(report["population"]["dead"], dead as u64, "{report}");
    assert_eq!(report["credits"]["minted"], "1500", "{report}");
    assert_eq!(report["markets"].as_array().unwrap().len(), 4, "{report}");
    assert!(
        report["executions"]["succeeded"].as_u64() >= Some(1),
        "{report}"
    );
    assert_eq!(report["audit"]["clean"], true, "{report}");
    assert!(report["cycle"].as_i64() >= Some(cycle), "{report}");
    w.post("/admin/resume", &json!({}));
    let out = stdout(&client(dir.path(), &w, &["status"], ""));
    assert!(out.contains("allocation running"), "{out}");

    // The table: ids in the first column.
    let rows = |args: &[&str]| -> Vec<(i64, String)> {
        let o = client(dir.path(), &w, args, "");
        let out = stdout(&o);
        assert!(o.status.success(), "{out}\n{}", stderr(&o));
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        assert!(
            header.contains("id") && header.contains("balance") && header.contains("children"),
            "{out}"
        );
        lines
            .filter_map(|l| {
                // A row is an id and a status; the count line below is not.
                let mut cells = l.split_whitespace();
                let id = cells.next()?.parse().ok()?;
                matches!(cells.next(), Some("alive" | "dead")).then(|| (id, l.to_string()))
            })
            .collect()
    };
    let every = rows(&["agents"]);
    let genesis = every.iter().find(|(id, _)| *id == 1).unwrap();
    assert!(genesis.1.contains("alive"), "{every:?}");
    let q = every.iter().find(|(id, _)| *id == quitter).unwrap();
    assert!(q.1.contains("dead") && q.1.contains("no_bid"), "{every:?}");
    assert!(
        every.iter().position(|r| r.0 == 1) < every.iter().position(|r| r.0 == quitter),
        "the alive first: {every:?}"
    );
    let dead_only = rows(&["agents", "--status", "dead"]);
    assert!(dead_only.iter().any(|r| r.0 == quitter), "{dead_only:?}");
    assert!(
        dead_only.iter().all(|r| r.1.contains("dead")),
        "{dead_only:?}"
    );
    let alive_only = rows(&["agents", "--status", "alive"]);
    assert!(alive_only.iter().any(|r| r.0 == 1), "{alive_only:?}");
    assert!(!alive_only.iter().any(|r| r.0 == quitter), "{alive_only:?}");
    let o = client(dir.path(), &w, &["agents", "--limit", "1"], "");
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 3, "header, one row, the count: {out}");
    assert!(out.contains("more not shown (--limit)"), "{out}");
    // As JSON: the API's objects in the table's order (alive first), each with its
    // children. The world runs on meanwhile, so agents may have been born since.
    let o = client(dir.path(), &w, &["agents", "--json"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<i64> = listed
        .iter()
        .map(|a| a["agent"]["id"].as_i64().unwrap())
        .collect();
    assert!(
        every.iter().all(|r| ids.contains(&r.0)),
        "{ids:?} {every:?}"
    );
    let alive = listed.iter().map(|a| a["agent"]["status"] == "alive");
    assert!(
        alive.clone().skip_while(|a| *a).all(|a| !a),
        "the alive first: {ids:?}"
    );
    let q = listed.iter().find(|a| a["agent"]["id"] == quitter).unwrap();
    assert_eq!(q["agent"]["death_reason"], "no_bid", "{q}");
    assert_eq!(q["children"], 0, "{q}");
    assert!(q["balance"]["balance"].is_string(), "{q}");

    // A wrong token and an absent server are one clear line each.
    let o = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["status", "--url", &format!("http://{}", w.addr)])
        .args(["--token", "agora_o_not_the_token"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("401 invalid_token"), "{}", stderr(&o));
    let addr = w.addr.clone();
    w.up.interrupt();
    let o = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["agents", "--url", &format!("http://{addr}")])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("is `agora up` running?") && e.lines().count() == 1,
        "{e}"
    );
}
