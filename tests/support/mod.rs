//! Real helpers for the tests: an OpenSSH server, the real tracker, and an in-memory Hetzner
//! Cloud API.

pub mod hetzner_api;
pub mod registry;
pub mod sshd;
pub mod tracker;
