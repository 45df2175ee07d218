//! `check [ENV]`: what this machine needs to provision, and how to fix each gap. Needs no tofu,
//! ansible, ssh or lxc binary.

use std::path::Path;

use serde::Serialize;

use super::OpsError;
use super::lxd_host::{self, ImageSource};
use super::lxd_remote;
use crate::config::{LxdProvider, Provider};
use crate::lxd::api::Auth;
use crate::lxd::{LxdClient, LxdTransport, UnixSocket, find_socket};
use crate::state::DataDir;

#[derive(Debug, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Checked {
    pub environment: Option<String>,
    pub ok: bool,
    pub checks: Vec<Check>,
}

pub async fn check(data: &DataDir, env: Option<&str>) -> Result<Checked, OpsError> {
    let state = env.map(|e| data.load(e)).transpose()?;
    let mut checks = Vec::new();
    match state.as_ref().map(|s| &s.config.provider) {
        Some(Provider::Lxd(p)) if p.endpoint.is_some() => {
            let state = state.clone().expect("an environment");
            check_remote_lxd(p, data, state, &mut checks).await
        }
        Some(Provider::Lxd(p)) => check_lxd(p, &mut checks).await,
        Some(Provider::Hetzner(p)) => check_hetzner(p, &mut checks).await,
        None => check_lxd(&LxdProvider::new("unused"), &mut checks).await,
    }
    if let Some(state) = &state {
        match state.private_key_path() {
            Some(path) => checks.push(check_key(&path)),
            None => checks.push(Check::fail(
                "SSH key",
                "no private key",
                "set ssh_credentials in the environment file and run `create environment` again",
            )),
        }
        if let Some(public) = state.public_key_path() {
            checks.push(match crate::ssh::read_public_key(&public) {
                Ok(_) => Check::pass("SSH public key", public.display().to_string()),
                Err(e @ crate::ssh::PublicKeyError::Read { .. }) => Check::fail(
                    "SSH public key",
                    e.to_string(),
                    "check `ssh_credentials.public_key_path` and the file's permissions",
                ),
                Err(crate::ssh::PublicKeyError::Invalid { path, reason }) => Check::fail(
                    "SSH public key",
                    format!("{}: {reason}", path.display()),
                    crate::ssh::PUBLIC_KEY_FIX,
                ),
            });
        }
    }
    Ok(Checked {
        environment: env.map(str::to_string),
        ok: checks.iter().all(|c| c.ok),
        checks,
    })
}

/// The Hetzner Cloud API answers and accepts the token (one list request).
async fn check_hetzner(provider: &crate::config::HetznerProvider, checks: &mut Vec<Check>) {
    let result = async {
        let client = crate::hetzner::HetznerClient::new(crate::hetzner::resolve_token(
            &provider.api_token,
        )?)?;
        client.servers("torrust-deployer-check").await?;
        Ok::<_, crate::hetzner::HetznerError>(client.endpoint().to_string())
    }
    .await;
    checks.push(match result {
        Ok(endpoint) => Check::pass("Hetzner Cloud API", format!("{endpoint} accepts the token")),
        Err(e) => Check::fail(
            "Hetzner Cloud API",
            e.to_string(),
            "see docs/user-guide/hetzner.md (the token, HCLOUD_TOKEN, TORRUST_HETZNER_API_URL)",
        ),
    });
}

async fn check_lxd(provider: &LxdProvider, checks: &mut Vec<Check>) {
    let socket = match find_socket(provider.socket_path.as_deref()) {
        Ok(s) => {
            checks.push(Check::pass("LXD socket", s.display().to_string()));
            s
        }
        Err(e) => {
            checks.push(Check::fail(
                "LXD socket",
                e.to_string(),
                "install and start LXD: `provisioning/host/prepare-lxd-host.sh`",
            ));
            return;
        }
    };
    let client = LxdClient::new(
        LxdTransport::Unix(UnixSocket::new(&socket)),
        provider.project.clone(),
    );
    check_lxd_objects(provider, &client, checks).await;
}

/// A remote LXD: reached over HTTPS with the environment's pinned fingerprint and certificate,
/// without making or redeeming anything (provision does that).
async fn check_remote_lxd(
    provider: &LxdProvider,
    data: &DataDir,
    mut state: crate::state::EnvironmentState,
    checks: &mut Vec<Check>,
) {
    match lxd_remote::connect_readonly(provider, data, &mut state).await {
        Ok(client) => {
            checks.push(Check::pass("LXD endpoint", client.endpoint()));
            check_lxd_objects(provider, &client, checks).await;
        }
        Err(e) => checks.push(Check::fail(
            "LXD endpoint",
            e.to_string(),
            "see docs/user-guide/lxd.md (remote LXD: endpoint, trust token, fingerprint)",
        )),
    }
}

async fn check_lxd_objects(
    provider: &LxdProvider,
    client: &LxdClient<LxdTransport>,
    checks: &mut Vec<Check>,
) {
    match client.server().await {
        Ok(server) if server.auth == Auth::Trusted => checks.push(Check::pass(
            "LXD API",
            format!(
                "LXD {} answers and trusts us",
                if server.environment.server_version.is_empty() {
                    "?"
                } else {
                    &server.environment.server_version
                }
            ),
        )),
        Ok(server) => {
            checks.push(Check::fail(
                "LXD API",
                format!("answers, but auth is \"{}\"", server.auth),
                "run as root or as a member of the `lxd` group",
            ));
            return;
        }
        Err(e) => {
            checks.push(Check::fail(
                "LXD API",
                e.to_string(),
                "start LXD (`provisioning/host/prepare-lxd-host.sh`), or fix the socket's permissions",
            ));
            return;
        }
    }
    match client.storage_pool(&provider.storage_pool).await {
        Ok(Some(pool)) => checks.push(Check::pass(
            "storage pool",
            format!(
                "{} ({})",
                provider.storage_pool,
                if pool.driver.is_empty() {
                    "?"
                } else {
                    &pool.driver
                }
            ),
        )),
        Ok(None) => checks.push(Check::fail(
            "storage pool",
            format!("{} does not exist", provider.storage_pool),
            "create it (`provisioning/host/prepare-lxd-host.sh` creates `default`), or set `provider.storage_pool`",
        )),
        Err(e) => checks.push(Check::fail("storage pool", e.to_string(), "check LXD")),
    }
    match client.network(&provider.network).await {
        Ok(Some(_)) => checks.push(Check::pass("network", provider.network.clone())),
        Ok(None) => checks.push(Check::fail(
            "network",
            format!("{} does not exist", provider.network),
            "create it (`provisioning/host/prepare-lxd-host.sh` creates `lxdbr0`), or set `provider.network`",
        )),
        Err(e) => checks.push(Check::fail("network", e.to_string(), "check LXD")),
    }
    match lxd_host::image_source(&provider.image) {
        ImageSource::Local(reference) => match client.local_image(&reference).await {
            Ok(Some(img)) => checks.push(Check::pass(
                "image",
                format!(
                    "{reference} is local ({})",
                    &img.fingerprint[..12.min(img.fingerprint.len())]
                ),
            )),
            Ok(None) => checks.push(Check::fail(
                "image",
                format!("{reference} is not in LXD's image store"),
                "build and import one with `provisioning/image/build-debian-image.sh`, upload one with `torrust-tracker-deployer image import`, or set `provider.image`",
            )),
            Err(e) => checks.push(Check::fail("image", e.to_string(), "check LXD")),
        },
        ImageSource::Remote { server, alias } => checks.push(Check::pass(
            "image",
            format!(
                "{alias} from {server}: LXD downloads it at provision time, so LXD must reach that server (on an air-gapped host, import an image and use its local alias)"
            ),
        )),
    }
}

fn check_key(path: &Path) -> Check {
    use russh::keys::Algorithm;
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => match key.algorithm() {
            Algorithm::Ed25519 | Algorithm::Ecdsa { .. } | Algorithm::Rsa { .. } => Check::pass(
                "SSH key",
                format!("{} ({})", path.display(), key.algorithm().as_str()),
            ),
            other => Check::fail(
                "SSH key",
                format!(
                    "{}: {} keys are not supported",
                    path.display(),
                    other.as_str()
                ),
                "use an ed25519, ECDSA or RSA key",
            ),
        },
        Err(russh::keys::Error::KeyIsEncrypted) => Check::pass(
            "SSH key",
            format!(
                "{} is passphrase-protected: load it into ssh-agent, or set {}",
                path.display(),
                crate::ssh::PASSPHRASE_ENV
            ),
        ),
        Err(e) => Check::fail(
            "SSH key",
            format!("{}: {e}", path.display()),
            "check `ssh_credentials.private_key_path` and that this user may read it",
        ),
    }
}
