//! agora's runtime around the pure economy of `agora-core`: configuration, the
//! store (SQLite and PostgreSQL) with its audit, and the benchmarks.
//!
//! **Invariant:** money moves only through `store`, and every move there is one
//! database transaction that checks and writes together.

/// The System Service: the HTTP API of §11 over TCP and Unix sockets.
pub mod api;
/// `agora bench api`: the System Service under load over loopback (§14).
pub mod api_bench;
/// Benchmarks shipped with the binary (`agora bench …`).
pub mod bench;
/// The typed configuration tree: defaults < `agora.toml` < `AGORA_*` env < flags.
pub mod config;
/// The console: server-rendered pages for the human and the operator (SPEC §12).
pub mod console;
/// `agora bench console`: the console's pages over a world of many agents (§12).
pub mod console_bench;
/// `agora bench cycle`: one Orchestrator cycle over a populated market (§8, §14).
pub mod cycle_bench;
/// The LLM proxy of §10: `/v1/chat/completions` and `/v1/models`, metered per execution.
pub mod llm;
/// `agora bench llm-proxy`: the latency the LLM proxy adds over its upstream (§14).
pub mod llm_bench;
/// The Orchestrator of §8: the allocation loop, launching and recording executions,
/// crash recovery, the genesis template.
pub mod orchestrator;
/// All state of the world in SQLite or PostgreSQL: ledger, market, attention, events.
pub mod store;
/// The structured log of §13: JSON lines in `system.log` (rotated by size) with the
/// component and the ids in scope on every line, and a readable copy on stderr.
pub mod telemetry;
/// Opening the world: data directory, store, markets, bootstrap (§8).
pub mod world;
