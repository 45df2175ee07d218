//! torrust-tracker-deployer: deploy a Torrust Tracker from nothing to running, prove it works,
//! and tear it down.
//!
//! Layout (read in this order):
//! - [`cli`]: one file per command; parse, call an operation, render the result.
//! - [`ops`]: the lifecycle operations.
//! - [`config`]: the environment file: types, validation, schema, template.
//! - [`state`]: the persisted state machine, the data directory and the lock.
//! - [`lxd`], [`hetzner`], [`ssh`]: the clients for the LXD and Hetzner Cloud APIs and for hosts.
//! - [`stack`]: the typed model of the files `release` uploads (compose file, `tracker.toml`,
//!   `.env`, ...), and the `render` of them.
//! - [`tasks`]: typed, idempotent host tasks (facts, plan, apply, verify) behind `configure`.
//! - [`secret`]: the redacting wrapper for secrets.
//! - [`error_kind`]: the kind (and exit code) of every failure; [`events`]: progress events from
//!   the operations' steps to the CLI's monitor.
//! - [`exporter`]: the `stats-exporter` command (the tracker's JSON statistics for Prometheus).
//! - [`probe`]: protocol checks of a running tracker (UDP, HTTP, API, health check).
//! - [`retry`]: the one helper for waiting and trying again.

// No `unsafe` code in this crate (its dependencies are checked by `cargo deny`: deny.toml).
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod error_kind;
pub mod events;
pub mod exporter;
pub mod hetzner;
pub mod host;
pub mod lxd;
pub mod oci;
pub mod ops;
pub mod probe;
pub mod retry;
pub mod secret;
pub mod ssh;
pub mod stack;
pub mod state;
pub mod tasks;
