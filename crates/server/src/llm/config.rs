//! The `[llm]` section of the configuration: where the upstream is, how its key is
//! found on the host, what agents may ask of it, and the proxy's limits. The key
//! itself is never part of the configuration tree: only the name of the host
//! environment variable holding it is, and the key read from it is an [`ApiKey`],
//! whose `Debug` form is redacted.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the proxy counts a prompt's tokens before the call (see docs/llm.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizeMode {
    /// A proven upper bound from the request's bytes; works with every upstream.
    Bound,
    /// vLLM's `POST /tokenize` with the chat messages (exact, template included).
    Vllm,
    /// llama.cpp server's `POST /apply-template` then `POST /tokenize` (exact).
    LlamaCpp,
}

/// Which field the proxy inserts when a request names no output cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// Understood by every OpenAI-compatible server.
    MaxTokens,
    /// OpenAI's newer name, required by its reasoning models.
    MaxCompletionTokens,
}

impl MaxTokensField {
    pub fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// The `[llm]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// The OpenAI-compatible base URL, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:8080/v1`. Unset: every proxy call answers 503.
    pub base_url: Option<String>,
    /// The host environment variable that holds the upstream's API key; empty or
    /// unset variable: no key is sent (local servers need none).
    pub api_key_env: String,
    /// Models agents may name; empty means any.
    pub models: Vec<String>,
    /// Calls one execution may have in flight at once; more answer 429.
    pub max_concurrent_per_execution: u32,
    pub connect_timeout_ms: u64,
    /// From sending the request to the upstream's response head. For a
    /// non-streaming call that is the whole generation.
    pub first_byte_timeout_ms: u64,
    /// The longest silence between two pieces of a streamed answer.
    pub idle_timeout_ms: u64,
    /// The largest request body accepted, and the largest non-streamed answer read.
    pub max_body_bytes: usize,
    /// The longest line of an upstream event stream.
    pub max_sse_line_bytes: usize,
    /// A call's hold older than this is settled at its full amount (see docs/llm.md).
    pub hold_ttl_seconds: u64,
    pub tokenize: TokenizeMode,
    /// Bound mode: tokens allowed per message for the chat template's wrapping.
    pub message_overhead_tokens: u64,
    /// Bound mode: tokens allowed once per call (BOS, generation prompt, a
    /// template's default system text).
    pub prompt_overhead_tokens: u64,
    /// The output cap inserted when a request names none (never above what the
    /// quota leaves); 0 means all that the quota leaves.
    pub default_max_tokens: u64,
    /// The field that cap is inserted as.
    pub max_tokens_field: MaxTokensField,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            base_url: None,
            api_key_env: "OPENAI_API_KEY".into(),
            models: Vec::new(),
            max_concurrent_per_execution: 4,
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 300_000,
            idle_timeout_ms: 60_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_sse_line_bytes: 1024 * 1024,
            hold_ttl_seconds: 3_600,
            tokenize: TokenizeMode::Bound,
            message_overhead_tokens: 8,
            prompt_overhead_tokens: 64,
            default_max_tokens: 4_096,
            max_tokens_field: MaxTokensField::MaxTokens,
        }
    }
}

impl LlmConfig {
    /// Checks what types alone cannot; the error names the key under `llm.`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("llm.{k}"), m.to_string()));
        if let Some(url) = &self.base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad("base_url", "must start with http:// or https://");
            }
            if reqwest::Url::parse(url).is_err() {
                return bad("base_url", "is not a valid URL");
            }
        }
        for (key, v) in [
            (
                "max_concurrent_per_execution",
                u64::from(self.max_concurrent_per_execution),
            ),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("first_byte_timeout_ms", self.first_byte_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_sse_line_bytes", self.max_sse_line_bytes as u64),
            ("hold_ttl_seconds", self.hold_ttl_seconds),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.models.iter().any(|m| m.is_empty()) {
            return bad("models", "must not contain an empty name");
        }
        Ok(())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn hold_ttl(&self) -> Duration {
        Duration::from_secs(self.hold_ttl_seconds)
    }

    /// True when `model` may be asked for.
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }

    /// Reads the key from the host environment variable named by `api_key_env`.
    pub fn api_key(&self) -> Option<ApiKey> {
        if self.api_key_env.is_empty() {
            return None;
        }
        std::env::var(&self.api_key_env)
            .ok()
            .filter(|k| !k.is_empty())
            .map(ApiKey)
    }
}

/// The upstream's API key. Its `Debug` and `Display` forms are redacted, so it
/// cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the upstream's Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What `agora up` says about the LLM proxy: where calls go, or that there is no
/// upstream and every call will answer 503.
pub fn startup_line(config: &LlmConfig) -> String {
    match &config.base_url {
        None => "LLM proxy: no upstream configured ([llm] base_url); /v1/chat/completions and \
                 /v1/models answer 503"
            .to_string(),
        Some(url) => {
            let key = match config.api_key() {
                Some(_) => format!("key from ${}", config.api_key_env),
                None if config.api_key_env.is_empty() => "no key".to_string(),
                None => format!("no key (${} is not set)", config.api_key_env),
            };
            let models = if config.models.is_empty() {
                "any model".to_string()
            } else {
                format!("models {}", config.models.join(", "))
            };
            let tokenize = match config.tokenize {
                TokenizeMode::Bound => "prompt tokens bounded from bytes",
                TokenizeMode::Vllm => "prompt tokens counted by vLLM /tokenize",
                TokenizeMode::LlamaCpp => "prompt tokens counted by llama.cpp /tokenize",
            };
            format!("LLM proxy: upstream {url} ({key}; {models}; {tokenize})")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_redacted_in_debug_and_display() {
        let key = ApiKey::new("sk-very-secret");
        assert!(!format!("{key:?}").contains("very-secret"));
        assert!(!format!("{key}").contains("very-secret"));
        assert_eq!(key.expose(), "sk-very-secret");
    }

    #[test]
    fn startup_line_says_when_there_is_no_upstream() {
        let line = startup_line(&LlmConfig::default());
        assert!(
            line.contains("no upstream") && line.contains("503"),
            "{line}"
        );
        let line = startup_line(&LlmConfig {
            base_url: Some("http://127.0.0.1:8080/v1".into()),
            api_key_env: String::new(),
            ..LlmConfig::default()
        });
        assert!(line.contains("http://127.0.0.1:8080/v1") && line.contains("no key"));
    }

    #[test]
    fn validation_names_the_key() {
        let c = LlmConfig {
            base_url: Some("ftp://x".into()),
            ..LlmConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "llm.base_url");
        let c = LlmConfig {
            idle_timeout_ms: 0,
            ..LlmConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "llm.idle_timeout_ms");
        assert!(LlmConfig::default().validate().is_ok());
    }

    #[test]
    fn the_allow_list_is_exact_and_empty_allows_all() {
        let mut c = LlmConfig::default();
        assert!(c.allows("anything"));
        c.models = vec!["a".into()];
        assert!(c.allows("a") && !c.allows("b") && !c.allows("A"));
    }
}
