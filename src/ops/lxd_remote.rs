//! Reaching the environment's LXD: the local socket, or a remote LXD over HTTPS (ADR 0040). For
//! a remote one: the client certificate (made for the environment and kept 0600 in its data
//! directory, or given by path), the server's fingerprint pinned (from the trust token on first
//! contact, then as recorded in the state), the trust token redeemed when the server does not
//! trust the certificate yet; and cluster placement (`provider.target`, the member recorded).

use std::path::Path;

use crate::config::LxdProvider;
use crate::lxd::api::Auth;
use crate::lxd::https::{ClientIdentity, Https, normalize_fingerprint};
use crate::lxd::transport::{LxdTransport, Transport};
use crate::lxd::{LxdClient, LxdError, Server, UnixSocket, find_socket, trust};
use crate::secret::Secret;
use crate::state::{DataDir, EnvironmentState, LxdRecord, fsutil};

/// The environment variable that may hold the trust token instead of the environment file.
pub const TRUST_TOKEN_ENV: &str = "TORRUST_LXD_TRUST_TOKEN";

/// The client of the environment's LXD, checked to answer and to trust us. For a remote LXD,
/// what was learnt (the pinned server fingerprint, the client's) is recorded in `state`.
pub async fn connect(
    provider: &LxdProvider,
    data: &DataDir,
    state: &mut EnvironmentState,
) -> Result<LxdClient<LxdTransport>, LxdError> {
    connect_with(provider, data, state, true).await
}

/// [`connect`] that makes no certificate and redeems no token (for `check`): a remote LXD that
/// does not trust the environment's certificate yet is an error.
pub async fn connect_readonly(
    provider: &LxdProvider,
    data: &DataDir,
    state: &mut EnvironmentState,
) -> Result<LxdClient<LxdTransport>, LxdError> {
    connect_with(provider, data, state, false).await
}

async fn connect_with(
    provider: &LxdProvider,
    data: &DataDir,
    state: &mut EnvironmentState,
    may_change: bool,
) -> Result<LxdClient<LxdTransport>, LxdError> {
    let Some(endpoint) = &provider.endpoint else {
        let socket = find_socket(provider.socket_path.as_deref())?;
        let client = LxdClient::new(
            LxdTransport::Unix(UnixSocket::new(&socket)),
            provider.project.clone(),
        );
        let server = client.server().await?;
        if server.auth != Auth::Trusted {
            return Err(LxdError::Api {
                doing: "checking that LXD trusts this client".into(),
                status: 403,
                message: format!(
                    "LXD at {} answers but does not trust us (auth: {})",
                    client.endpoint(),
                    server.auth
                ),
            });
        }
        return Ok(client);
    };
    let identity = client_identity(provider, data, &state.name, may_change)?;
    let client_fp = identity
        .fingerprint()
        .map_err(|message| cert_error(provider, data, &state.name, message))?;
    let token = trust_token(provider).filter(|_| may_change);
    let recorded = state
        .lxd
        .as_ref()
        .filter(|r| r.endpoint.as_deref() == Some(endpoint.as_str()))
        .and_then(|r| r.server_fingerprint.clone());
    let pinned = match (&provider.server_fingerprint, recorded, &token) {
        (Some(configured), _, _) => normalize_fingerprint(configured),
        (None, Some(recorded), _) => recorded,
        (None, None, Some(token)) => {
            trust::decode_token(token)
                .map_err(|why| not_trusted(endpoint, why, &state.name))?
                .fingerprint
        }
        (None, None, None) => {
            return Err(not_trusted(
                endpoint,
                "nothing tells this server's identity yet (no trust token, no recorded or \
                 configured fingerprint)"
                    .into(),
                &state.name,
            ));
        }
    };
    let transport = Https::new(endpoint, &identity, &pinned)
        .map_err(|message| cert_error(provider, data, &state.name, message))?;
    let client = LxdClient::new(LxdTransport::Https(transport), provider.project.clone());
    let server = client.server().await?;
    if server.auth != Auth::Trusted {
        become_trusted(&client, &server, token.as_ref(), &client_fp, &state.name).await?;
    }
    let record = state.lxd.get_or_insert_with(LxdRecord::default);
    if record.endpoint.as_deref() != Some(endpoint.as_str()) {
        record.location = None;
    }
    record.endpoint = Some(endpoint.clone());
    record.server_fingerprint = Some(pinned);
    record.client_fingerprint = Some(client_fp);
    Ok(client)
}

/// Redeems the trust token, or says how to get one.
async fn become_trusted<T: Transport>(
    client: &LxdClient<T>,
    server: &Server,
    token: Option<&Secret>,
    client_fp: &str,
    env: &str,
) -> Result<(), LxdError> {
    let endpoint = client.endpoint();
    let Some(token) = token else {
        return Err(not_trusted(
            &endpoint,
            format!(
                "its trust store does not hold this client's certificate ({client_fp}); if it \
                 did before, it was removed (revoked)"
            ),
            env,
        ));
    };
    client
        .redeem_trust_token(token, server.has_extension("explicit_trust_token"))
        .await
        .map_err(|e| match e {
            LxdError::Api {
                message,
                status: 400 | 403 | 404 | 501,
                ..
            } => not_trusted(
                &endpoint,
                format!(
                    "it refused the trust token ({message}): the token is spent, expired, \
                         revoked or made by another server"
                ),
                env,
            ),
            e => e,
        })?;
    if client.server().await?.auth != Auth::Trusted {
        return Err(not_trusted(
            &endpoint,
            "it accepted the trust token but still does not trust this client".into(),
            env,
        ));
    }
    tracing::info!("LXD at {endpoint} now trusts this client's certificate {client_fp}");
    Ok(())
}

fn not_trusted(endpoint: &str, why: String, env: &str) -> LxdError {
    LxdError::NotTrusted {
        endpoint: endpoint.to_string(),
        why,
        fix: format!(
            "On the LXD server, make a trust token (`lxc config trust add --name {env}`) and \
             give it in {TRUST_TOKEN_ENV} (or `provider.trust_token`), then run the command \
             again; the token also pins the server's certificate"
        ),
    }
}

/// The trust token from the environment file, else from [`TRUST_TOKEN_ENV`].
fn trust_token(provider: &LxdProvider) -> Option<Secret> {
    provider
        .trust_token
        .clone()
        .filter(|t| !t.expose().trim().is_empty())
        .or_else(|| {
            std::env::var(TRUST_TOKEN_ENV)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .map(Secret::new)
        })
}

/// The client certificate: the files the provider names, or the environment's own (made on
/// first use, 0600).
fn client_identity(
    provider: &LxdProvider,
    data: &DataDir,
    env: &str,
    may_make: bool,
) -> Result<ClientIdentity, LxdError> {
    let given = provider
        .client_certificate
        .as_ref()
        .zip(provider.client_key.as_ref());
    let (cert, key) = match given {
        Some((c, k)) => (c.clone(), k.clone()),
        None => data.lxd_client_cert(env),
    };
    if given.is_none() && !(cert.exists() && key.exists()) && may_make {
        let made = ClientIdentity::generate(&format!("torrust-tracker-deployer {env}"))
            .map_err(|message| cert_error(provider, data, env, message))?;
        write_0600(&key, made.key_pem.expose().as_bytes(), provider, data, env)?;
        write_0600(&cert, made.cert_pem.as_bytes(), provider, data, env)?;
        return Ok(made);
    }
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| LxdError::ClientCertificate {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    };
    Ok(ClientIdentity {
        cert_pem: read(&cert)?,
        key_pem: Secret::new(read(&key)?),
    })
}

fn write_0600(
    path: &Path,
    bytes: &[u8],
    provider: &LxdProvider,
    data: &DataDir,
    env: &str,
) -> Result<(), LxdError> {
    fsutil::write_atomic(path, bytes, 0o600).map_err(|e| {
        cert_error(
            provider,
            data,
            env,
            format!("writing {}: {e}", path.display()),
        )
    })
}

/// An unusable client certificate, named by the file it comes from.
fn cert_error(provider: &LxdProvider, data: &DataDir, env: &str, message: String) -> LxdError {
    LxdError::ClientCertificate {
        path: provider
            .client_certificate
            .clone()
            .unwrap_or_else(|| data.lxd_client_cert(env).0),
        message,
    }
}

/// Removes the environment's own client certificate from the remote LXD's trust store (destroy's
/// last call to it). A certificate given by path may serve other environments: it stays.
pub async fn forget_client<T: Transport>(
    client: &LxdClient<T>,
    provider: &LxdProvider,
    state: &EnvironmentState,
) -> Result<Option<bool>, LxdError> {
    if provider.endpoint.is_none() || provider.client_certificate.is_some() {
        return Ok(None);
    }
    let Some(fp) = state
        .lxd
        .as_ref()
        .and_then(|r| r.client_fingerprint.clone())
    else {
        return Ok(None);
    };
    client.remove_certificate(&fp).await.map(Some)
}

/// Checks `provider.target` against the server: only a cluster places instances, and a member
/// must exist (a group, `@name`, is checked by LXD at creation).
pub async fn check_target<T: Transport>(
    client: &LxdClient<T>,
    provider: &LxdProvider,
) -> Result<(), crate::ops::provision::ProvisionError> {
    use crate::ops::provision::ProvisionError;
    let Some(target) = &provider.target else {
        return Ok(());
    };
    let server = client.server().await?;
    if !server.environment.server_clustered {
        return Err(ProvisionError::Missing {
            what: "cluster member",
            name: target.clone(),
            fix: format!(
                "LXD at {} is not a cluster: remove `provider.target`",
                client.endpoint()
            ),
        });
    }
    if !target.starts_with('@') && !client.cluster_member_exists(target).await? {
        return Err(ProvisionError::Missing {
            what: "cluster member",
            name: target.clone(),
            fix: "Set `provider.target` to a member `lxc cluster list` shows, or remove it to \
                  let the cluster choose"
                .into(),
        });
    }
    Ok(())
}

/// Records the member the instance runs on (LXD's `location`).
pub async fn record_location<T: Transport>(
    client: &LxdClient<T>,
    instance: &str,
    state: &mut EnvironmentState,
) -> Result<(), LxdError> {
    if let Some(found) = client.instance(instance).await?
        && !found.location.is_empty()
    {
        state.lxd.get_or_insert_with(LxdRecord::default).location = Some(found.location);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lxd::api::{ImageRef, InstanceSource, NewInstance};
    use crate::lxd::client::testing::Scripted;
    use crate::ops::provision::ProvisionError;
    use serde_json::{Value, json};

    fn sync(metadata: Value) -> (u16, Value) {
        (
            200,
            json!({"type":"sync","status_code":200,"metadata":metadata}),
        )
    }

    fn server(clustered: bool) -> (u16, Value) {
        sync(json!({"auth":"trusted","api_extensions":[],
            "environment":{"server_version":"5.21","server_clustered":clustered}}))
    }

    fn seen(client: &LxdClient<Scripted>) -> Vec<String> {
        client.transport().seen.lock().unwrap().clone()
    }

    fn request() -> NewInstance {
        NewInstance {
            name: "web".into(),
            kind: "container".into(),
            profiles: vec!["p".into()],
            config: Default::default(),
            source: InstanceSource {
                image: ImageRef::Alias {
                    alias: "debian".into(),
                },
            },
        }
    }

    fn created() -> Vec<(u16, Value)> {
        vec![
            (202, json!({"type":"async","operation":"/1.0/operations/c"})),
            sync(json!({"id":"c","status_code":200,"metadata":{}})),
        ]
    }

    #[tokio::test]
    async fn a_target_goes_in_the_create_request_of_the_project() {
        let client = LxdClient::new(Scripted::new(created()), Some("tracker".into()));
        client
            .create_instance_on(&request(), Some("member-2"))
            .await
            .unwrap();
        assert_eq!(
            seen(&client)[0],
            "POST /1.0/instances?target=member-2&project=tracker"
        );

        // A cluster group, `@name`.
        let client = LxdClient::new(Scripted::new(created()), None);
        client
            .create_instance_on(&request(), Some("@edge"))
            .await
            .unwrap();
        assert_eq!(seen(&client)[0], "POST /1.0/instances?target=%40edge");

        // No target: the cluster chooses, and nothing is added.
        let client = LxdClient::new(Scripted::new(created()), Some("tracker".into()));
        client.create_instance(&request()).await.unwrap();
        assert_eq!(seen(&client)[0], "POST /1.0/instances?project=tracker");
    }

    #[tokio::test]
    async fn a_target_is_checked_against_the_cluster_before_anything_is_made() {
        let mut provider = LxdProvider::new("p");
        // No target: no question asked.
        let client = LxdClient::new(Scripted::new(vec![]), None);
        check_target(&client, &provider).await.unwrap();
        assert!(seen(&client).is_empty());

        provider.target = Some("member-2".into());
        // A standalone LXD refuses targets: said before the create, with the fix.
        let client = LxdClient::new(Scripted::new(vec![server(false)]), None);
        let err = check_target(&client, &provider).await.unwrap_err();
        assert!(
            matches!(&err, ProvisionError::Missing { fix, .. } if fix.contains("not a cluster")),
            "{err}"
        );

        // A member the cluster lacks.
        let missing = (
            404,
            json!({"type":"error","error":"Cluster member not found","error_code":404}),
        );
        let client = LxdClient::new(Scripted::new(vec![server(true), missing]), None);
        let err = check_target(&client, &provider).await.unwrap_err();
        assert!(matches!(err, ProvisionError::Missing { .. }), "{err}");
        assert_eq!(seen(&client)[1], "GET /1.0/cluster/members/member-2");

        // A member it has.
        let member = sync(json!({"server_name":"member-2","status":"Online"}));
        let client = LxdClient::new(Scripted::new(vec![server(true), member]), None);
        check_target(&client, &provider).await.unwrap();

        // A group is left to LXD.
        provider.target = Some("@edge".into());
        let client = LxdClient::new(Scripted::new(vec![server(true)]), None);
        check_target(&client, &provider).await.unwrap();
        assert_eq!(seen(&client).len(), 1);
    }

    #[tokio::test]
    async fn the_member_the_instance_runs_on_is_recorded() {
        let file = crate::config::minimal_test_file("demo", "Adm1n-T0ken-for-remote-test");
        let loaded = crate::config::parse(&file.to_string(), std::path::Path::new("/")).unwrap();
        let mut state = EnvironmentState::new(loaded.config, None);
        let instance = sync(json!({"name":"web","status":"Running","location":"member-3"}));
        let client = LxdClient::new(Scripted::new(vec![instance]), None);
        record_location(&client, "web", &mut state).await.unwrap();
        assert_eq!(state.lxd.unwrap().location.as_deref(), Some("member-3"));
    }

    #[tokio::test]
    async fn a_remote_lxd_is_not_contacted_without_a_way_to_know_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let file = crate::config::minimal_test_file("demo", "Adm1n-T0ken-for-remote-test");
        let loaded = crate::config::parse(&file.to_string(), std::path::Path::new("/")).unwrap();
        let mut state = EnvironmentState::new(loaded.config, None);
        std::fs::create_dir_all(data.env_dir("demo")).unwrap();
        let mut provider = LxdProvider::new("p");
        // Port 9 on loopback: nothing may be sent there.
        provider.endpoint = Some("https://127.0.0.1:9".into());
        let err = match connect(&provider, &data, &mut state).await {
            Err(e) => e,
            Ok(_) => panic!("connected"),
        };
        assert!(matches!(err, LxdError::NotTrusted { .. }), "{err}");
        assert!(err.to_string().contains(TRUST_TOKEN_ENV), "{err}");
        // The environment's client certificate was made, its key 0600, and nothing recorded.
        let (cert, key) = data.lxd_client_cert("demo");
        assert!(cert.exists());
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(state.lxd.is_none());
        // `check` makes nothing: with the files gone it says so.
        std::fs::remove_file(&key).unwrap();
        let err = match connect_readonly(&provider, &data, &mut state).await {
            Err(e) => e,
            Ok(_) => panic!("connected"),
        };
        assert!(matches!(err, LxdError::ClientCertificate { .. }), "{err}");
        assert!(!key.exists());
    }
}
