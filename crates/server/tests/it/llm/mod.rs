//! The LLM proxy (SPEC §10) driven over real HTTP: the System Service with its
//! proxy pointed at a mock upstream ([`mock::Mock`]), on SQLite and PostgreSQL.

mod burst;
mod calls;
mod holds;
pub mod mock;
mod openai;
mod secrets;
mod stream;

use crate::api::harness::{TestAgent, TestApi};
use crate::harness::TestStore;
use agora_core::ExecutionId;
use agora_server::api::ApiState;
use agora_server::config::Config;
use agora_server::llm::upstream::Upstream;
use agora_server::llm::{ApiKey, LlmConfig, LlmProxy};
use agora_server::store::{LlmCallRecord, LlmQuota};
use mock::Mock;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The upstream key the proxy is given; it must never come back out.
pub const KEY: &str = "sk-test-upstream-key-4f1c9a";

/// The System Service with its LLM proxy in front of a mock upstream.
pub struct Llm {
    pub api: TestApi,
    pub mock: Mock,
}

impl Llm {
    /// Starts a mock and the service over `t`, the proxy configured by `tweak`
    /// (defaults: the mock's URL, up to 64 calls in flight per execution).
    pub async fn start(t: TestStore, tweak: impl FnOnce(&mut LlmConfig)) -> Llm {
        let mock = Mock::start().await;
        let mut llm = LlmConfig {
            base_url: Some(mock.url.clone()),
            max_concurrent_per_execution: 64,
            ..LlmConfig::default()
        };
        tweak(&mut llm);
        let config = Config {
            llm: llm.clone(),
            ..Config::default()
        };
        let api = TestApi::start_with(t, config, move |store, config| {
            let upstream = llm
                .base_url
                .as_deref()
                .map(|url| Upstream::new(url, Some(ApiKey::new(KEY)), &llm).unwrap());
            ApiState::with_llm(store, config, LlmProxy::with_upstream(&llm, upstream))
        })
        .await;
        Llm { api, mock }
    }

    /// `GET /v1/models` with `token`.
    pub async fn models(&self, token: &str) -> reqwest::Response {
        self.api
            .http
            .get(format!("{}/v1/models", self.api.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/chat/completions` with `token`.
    pub async fn chat(&self, token: &str, body: Value) -> reqwest::Response {
        self.api
            .http
            .post(format!("{}/v1/chat/completions", self.api.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn quota(&self, execution: ExecutionId) -> LlmQuota {
        self.api.t.store.llm_quota(execution).await.unwrap()
    }

    pub async fn calls_of(&self, execution: ExecutionId) -> Vec<LlmCallRecord> {
        self.api.t.store.llm_calls_of(execution).await.unwrap()
    }

    /// Waits until no call of `execution` holds tokens, and returns its quota.
    pub async fn settled(&self, execution: ExecutionId) -> LlmQuota {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let q = self.quota(execution).await;
            if q.held == 0 {
                return q;
            }
            assert!(Instant::now() < deadline, "holds never settled: {q:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An agent in a running execution whose bundle has `tokens` LLM tokens.
    pub async fn agent_with_tokens(&self, tokens: f64) -> TestAgent {
        let spec = agora_core::BundleSpec {
            cpu_seconds: 1.0,
            memory_mb: 16.0,
            tokens,
            attention_share: 0.0,
            wall_seconds: None,
        };
        let bundle = agora_core::Bundle::parse(&spec, &Config::default().bundle_limits()).unwrap();
        self.api.agent_with(10, bundle).await
    }
}

/// A small request for the mock's model.
pub fn request(mock: Value) -> Value {
    json!({"model": "mock-model", "messages": [{"role": "user", "content": "Say hello."}],
           "mock": mock})
}
