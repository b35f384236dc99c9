//! The System Service driven over real HTTP (SPEC §11), on SQLite and PostgreSQL.

pub mod harness;
mod admin;
mod economic;
mod human;
mod identity;
mod market;
mod service;
mod social;
