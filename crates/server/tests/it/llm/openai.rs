//! A real client: the official `openai` Python package (PyPI, installed by
//! scripts/install-openai.sh into the project's virtualenv) against the proxy
//! over TCP with an execution token. The interpreter is `$AGORA_TEST_PYTHON`;
//! the test skips when it is absent, unless `AGORA_REQUIRE_OPENAI` is set.

use super::Llm;
use std::path::Path;

/// The interpreter with `openai` installed, or `None` (skip).
fn python() -> Option<String> {
    let python = std::env::var("AGORA_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty() && Path::new(p).exists());
    if python.is_none() {
        assert!(
            std::env::var_os("AGORA_REQUIRE_OPENAI").is_none(),
            "AGORA_REQUIRE_OPENAI is set but AGORA_TEST_PYTHON names no interpreter \
             (run scripts/install-openai.sh)"
        );
        eprintln!("skipping: AGORA_TEST_PYTHON is not set (scripts/install-openai.sh)");
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openai_sdk_streams_completes_and_does_not_retry_402() {
    let Some(python) = python() else { return };
    let llm = Llm::start(crate::harness::sqlite().await, |_| {}).await;
    let rich = llm.api.agent(10).await;
    let poor = llm.agent_with_tokens(40.0).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/llm/openai_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("{}/v1", llm.api.base))
        .arg(&rich.token)
        .arg(&poor.token)
        .output()
        .await
        .expect("run the Python client");
    assert!(
        out.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["whole"], "Hello world", "{report}");
    assert_eq!(report["streamed"], "Hello world", "{report}");
    assert_eq!(report["usage"], 12);
    assert_eq!(report["refusal"]["status"], 402, "{report}");
    assert_eq!(report["refusal"]["code"], "insufficient_quota");
    // Two calls reached the upstream; the refused one was asked once, not retried.
    assert_eq!(llm.mock.calls(), 2);
    let (_, metrics) = llm.api.scrape(None).await;
    assert!(
        metrics.contains("agora_llm_refusals_total{code=\"insufficient_quota\"} 1\n"),
        "{metrics}"
    );
    assert_eq!(llm.settled(rich.execution).await.used, 24);
}
