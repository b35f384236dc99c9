//! `agora bench llm-proxy`: the latency the LLM proxy adds (SPEC §14: < 1 ms at
//! p50). A local OpenAI-shaped upstream answers instantly with a fixed answer;
//! the same request is timed calling it directly and through the proxy of a
//! real System Service (fresh SQLite world, an agent in a running execution,
//! its token), alternately, one call at a time over keep-alive connections. The
//! overhead is the difference of the two latency distributions' percentiles,
//! for whole answers and for streams of several events read to the end.

use crate::api::{self, ApiState};
use crate::api_bench::running_agent;
use crate::config::Config;
use crate::llm::LlmProxy;
use crate::world;
use agora_core::{Bundle, BundleSpec, Credits};
use anyhow::bail;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What to run.
#[derive(Debug, Clone)]
pub struct LlmBenchOptions {
    /// The data directory of the fresh world.
    pub data_dir: PathBuf,
    /// Timed calls per mode and per path (direct, proxied).
    pub calls: usize,
    /// Untimed calls per mode first.
    pub warmup: usize,
}

/// Latency percentiles of one path.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
}

/// One mode's figures.
#[derive(Debug, Clone, Copy)]
pub struct ModeFigures {
    pub direct: Percentiles,
    pub proxied: Percentiles,
}

impl ModeFigures {
    /// Proxied minus direct, in milliseconds (p50, p99).
    pub fn overhead_ms(&self) -> (f64, f64) {
        let ms = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1e3;
        (
            ms(self.proxied.p50, self.direct.p50),
            ms(self.proxied.p99, self.direct.p99),
        )
    }
}

/// The whole benchmark's figures.
#[derive(Debug, Clone, Copy)]
pub struct LlmBenchFigures {
    pub calls: usize,
    pub whole: ModeFigures,
    pub stream: ModeFigures,
    /// Tokens charged in all, checked against the upstream's reported usage.
    pub tokens_charged: i64,
}

/// Events in each streamed answer.
const STREAM_EVENTS: usize = 8;
const PROMPT_TOKENS: i64 = 10;

fn usage() -> Value {
    json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": STREAM_EVENTS,
           "total_tokens": PROMPT_TOKENS + STREAM_EVENTS as i64})
}

/// The upstream: answers at once, whole or as a stream of `STREAM_EVENTS`
/// events plus the usage chunk when asked for.
async fn upstream(Json(body): Json<Value>) -> axum::response::Response {
    if body["stream"].as_bool() != Some(true) {
        return Json(json!({"id": "b", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "tok ".repeat(STREAM_EVENTS)}}],
            "usage": usage()}))
        .into_response();
    }
    let mut text = String::new();
    for _ in 0..STREAM_EVENTS {
        let c = json!({"id": "b", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"content": "tok "}}]});
        text.push_str(&format!("data: {c}\n\n"));
    }
    if body["stream_options"]["include_usage"].as_bool() == Some(true) {
        text.push_str(&format!(
            "data: {}\n\n",
            json!({"id": "b", "choices": [], "usage": usage()})
        ));
    }
    text.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], text).into_response()
}

/// Serves `router` on a free loopback port until the sender is dropped.
async fn serve(router: Router) -> anyhow::Result<(String, oneshot::Sender<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(api::serve_tcp(listener, router, async move {
        let _ = rx.await;
    }));
    Ok((format!("http://{addr}"), stop))
}

/// Sends one call and reads its answer to the end; its latency.
async fn time_call(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let r = http.post(url).bearer_auth(token).json(body).send().await?;
    let status = r.status();
    let bytes = r.bytes().await?;
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(started.elapsed())
}

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Runs the benchmark.
pub async fn run(opts: LlmBenchOptions) -> anyhow::Result<LlmBenchFigures> {
    let (upstream_base, _stop_upstream) =
        serve(Router::new().route("/v1/chat/completions", post(upstream))).await?;
    let mut config = Config {
        data_dir: opts.data_dir.clone(),
        ..Config::default()
    };
    config.market.cpu_seconds.supply = Some(10.0);
    // Tokens at their lowest price, so a bundle of a million fits a small bid.
    config.market.tokens.price = config.market.tokens.min_price;
    config.llm.base_url = Some(format!("{upstream_base}/v1"));
    config.llm.max_concurrent_per_execution = 4;
    let world = world::open(config.clone()).await?;
    let bundle = Bundle::parse(
        &BundleSpec {
            cpu_seconds: 1.0,
            memory_mb: 16.0,
            tokens: config.limits.max_tokens,
            attention_share: 0.0,
            wall_seconds: None,
        },
        &config.bundle_limits(),
    )?;
    let agent = running_agent(
        &world.store,
        &config,
        bundle,
        Credits::from_micros(10_000_000),
    )
    .await?;
    let state = ApiState::with_llm(
        world.store.clone(),
        config.clone(),
        LlmProxy::new(&config.llm),
    );
    let (router, _) = api::router(state.clone());
    let (proxy_base, _stop_proxy) = serve(router).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .tcp_nodelay(true)
        .build()?;
    let direct_url = format!("{upstream_base}/v1/chat/completions");
    let proxy_url = format!("{proxy_base}/v1/chat/completions");
    let mut modes = Vec::new();
    for stream in [false, true] {
        let body = json!({"model": "bench", "stream": stream, "max_tokens": STREAM_EVENTS,
            "messages": [{"role": "user", "content": "Say something short."}]});
        let (mut direct, mut proxied) = (Vec::new(), Vec::new());
        for i in 0..opts.warmup + opts.calls {
            // Alternate which goes first, so neither always finds a warmer cache.
            let (d, p) = if i % 2 == 0 {
                let d = time_call(&http, &direct_url, "unused", &body).await?;
                (d, time_call(&http, &proxy_url, &agent.token, &body).await?)
            } else {
                let p = time_call(&http, &proxy_url, &agent.token, &body).await?;
                (time_call(&http, &direct_url, "unused", &body).await?, p)
            };
            if i >= opts.warmup {
                direct.push(d);
                proxied.push(p);
            }
        }
        modes.push(ModeFigures {
            direct: percentiles(direct),
            proxied: percentiles(proxied),
        });
    }
    let quota = world.store.llm_quota(agent.execution).await?;
    let calls = 2 * (opts.warmup + opts.calls);
    let expected = calls as i64 * (PROMPT_TOKENS + STREAM_EVENTS as i64);
    if quota.held != 0 || quota.used != expected {
        bail!(
            "the proxy charged {} tokens (holding {}), the upstream reported {expected}",
            quota.used,
            quota.held
        );
    }
    state.stop();
    world.store.close().await;
    let [whole, stream] = modes[..] else {
        bail!("two modes were measured")
    };
    Ok(LlmBenchFigures {
        calls: opts.calls,
        whole,
        stream,
        tokens_charged: quota.used,
    })
}
