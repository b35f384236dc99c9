//! A System Service with something in it, for schema-driven fuzzing
//! (`scripts/fuzz-api.sh`): a fresh world in a temporary directory with agents
//! inside running executions, pending bids, an active and a pending prompt, and
//! unread messages; the operator token; the API on 127.0.0.1 at a free port; and
//! an OpenAI-shaped upstream that always answers, behind the LLM proxy.
//!
//! `cargo run -p agora-server --example api_fixture -- <out.json>` writes
//! `{"base_url", "agent_token", "operator_token", "agent_id"}` to `<out.json>` once
//! the server answers, then serves until SIGTERM or SIGINT and exits 0.

use agora_core::{AgentId, Bundle, BundleSpec, Credits};
use agora_server::api::operator;
use agora_server::api_bench::{fresh_world, running_agent, small_bundle, LocalServer};
use agora_server::store::NewBid;
use anyhow::{bail, Context};
use serde_json::json;
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

fn credits(c: i64) -> Credits {
    Credits::from_micros(c * 1_000_000)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        bail!("usage: api_fixture <out.json>");
    };
    let dir = tempfile::tempdir()?;
    let w = fresh_world(dir.path(), None).await?;
    let (store, config) = (w.store.clone(), w.config.clone());
    let operator_token = match operator::ensure(&config.data_dir)? {
        operator::Ensured::Created(t) => t,
        operator::Ensured::Existing => {
            std::fs::read_to_string(operator::token_path(&config.data_dir))?
                .trim()
                .to_string()
        }
    };

    // The fuzzed agent is rich and may prompt the human; the others give it
    // someone to pay, message and bid for, and fill the attention queue.
    let with_attention = small_bundle(&config, 0.1)?;
    // The fuzzed agent's bundle has tokens for many LLM calls.
    let with_tokens = Bundle::parse(
        &BundleSpec {
            tokens: 10_000.0,
            ..with_attention.to_spec()
        },
        &config.bundle_limits(),
    )?;
    let me = running_agent(&store, &config, with_tokens, credits(1_000_000)).await?;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(running_agent(&store, &config, with_attention, credits(1_000)).await?);
    }
    for (i, o) in others.iter().take(2).enumerate() {
        store
            .submit_prompt(
                o.id,
                o.execution,
                json!({"text": format!("Fixture prompt {i}: is this interesting?")}),
                credits(1),
            )
            .await?;
    }
    let bid_for = |payer: AgentId, beneficiary: AgentId, amount: i64| NewBid {
        payer,
        beneficiary,
        bundle: with_attention,
        amount: credits(amount),
        ttl_cycles: 1_000_000,
        max_pending: config.economy.max_pending_bids,
    };
    for (beneficiary, amount) in [(me.id, 20), (me.id, 25), (others[0].id, 30)] {
        store.place_bid(bid_for(me.id, beneficiary, amount)).await?;
    }
    store.place_bid(bid_for(others[1].id, me.id, 22)).await?;
    for (i, o) in others.iter().enumerate() {
        let cost = config.economy.message_cost;
        store
            .send_message(
                o.id,
                me.id,
                format!("hello from agent {} ({i})", o.id),
                cost,
            )
            .await?;
        store
            .send_message(me.id, o.id, format!("hello back ({i})"), cost)
            .await?;
    }

    // Live event streams end after a second, so that a fuzzer's requests to them
    // finish (a client reconnects; the contract tests cover long streams).
    let mut config = config;
    config.server.event_stream_max_seconds = 1;
    config.llm.base_url = Some(mock_upstream().await?);
    config.llm.api_key_env = String::new();
    let server = LocalServer::start(store.clone(), config).await?;
    let info = json!({
        "base_url": format!("http://{}", server.addr),
        "agent_token": me.token,
        "operator_token": operator_token,
        "agent_id": me.id.0,
    });
    // Written whole and then renamed, so a reader never sees half a file.
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &out)?;
    eprintln!("api_fixture: serving on http://{}", server.addr);

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    // A client that keeps a connection open must not hold the exit up for long.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server.stop()).await;
    store.close().await;
    let _ = std::fs::remove_file(&out);
    Ok(())
}

/// An OpenAI-compatible upstream on a free loopback port that answers every chat
/// completion (whole, or streamed with a usage chunk when asked) and lists one
/// model, so that what the fuzzer sends through the proxy is judged by the proxy.
async fn mock_upstream() -> anyhow::Result<String> {
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    async fn models() -> axum::Json<serde_json::Value> {
        axum::Json(json!({"object": "list", "data": [{"id": "fixture-model", "object": "model"}]}))
    }
    async fn chat(body: axum::body::Bytes) -> axum::response::Response {
        let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let usage = json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5});
        if req["stream"] == true {
            let chunk = |delta: serde_json::Value, usage: serde_json::Value| {
                json!({"id": "f", "object": "chat.completion.chunk", "model": "fixture-model",
                       "choices": delta, "usage": usage})
            };
            let events = [
                chunk(
                    json!([{"index": 0, "delta": {"content": "ok"}}]),
                    serde_json::Value::Null,
                ),
                chunk(json!([]), usage),
            ];
            let mut text = String::new();
            for e in events {
                text.push_str(&format!("data: {e}\n\n"));
            }
            text.push_str("data: [DONE]\n\n");
            return ([("content-type", "text/event-stream")], text).into_response();
        }
        axum::Json(
            json!({"id": "f", "object": "chat.completion", "model": "fixture-model",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": usage}),
        )
        .into_response()
    }
    let app = axum::Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
