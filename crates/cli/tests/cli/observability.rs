//! The structured log and the metrics of a real `agora up` (SPEC §13): every line
//! of `system.log` is a JSON object with its component, one execution can be
//! followed through the orchestrator, the sandbox, the System Service and the
//! agent's own output by its id, and the Orchestrator times its cycles.

use super::economy::World;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const COMPONENTS: [&str; 9] = [
    "orchestrator",
    "scheduler",
    "market",
    "economy",
    "attention",
    "sandbox",
    "api",
    "llm_proxy",
    "agent",
];

/// The number after `name ` in a Prometheus text page.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

#[test]
fn one_execution_is_traced_through_every_component_in_system_log() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(dir.path(), &[], &[]);
    let mut finished = None;
    w.wait_for(
        "an execution of genesis finished",
        Duration::from_secs(120),
        None,
        |w| {
            finished = w.agent(1)["executions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| !matches!(e["status"].as_str(), Some("scheduled" | "running")))
                .and_then(|e| e["id"].as_i64());
            finished.is_some()
        },
    );
    let execution = finished.unwrap();
    let (status, metrics) = super::http(&w.addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(sample(&metrics, "agora_cycle_duration_seconds_count") >= 1.0);
    w.up.interrupt();

    let log = std::fs::read_to_string(dir.path().join("system.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &lines {
        let component = l["component"].as_str().unwrap_or_default();
        assert!(COMPONENTS.contains(&component), "component: {l}");
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    let of_execution: Vec<&Value> = lines
        .iter()
        .filter(|l| l["execution"].as_i64() == Some(execution))
        .collect();
    let seen: BTreeSet<&str> = of_execution
        .iter()
        .filter_map(|l| l["component"].as_str())
        .collect();
    for c in ["orchestrator", "sandbox", "api", "agent"] {
        assert!(
            seen.contains(c),
            "no {c} line of execution {execution} (seen {seen:?}) in:\n{log}"
        );
    }
    for l in &of_execution {
        assert_eq!(l["agent"], 1, "the agent's id beside the execution's: {l}");
    }
    // The agent's requests, each with a request id, at the default level.
    let request = of_execution
        .iter()
        .find(|l| l["component"] == "api" && l["message"] == "request")
        .unwrap_or_else(|| panic!("no request line of execution {execution}"));
    assert!(
        request["request"].is_string() && request["route"].is_string(),
        "{request}"
    );
    // Lines inside a cycle carry its number.
    assert!(
        lines
            .iter()
            .any(|l| l["component"] == "orchestrator" && l["cycle"].as_i64() >= Some(1)),
        "no cycle id"
    );
}
