//! Real helpers for the tests: an OpenSSH server and the real tracker.

pub mod registry;
pub mod sshd;
pub mod tracker;
