//! A client for the Hetzner Cloud API (`https://api.hetzner.cloud/v1`) over reqwest and rustls:
//! the SSH keys, servers, firewalls and actions that `provision` and `destroy` of a `hetzner`
//! environment need. Lists are read page by page; a rate-limited request waits for the reset
//! the API announces; every failure is a typed [`HetznerError`] with its kind and its fix.
//!
//! The JSON shapes follow the public API (facts read from hcloud-go's `schema` package; the
//! code is ours). The API's address comes from `TORRUST_HETZNER_API_URL` when it is set (the
//! tests point it at their in-memory API), else the public one.

pub mod api;
mod client;
mod error;

pub use client::{API_URL_VAR, DEFAULT_API_URL, HetznerClient, TOKEN_VAR, resolve_token};
pub use error::HetznerError;

/// The label that carries the owning environment's id on every object provision creates.
pub const ID_LABEL: &str = "torrust-deployer-id";
/// The label that carries the environment's name (for people; ownership is the id).
pub const ENV_LABEL: &str = "torrust-deployer-env";
