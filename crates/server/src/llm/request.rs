//! A chat completion request as the proxy needs it: the few fields it reads
//! (model, stream, n, the output caps), the prompt's token bound, the admission
//! arithmetic, and the rewrite sent upstream (output cap clamped or inserted,
//! usage always asked for). Every other field passes through untouched.

use super::config::{LlmConfig, MaxTokensField};
use super::error::LlmError;
use serde_json::{json, Map, Value};

/// The largest `n` accepted; more choices than this is not a real use.
pub const MAX_N: u64 = 128;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// The client asked for the usage chunk itself (`stream_options.include_usage`).
    pub client_wants_usage: bool,
    /// Choices asked for.
    pub n: u64,
    /// The client's output cap: the smaller of `max_tokens` and
    /// `max_completion_tokens` when both are given.
    pub requested_max: Option<u64>,
}

/// The fields a chat template renders into the prompt.
const PROMPT_FIELDS: &[&str] = &[
    "messages",
    "tools",
    "functions",
    "tool_choice",
    "response_format",
];

/// Content part types that are text; anything else (images, audio, files) has
/// no byte bound on its tokens and is refused.
const TEXT_PARTS: &[&str] = &["text", "refusal"];

fn positive_int(body: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>, LlmError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(LlmError::bad_request(
                "invalid_request",
                format!("`{key}` must be an integer from 1 to {max}"),
            )
            .with_details(json!({"field": key}))),
        },
    }
}

impl ChatRequest {
    /// Parses and checks a request body.
    pub fn parse(bytes: &[u8]) -> Result<ChatRequest, LlmError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            LlmError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        })?;
        let Value::Object(body) = value else {
            return Err(LlmError::bad_request(
                "invalid_request",
                "the body must be a JSON object",
            ));
        };
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            _ => {
                return Err(LlmError::bad_request(
                    "invalid_request",
                    "`model` must be a non-empty string",
                )
                .with_details(json!({"field": "model"})))
            }
        };
        let messages = match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => m,
            _ => {
                return Err(LlmError::bad_request(
                    "invalid_request",
                    "`messages` must be a non-empty array",
                )
                .with_details(json!({"field": "messages"})))
            }
        };
        check_messages(messages)?;
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(LlmError::bad_request(
                    "invalid_request",
                    "`stream` must be a boolean",
                ))
            }
        };
        let client_wants_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(LlmError::bad_request(
                        "invalid_request",
                        "`stream_options.include_usage` must be a boolean",
                    ))
                }
            },
            Some(_) => {
                return Err(LlmError::bad_request(
                    "invalid_request",
                    "`stream_options` must be an object",
                ))
            }
        };
        let n = positive_int(&body, "n", MAX_N)?.unwrap_or(1);
        let caps = [
            positive_int(&body, "max_tokens", u64::from(u32::MAX))?,
            positive_int(&body, "max_completion_tokens", u64::from(u32::MAX))?,
        ];
        let requested_max = caps.into_iter().flatten().min();
        Ok(ChatRequest {
            body,
            model,
            stream,
            client_wants_usage,
            n,
            requested_max,
        })
    }

    /// A proven upper bound on the prompt's tokens (docs/llm.md): the bytes of the
    /// prompt-bearing fields as compact JSON, plus the configured per-message and
    /// per-call allowances for the chat template.
    pub fn prompt_bound(&self, config: &LlmConfig) -> u64 {
        let bytes: usize = PROMPT_FIELDS
            .iter()
            .filter_map(|k| self.body.get(*k))
            .map(|v| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX))
            .fold(0usize, usize::saturating_add);
        let messages = self.messages().len() as u64;
        (bytes as u64)
            .saturating_add(messages.saturating_mul(config.message_overhead_tokens))
            .saturating_add(config.prompt_overhead_tokens)
    }

    /// The chat messages.
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// A prompt-bearing field, for the upstream's tokenizer.
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.body.get(key)
    }

    /// The body sent upstream: the output cap set to `max_tokens` (on every cap
    /// field the client gave, or inserted as `field`), and, for a stream, usage
    /// asked for.
    pub fn upstream_body(&self, max_tokens: u64, field: MaxTokensField) -> Vec<u8> {
        let mut body = self.body.clone();
        let mut set = false;
        for key in ["max_tokens", "max_completion_tokens"] {
            if body.get(key).is_some_and(|v| !v.is_null()) {
                body.insert(key.into(), json!(max_tokens));
                set = true;
            }
        }
        if !set {
            body.insert(field.as_str().into(), json!(max_tokens));
        }
        if self.stream {
            let options = body.entry("stream_options").or_insert_with(|| json!({}));
            if !options.is_object() {
                *options = json!({});
            }
            if let Some(o) = options.as_object_mut() {
                o.insert("include_usage".into(), Value::Bool(true));
            }
        }
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
    }
}

/// Messages must be objects whose content is text: a string, or parts of a text
/// type. An image or audio part has no byte bound on its tokens.
fn check_messages(messages: &[Value]) -> Result<(), LlmError> {
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(LlmError::bad_request(
                "invalid_request",
                format!("`messages[{i}]` must be an object"),
            ));
        };
        if let Some(Value::Array(parts)) = m.get("content") {
            for p in parts {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                if !TEXT_PARTS.contains(&kind) {
                    return Err(LlmError::bad_request(
                        "unsupported_content",
                        format!(
                            "`messages[{i}]` has a content part of type {kind:?}; the proxy \
                             meters text only (parts of type \"text\")"
                        ),
                    )
                    .with_details(json!({"field": format!("messages[{i}].content")})));
                }
            }
        }
    }
    Ok(())
}

/// What a call must fit into the quota: its prompt (exact or bounded), its
/// choices and the client's output cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub prompt: u64,
    pub n: u64,
    pub requested_max: Option<u64>,
    /// The cap inserted when the client gave none; 0: all that remains.
    pub default_max: u64,
}

/// An admitted call's output cap and hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The output cap sent upstream.
    pub max_tokens: u64,
    /// `prompt + n × max_tokens`: never more than what remained.
    pub hold: u64,
    /// The cap differs from the client's (lowered, or inserted).
    pub clamped: bool,
}

impl Plan {
    /// The least a call needs: its prompt and one output token per choice.
    pub fn minimum(&self) -> u64 {
        self.prompt.saturating_add(self.n)
    }

    /// The admission of this call when `remaining` tokens are left, or `None` when
    /// not even [`Plan::minimum`] fits.
    pub fn admit(&self, remaining: u64) -> Option<Admission> {
        if self.n == 0 || self.minimum() > remaining {
            return None;
        }
        let cap = (remaining - self.prompt) / self.n;
        let wanted = match (self.requested_max, self.default_max) {
            (Some(r), _) => r,
            (None, 0) => cap,
            (None, d) => d,
        };
        let max_tokens = wanted.min(cap);
        Some(Admission {
            max_tokens,
            hold: self.prompt + self.n * max_tokens,
            clamped: self.requested_max != Some(max_tokens),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(v: Value) -> Result<ChatRequest, LlmError> {
        ChatRequest::parse(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn bad_requests_are_400_naming_the_field() {
        for (body, field) in [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (json!({"model": "m", "messages": []}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1000}),
                "n",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert_eq!(e.details["field"], field);
        }
        assert_eq!(
            ChatRequest::parse(b"{nope").unwrap_err().code,
            "invalid_json"
        );
        let e = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}),
        )
        .unwrap_err();
        assert_eq!(e.code, "unsupported_content");
    }

    #[test]
    fn the_rewrite_clamps_every_cap_and_asks_for_usage() {
        let r = parse(json!({"model": "m", "stream": true, "max_tokens": 900,
            "max_completion_tokens": 800, "messages": [{"role": "user", "content": "x"}],
            "extra": {"kept": true}}))
        .unwrap();
        assert_eq!(r.requested_max, Some(800));
        assert!(!r.client_wants_usage);
        let out: Value =
            serde_json::from_slice(&r.upstream_body(10, MaxTokensField::MaxTokens)).unwrap();
        assert_eq!(out["max_tokens"], 10);
        assert_eq!(out["max_completion_tokens"], 10);
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert_eq!(out["extra"]["kept"], true);
        let r =
            parse(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})).unwrap();
        let out: Value =
            serde_json::from_slice(&r.upstream_body(7, MaxTokensField::MaxCompletionTokens))
                .unwrap();
        assert_eq!(out["max_completion_tokens"], 7);
        assert!(out.get("max_tokens").is_none() && out.get("stream_options").is_none());
    }

    #[test]
    fn the_bound_covers_the_text_of_every_message() {
        let c = LlmConfig::default();
        let text = "ünïcode ✓ and \"quotes\"\n".repeat(20);
        let r = parse(json!({"model": "m", "messages": [
            {"role": "system", "content": text}, {"role": "user", "content": [{"type": "text", "text": text}]}]}))
        .unwrap();
        let bound = r.prompt_bound(&c);
        assert!(
            bound
                >= 2 * text.len() as u64 + 2 * c.message_overhead_tokens + c.prompt_overhead_tokens
        );
    }

    #[test]
    fn absent_cap_is_the_default_or_all_that_remains() {
        let plan = Plan {
            prompt: 10,
            n: 1,
            requested_max: None,
            default_max: 4096,
        };
        assert_eq!(plan.admit(100).unwrap().max_tokens, 90);
        assert_eq!(plan.admit(10_000).unwrap().max_tokens, 4096);
        let plan = Plan {
            default_max: 0,
            ..plan
        };
        assert_eq!(plan.admit(10_000).unwrap().max_tokens, 9990);
        assert!(plan.admit(10).is_none());
        let small = Plan {
            requested_max: Some(5),
            ..plan
        };
        let a = small.admit(10_000).unwrap();
        assert_eq!((a.max_tokens, a.hold, a.clamped), (5, 15, false));
    }

    proptest! {
        #[test]
        fn an_admission_never_holds_more_than_remains(
            prompt in 0u64..10_000, n in 1u64..=MAX_N, requested in proptest::option::of(1u64..100_000),
            default_max in 0u64..10_000, remaining in 0u64..200_000,
        ) {
            let plan = Plan { prompt, n, requested_max: requested, default_max };
            match plan.admit(remaining) {
                Some(a) => {
                    prop_assert!(a.hold <= remaining);
                    prop_assert!(a.max_tokens >= 1);
                    prop_assert_eq!(a.hold, prompt + n * a.max_tokens);
                    if let Some(r) = requested { prop_assert!(a.max_tokens <= r); }
                    prop_assert_eq!(a.clamped, requested != Some(a.max_tokens));
                }
                None => prop_assert!(prompt + n > remaining),
            }
        }
    }
}
