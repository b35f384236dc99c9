//! `/metrics` (SPEC §13) as Prometheus reads it: after some activity the page
//! passes `promtool check metrics` (its parser and its naming lints, with no
//! complaint at all) and holds every family of §13.

use super::harness::TestApi;
use crate::api_contract;
use std::io::Write;
use std::process::{Command, Stdio};

api_contract!(metrics_pass_promtool_and_cover_every_figure);

/// Every family `/metrics` must show, as named in its `# TYPE` line.
const FAMILIES: &[&str] = &[
    "agora_api_requests_total",
    "agora_api_request_duration_seconds",
    "agora_agents",
    "agora_agent_balance_credits",
    "agora_agent_held_credits",
    "agora_minted_credits",
    "agora_burned_credits",
    "agora_executions",
    "agora_pending_bids",
    "agora_pending_prompts",
    "agora_market_price_credits",
    "agora_market_utilisation_ratio",
    "agora_current_cycle",
    "agora_cycle_duration_seconds",
    "agora_llm_tokens_charged_total",
    "agora_llm_calls_total",
    "agora_llm_refusals_total",
    "agora_llm_overhead_seconds",
];

/// `promtool check metrics` on `text`: its exit status and what it printed. `None`
/// when promtool is not installed and `AGORA_REQUIRE_PROMTOOL` is not set.
fn promtool(text: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("AGORA_REQUIRE_PROMTOOL").is_some() => {
            panic!("AGORA_REQUIRE_PROMTOOL is set but promtool cannot run: {e}")
        }
        Err(e) => {
            eprintln!("skipping the promtool check: {e} (install Debian's prometheus package)");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

async fn metrics_pass_promtool_and_cover_every_figure(api: TestApi) {
    let a = api.agent(5).await;
    let b = api.agent(5).await;
    api.get("/market/prices", &a.token).await.expect(200);
    api.post(
        "/economic/transfer",
        &a.token,
        serde_json::json!({"to": b.id.0, "amount": "1"}),
    )
    .await
    .expect(201);
    api.get("/admin/agents", &api.operator).await.expect(200);
    api.get("/no/such/route", &a.token).await.expect(404);
    // No upstream is configured: a refusal, counted by the LLM proxy.
    api.get("/v1/models", &a.token).await;
    let (kind, text) = api.scrape(None).await;
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    for family in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing from /metrics:\n{text}"
        );
    }
    assert!(
        text.contains("agora_executions{status=\"scheduled\"} 2"),
        "executions by status:\n{text}"
    );
    if let Some((ok, said)) = promtool(&text) {
        assert!(
            ok && said.trim().is_empty(),
            "promtool check metrics: {said}\non:\n{text}"
        );
    }
    // A scraper that asks for OpenMetrics gets it.
    let (kind, om) = api
        .scrape(Some("application/openmetrics-text; version=1.0.0"))
        .await;
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE agora_api_requests counter"));
}
