//! A client for the LXD REST API (same shape for Incus), spoken directly over its Unix socket.
//! No `lxc` binary.
//!
//! - [`transport`]: how bytes reach LXD (the local socket today; HTTPS later).
//! - [`client`]: envelopes (sync, async, error), operations, and the calls the deployer needs.
//! - [`api`]: LXD's answers as typed values (instance, state, profile, image, operation, ...).
//! - [`socket`]: finding the socket.

pub mod api;
pub mod client;
pub mod socket;
pub mod transport;

pub use api::{Instance, InstanceState, InstanceStatus, Profile, ProfileSpec, Server, StateAction};
pub use client::{ExecResult, LxdClient, LxdError};
pub use socket::find_socket;
pub use transport::{Transport, UnixSocket};
