//! The LLM proxy (SPEC §10): an OpenAI-compatible `/v1/chat/completions` and
//! `/v1/models` on the System Service router, authenticated by the execution
//! token, forwarding to the configured upstream and metering tokens against the
//! execution's bundle. docs/llm.md tells the whole contract.
//!
//! **Invariant:** an execution's calls are never charged more than its bundle's
//! tokens: each call holds its worst case (prompt + n × output cap) before the
//! upstream is asked, in one transaction with the quota check, and is charged at
//! most that hold. **Invariant:** the upstream key goes into the upstream's
//! Authorization header and nowhere else.

/// One call from hold to settlement, in its own task.
mod call;
/// The `[llm]` configuration section.
pub mod config;
/// The OpenAI-shaped error answers of `/v1`.
pub mod error;
/// Shared state: the upstream, calls in flight, metrics.
pub mod proxy;
/// Parsing, the prompt bound, admission arithmetic, the upstream body.
pub mod request;
/// The handlers and their OpenAPI description.
mod routes;
/// The event-stream pass-through and its usage filter.
pub mod sse;
/// The HTTP client of the upstream.
pub mod upstream;
/// What a call is charged.
pub mod usage;

pub use call::{CALL_HEADER, CLAMPED_HEADER};
pub use config::{startup_line, ApiKey, LlmConfig, MaxTokensField, TokenizeMode};
pub use error::{openai_shape, LlmError, LlmErrorBody};
pub use proxy::LlmProxy;
pub use routes::routes;
