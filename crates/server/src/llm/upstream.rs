//! The configured OpenAI-compatible upstream: one pooled HTTP client (keep-alive,
//! rustls for https), the URLs of its endpoints, and its key. Requests to it are
//! built from scratch, so nothing the client sent (its Authorization header
//! above all) reaches it; the key is added here and nowhere else, and text that
//! comes back from the upstream is scrubbed of it before anyone sees it.

use super::config::{ApiKey, LlmConfig, TokenizeMode};
use super::error::LlmError;
use super::request::ChatRequest;
use axum::http::StatusCode;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde_json::{json, Value};
use std::time::Duration;

/// How many idle keep-alive connections to the upstream are kept.
const POOL_IDLE: usize = 64;

/// The upstream and how to reach it.
#[derive(Debug)]
pub struct Upstream {
    client: reqwest::Client,
    chat_url: Url,
    models_url: Url,
    /// The server root (`base_url` without a trailing `/v1`), where vLLM and
    /// llama.cpp serve `/tokenize`.
    root: Url,
    key: Option<ApiKey>,
    auth: Option<HeaderValue>,
    first_byte: Duration,
    tokenize: TokenizeMode,
}

fn join(base: &str, path: &str) -> Result<Url, String> {
    let base = base.trim_end_matches('/');
    Url::parse(&format!("{base}/{path}")).map_err(|e| format!("{base}/{path}: {e}"))
}

impl Upstream {
    /// The upstream of `config`, `Ok(None)` when none is configured.
    pub fn from_config(config: &LlmConfig) -> Result<Option<Upstream>, String> {
        let Some(base) = &config.base_url else {
            return Ok(None);
        };
        let key = config.api_key();
        Upstream::new(base, key, config).map(Some)
    }

    /// An upstream at `base` with an explicit key (the benchmark, tests).
    pub fn new(base: &str, key: Option<ApiKey>, config: &LlmConfig) -> Result<Upstream, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .pool_max_idle_per_host(POOL_IDLE)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // A redirect could carry the key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))?;
        let root_text = base.trim_end_matches('/');
        let root_text = root_text.strip_suffix("/v1").unwrap_or(root_text);
        let auth = match &key {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", k.expose()))
                    .map_err(|_| "the upstream key is not a valid header value".to_string())?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Upstream {
            client,
            chat_url: join(base, "chat/completions")?,
            models_url: join(base, "models")?,
            root: Url::parse(&format!("{root_text}/")).map_err(|e| e.to_string())?,
            key,
            auth,
            first_byte: config.first_byte_timeout(),
            tokenize: config.tokenize,
        })
    }

    fn authorised(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        req
    }

    /// Sends a chat completion body; resolves when the response head arrives.
    pub async fn chat(&self, body: Vec<u8>) -> Result<reqwest::Response, LlmError> {
        let req = self
            .authorised(self.client.post(self.chat_url.clone()))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.send(req).await
    }

    /// `GET /models`, as JSON.
    pub async fn models(&self) -> Result<Value, LlmError> {
        let resp = self
            .send(self.authorised(self.client.get(self.models_url.clone())))
            .await?;
        let resp = self.check(resp).await?;
        let bytes = tokio::time::timeout(self.first_byte, resp.bytes())
            .await
            .map_err(|_| timeout())?
            .map_err(|e| self.broken(&e))?;
        serde_json::from_slice(&bytes).map_err(|_| {
            LlmError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "the upstream's model list is not JSON",
            )
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, LlmError> {
        match tokio::time::timeout(self.first_byte, req.send()).await {
            Err(_) => Err(timeout()),
            Ok(Err(e)) if e.is_timeout() => Err(timeout()),
            Ok(Err(e)) => Err(LlmError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!(
                    "cannot reach the upstream: {}",
                    self.scrub(&error_chain(&e))
                ),
            )),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// A 2xx response as it is; anything else as the error the client gets: the
    /// upstream's own refusal of the request (other 4xx) passes through with its
    /// message, while its refusal of the proxy's credentials or account (401,
    /// 402, 403) and its faults (5xx) are a 502, since the agent cannot fix them.
    pub async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, LlmError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = tokio::time::timeout(Duration::from_secs(5), resp.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let text = self.scrub(&String::from_utf8_lossy(&body[..body.len().min(4096)]));
        let upstream_message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        let details = json!({"upstream_status": status.as_u16()});
        Err(match status.as_u16() {
            401..=403 => LlmError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_refused_credentials",
                format!("the upstream refused this host's credentials or account ({status})"),
            ),
            429 => LlmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "upstream_rate_limited",
                format!("the upstream is rate limiting: {upstream_message}"),
            )
            .retry_after(retry_after.unwrap_or(1)),
            504 => LlmError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the upstream timed out",
            ),
            s if (400..500).contains(&s) => LlmError::new(
                StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST),
                "upstream_rejected",
                format!("the upstream refused the request: {upstream_message}"),
            ),
            _ => LlmError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("the upstream failed ({status})"),
            ),
        }
        .with_details(details))
    }

    /// A failure while reading an answer.
    pub fn broken(&self, e: &reqwest::Error) -> LlmError {
        LlmError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!(
                "the upstream's answer broke off: {}",
                self.scrub(&error_chain(e))
            ),
        )
    }

    /// `text` with every occurrence of the key replaced.
    pub fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(k) if !k.expose().is_empty() && text.contains(k.expose()) => {
                text.replace(k.expose(), "***")
            }
            _ => text.to_string(),
        }
    }

    /// The prompt's exact token count from the upstream's tokenizer, where the
    /// configured mode has one; `None` (use the bound) when it fails.
    pub async fn count_prompt(&self, req: &ChatRequest) -> Option<u64> {
        let result = match self.tokenize {
            TokenizeMode::Bound => return None,
            TokenizeMode::Vllm => self.count_vllm(req).await,
            TokenizeMode::LlamaCpp => self.count_llama_cpp(req).await,
        };
        match result {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(component = "llm_proxy", error = %self.scrub(&e), "tokenize failed; holding the prompt's bound instead");
                None
            }
        }
    }

    async fn post_json(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = self.root.join(path).map_err(|e| e.to_string())?;
        let req = self.authorised(self.client.post(url)).json(&body);
        let resp = tokio::time::timeout(self.first_byte, req.send())
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| error_chain(&e))?;
        if !resp.status().is_success() {
            return Err(format!("{path} answered {}", resp.status()));
        }
        resp.json().await.map_err(|e| error_chain(&e))
    }

    /// vLLM applies the chat template itself and answers `{"count": n, …}`.
    async fn count_vllm(&self, req: &ChatRequest) -> Result<u64, String> {
        let mut body =
            json!({"model": req.model, "messages": req.messages(), "add_generation_prompt": true});
        if let Some(tools) = req.field("tools") {
            body["tools"] = tools.clone();
        }
        let v = self.post_json("tokenize", body).await?;
        v["count"]
            .as_u64()
            .ok_or_else(|| "tokenize answered no count".into())
    }

    /// llama.cpp renders the template with `/apply-template`, then counts with
    /// `/tokenize`; one more token for a BOS its tokenizer may add.
    async fn count_llama_cpp(&self, req: &ChatRequest) -> Result<u64, String> {
        let v = self
            .post_json("apply-template", json!({"messages": req.messages()}))
            .await?;
        let prompt = v["prompt"]
            .as_str()
            .ok_or_else(|| "apply-template answered no prompt".to_string())?;
        let v = self
            .post_json("tokenize", json!({"content": prompt, "add_special": true}))
            .await?;
        v["tokens"]
            .as_array()
            .map(|t| t.len() as u64 + 1)
            .ok_or_else(|| "tokenize answered no tokens".into())
    }
}

fn timeout() -> LlmError {
    LlmError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        "the upstream did not answer in time",
    )
}

/// An error and its causes on one line (reqwest's own message is terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
