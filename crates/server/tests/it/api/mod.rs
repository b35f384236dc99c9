//! The System Service driven over real HTTP (SPEC §11), on SQLite and PostgreSQL.

mod admin;
mod console;
mod economic;
pub mod harness;
mod human;
mod idempotency;
mod identity;
mod market;
mod metrics;
mod service;
mod social;
