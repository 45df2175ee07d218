//! Loading the private key, unlocking passphrase-protected keys, and offering it to the server.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::known_hosts::fingerprint;
use super::{PassphraseOrigin, PassphraseSource, SshError};
use crate::secret::Secret;

/// The environment variable read for a key passphrase by default.
pub const PASSPHRASE_ENV: &str = "TORRUST_DEPLOYER_SSH_PASSPHRASE";

/// A key ready to authenticate with.
pub(crate) enum Identity {
    /// A decrypted private key.
    Key { key: Arc<PrivateKey>, path: PathBuf },
    /// A key held by ssh-agent; signing goes through the agent.
    Agent {
        public: PublicKey,
        socket: PathBuf,
        path: PathBuf,
    },
}

impl Identity {
    pub(crate) fn public_key(&self) -> PublicKey {
        match self {
            Identity::Key { key, .. } => key.public_key().clone(),
            Identity::Agent { public, .. } => public.clone(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Identity::Key { path, .. } | Identity::Agent { path, .. } => path,
        }
    }

    pub(crate) fn fingerprint(&self) -> String {
        fingerprint(&self.public_key())
    }

    pub(crate) fn via_agent(&self) -> bool {
        matches!(self, Identity::Agent { .. })
    }
}

fn looks_encrypted(text: &str) -> bool {
    text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED")
}

fn decode(
    path: &Path,
    text: &str,
    pass: &str,
    origin: PassphraseOrigin,
) -> Result<PrivateKey, SshError> {
    russh::keys::decode_secret_key(text, Some(pass)).map_err(|_| SshError::WrongPassphrase {
        path: path.to_path_buf(),
        origin,
    })
}

/// Why a key file could not be decoded, in words.
fn unsupported_detail(text: &str, e: &russh::keys::Error) -> String {
    let first = text.trim_start();
    if first.starts_with("ssh-") || first.starts_with("ecdsa-") {
        "this is a PUBLIC key; point to the private key (the file without `.pub`)".into()
    } else if !text.contains("-----BEGIN ") {
        "no private key in it (no `-----BEGIN ... PRIVATE KEY-----` line)".into()
    } else {
        format!("it could not be decoded ({e})")
    }
}

/// The public half of an encrypted key: from the OpenSSH container, else from `<path>.pub`.
fn encrypted_public(path: &Path, text: &str) -> Option<PublicKey> {
    if let Ok(k) = russh::keys::ssh_key::PrivateKey::from_openssh(text) {
        return Some(k.public_key().clone());
    }
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    russh::keys::load_public_key(PathBuf::from(pub_path)).ok()
}

/// Asks ssh-agent whether it holds `public`. `Ok(None)` with a note when it cannot help.
async fn agent_holds(socket: &Path, public: &PublicKey) -> Result<bool, String> {
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| format!("cannot connect to ssh-agent at {}: {e}", socket.display()))?;
    let ids = agent.request_identities().await.map_err(|e| {
        format!(
            "ssh-agent at {} did not list its keys: {e}",
            socket.display()
        )
    })?;
    Ok(ids
        .iter()
        .any(|id| id.public_key().key_data() == public.key_data()))
}

/// Loads the key at `path` and, when it is passphrase-protected, finds a way to use it:
/// ssh-agent, then a given passphrase, then the environment variable, then a terminal prompt.
pub(crate) async fn load_identity(
    path: &Path,
    source: &PassphraseSource,
) -> Result<Identity, SshError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| SshError::KeyUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8(bytes).map_err(|_| SshError::KeyUnsupported {
        path: path.to_path_buf(),
        detail: "the file is not text (not a PEM/OpenSSH key)".into(),
    })?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(key) => {
            return Ok(Identity::Key {
                key: Arc::new(key),
                path: path.to_path_buf(),
            });
        }
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(_) if looks_encrypted(&text) => {}
        Err(e) => {
            return Err(SshError::KeyUnsupported {
                path: path.to_path_buf(),
                detail: unsupported_detail(&text, &e),
            });
        }
    }
    let public = encrypted_public(path, &text);
    let mut tried = Vec::new();

    // 1. ssh-agent.
    let socket = source
        .agent_socket
        .clone()
        .or_else(|| std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from));
    match (&socket, &public) {
        _ if !source.agent => tried.push("ssh-agent is disabled".to_string()),
        (None, _) => tried.push("no ssh-agent (SSH_AUTH_SOCK is not set)".to_string()),
        (Some(_), None) => tried.push(
            "ssh-agent cannot be asked: the public key is unknown (no .pub file beside the key)"
                .into(),
        ),
        (Some(sock), Some(public)) => match agent_holds(sock, public).await {
            Ok(true) => {
                tracing::debug!(target: "ssh", "using ssh-agent at {} for {}", sock.display(), path.display());
                return Ok(Identity::Agent {
                    public: public.clone(),
                    socket: sock.clone(),
                    path: path.to_path_buf(),
                });
            }
            Ok(false) => tried.push(format!(
                "the ssh-agent at {} does not hold it",
                sock.display()
            )),
            Err(note) => tried.push(note),
        },
    }

    // 2. A passphrase given by the caller.
    if let Some(pass) = &source.passphrase {
        let key = decode(path, &text, pass.expose(), PassphraseOrigin::Caller)?;
        return Ok(Identity::Key {
            key: Arc::new(key),
            path: path.to_path_buf(),
        });
    }

    // 3. The environment variable.
    if let Some(var) = &source.env_var {
        match std::env::var(var) {
            Ok(pass) if !pass.is_empty() => {
                let key = decode(path, &text, &pass, PassphraseOrigin::EnvVar)?;
                return Ok(Identity::Key {
                    key: Arc::new(key),
                    path: path.to_path_buf(),
                });
            }
            _ => tried.push(format!("{var} is not set")),
        }
    }

    // 4. A prompt, only when stdin is a terminal.
    if source.prompt && std::io::stdin().is_terminal() {
        let prompt = format!("Passphrase for SSH key {}: ", path.display());
        let pass = tokio::task::spawn_blocking(move || {
            rpassword::prompt_password(prompt).map(Secret::new)
        })
        .await
        .ok()
        .and_then(Result::ok);
        if let Some(pass) = pass {
            let key = decode(path, &text, pass.expose(), PassphraseOrigin::Prompt)?;
            return Ok(Identity::Key {
                key: Arc::new(key),
                path: path.to_path_buf(),
            });
        }
        tried.push("the terminal prompt could not be read".into());
    } else if source.prompt {
        tried.push("standard input is not a terminal to ask".into());
    }

    Err(SshError::KeyEncryptedNoPassphrase {
        path: path.to_path_buf(),
        fingerprint: public
            .as_ref()
            .map(fingerprint)
            .unwrap_or_else(|| "fingerprint unknown".into()),
        tried: tried.join("; "),
    })
}

/// Offers `identity` for `user`. `Ok(true)` when the server accepted it.
pub(crate) async fn authenticate<H: russh::client::Handler>(
    handle: &mut russh::client::Handle<H>,
    user: &str,
    identity: &Identity,
) -> Result<bool, AuthFailure> {
    let public = identity.public_key();
    let hash = if public.algorithm().is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .map_err(AuthFailure::Protocol)?
            .flatten()
    } else {
        None
    };
    let result = match identity {
        Identity::Key { key, .. } => handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await
            .map_err(AuthFailure::Protocol)?,
        Identity::Agent { socket, .. } => {
            let mut agent =
                AgentClient::connect_uds(socket)
                    .await
                    .map_err(|e| AuthFailure::Agent {
                        socket: socket.display().to_string(),
                        detail: e.to_string(),
                    })?;
            handle
                .authenticate_publickey_with(user, public, hash, &mut agent)
                .await
                .map_err(|e| match e {
                    russh::AgentAuthError::Send(_) => {
                        AuthFailure::Protocol(russh::Error::SendError)
                    }
                    russh::AgentAuthError::Key(k) => AuthFailure::Agent {
                        socket: socket.display().to_string(),
                        detail: format!("signing failed: {k}"),
                    },
                })?
        }
    };
    Ok(result.success())
}

/// Why [`authenticate`] could not get an answer.
pub(crate) enum AuthFailure {
    Protocol(russh::Error),
    Agent { socket: String, detail: String },
}
