//! Real helpers for the tests: an OpenSSH server and the real tracker.

pub mod sshd;
pub mod tracker;
