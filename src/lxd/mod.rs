//! A client for the LXD REST API (same shape for Incus), spoken directly over its Unix socket.
//! No `lxc` binary.
//!
//! - [`transport`]: how bytes reach LXD (the local socket today; HTTPS later).
//! - [`client`]: envelopes (sync, async, error), operations, and the helpers every call uses;
//!   [`error`]: what a call fails with.
//! - The calls, by topic: [`profiles`] (profiles, networks, storage pools), [`images`],
//!   [`instances`] (lifecycle and state), [`instance_io`] (exec and the files API).
//! - [`api`]: LXD's answers as typed values (instance, state, profile, image, operation, ...).
//! - [`socket`]: finding the socket; [`https`]: a remote LXD over HTTPS, its server pinned by
//!   fingerprint; [`trust`]: becoming trusted through a trust token.

pub mod api;
pub mod client;
pub mod error;
pub mod https;
pub mod images;
pub mod instance_io;
pub mod instances;
pub mod profiles;
pub mod socket;
pub mod transport;
pub mod trust;

pub use api::{Instance, InstanceState, InstanceStatus, Profile, ProfileSpec, Server, StateAction};
pub use client::LxdClient;
pub use error::LxdError;
pub use instance_io::{ExecResult, FileMode, InstancePath};
pub use socket::find_socket;
pub use transport::{LxdTransport, Transport, UnixSocket};
