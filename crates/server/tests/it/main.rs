//! The one integration-test binary of agora-server: the store contract suite (run
//! against SQLite and PostgreSQL), the store-versus-model property test, and the
//! world bootstrap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod harness;
mod llm;
mod store_contract;
mod store_model;
mod world;
