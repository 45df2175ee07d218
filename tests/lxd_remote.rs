//! A remote LXD over HTTPS: this machine's LXD, listening on a loopback port the test picks
//! (`core.https_address`), reached as a remote through `provider.endpoint`. The client
//! certificate is made by the deployer and trusted through a trust token; the server is pinned
//! by the fingerprint the token carries. Provision, deploy and destroy run over HTTPS; a
//! wrong fingerprint is refused; a revoked certificate is a clear error.
//!
//! The test changes the LXD daemon's config and trust store: [`HttpsListener`] puts back
//! `core.https_address`, removes the certificates named after the test and revokes its unused
//! tokens, whatever happens. Needs LXD and the test images (see tests/lxd_provision.rs).

use base64::Engine;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use torrust_tracker_deployer::lxd::transport::{self, Transport};
use torrust_tracker_deployer::lxd::{UnixSocket, find_socket};

use crate::common;
use common::lxd::*;
use common::{Sandbox, mode};

/// One request to the local LXD over its socket; the answer's status and JSON.
fn local(method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let socket = UnixSocket::new(&find_socket(None).expect("LXD socket"));
    runtime().block_on(async {
        let (headers, body) = match body {
            Some(b) => (
                vec![("content-type", "application/json".to_string())],
                transport::bytes(serde_json::to_vec(&b).unwrap()),
            ),
            None => (Vec::new(), transport::empty()),
        };
        let r = socket.send(method, path, headers, body).await.unwrap();
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    })
}

/// This machine's LXD listening on HTTPS at 127.0.0.1 on a free port, for the life of the
/// value; dropping it restores `core.https_address`, removes the trusted certificates named
/// `<prefix>*` and revokes the tokens it made and nobody used.
struct HttpsListener {
    previous: String,
    port: u16,
    prefix: String,
    tokens: std::cell::RefCell<Vec<String>>,
}

impl HttpsListener {
    fn start(prefix: &str) -> Self {
        let (_, server) = local(Method::GET, "/1.0", None);
        let previous = server["metadata"]["config"]["core.https_address"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let me = Self {
            previous,
            port,
            prefix: prefix.to_string(),
            tokens: Default::default(),
        };
        let (status, body) = local(
            Method::PATCH,
            "/1.0",
            Some(json!({"config": {"core.https_address": format!("127.0.0.1:{port}")}})),
        );
        assert!(status.is_success(), "setting core.https_address: {body}");
        me
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The server certificate's fingerprint, as LXD reports it.
    fn fingerprint(&self) -> String {
        let (_, server) = local(Method::GET, "/1.0", None);
        server["metadata"]["environment"]["certificate_fingerprint"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A new trust token for a client named `name` (what `lxc config trust add --name` prints).
    fn token(&self, name: &str) -> String {
        let (status, body) = local(
            Method::POST,
            "/1.0/certificates",
            Some(json!({"name": name, "type": "client", "token": true})),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "making a token: {body}");
        let op = &body["metadata"];
        self.tokens
            .borrow_mut()
            .push(op["id"].as_str().unwrap().to_string());
        let meta = &op["metadata"];
        let token = json!({
            "client_name": name,
            "fingerprint": meta["fingerprint"],
            "addresses": meta["addresses"],
            "secret": meta["secret"],
            "expires_at": "0001-01-01T00:00:00Z",
        });
        base64::engine::general_purpose::STANDARD.encode(token.to_string())
    }

    /// The trusted certificates named `<prefix>*`, by fingerprint.
    fn trusted(&self) -> Vec<String> {
        let (_, list) = local(Method::GET, "/1.0/certificates?recursion=1", None);
        list["metadata"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&self.prefix))
            })
            .map(|c| c["fingerprint"].as_str().unwrap().to_string())
            .collect()
    }

    fn revoke(&self, fingerprint: &str) {
        let (status, body) = local(
            Method::DELETE,
            &format!("/1.0/certificates/{fingerprint}"),
            None,
        );
        assert!(status.is_success(), "revoking {fingerprint}: {body}");
    }
}

impl Drop for HttpsListener {
    fn drop(&mut self) {
        for fp in self.trusted() {
            local(Method::DELETE, &format!("/1.0/certificates/{fp}"), None);
        }
        for id in self.tokens.borrow().iter() {
            local(Method::DELETE, &format!("/1.0/operations/{id}"), None);
        }
        let (status, body) = local(
            Method::PATCH,
            "/1.0",
            Some(json!({"config": {"core.https_address": self.previous}})),
        );
        if !status.is_success() {
            eprintln!("restoring core.https_address failed: {body}");
        }
    }
}

/// An environment on the remote LXD at `endpoint`, with `extra` provider settings, its images
/// from the offline bundle; returns its file.
fn remote_env(sb: &Sandbox, name: &str, endpoint: &str, extra: Value) -> String {
    let mut cfg = common::minimal(name);
    let bundle = std::env::var("TORRUST_TEST_BUNDLE")
        .unwrap_or_else(|_| "/var/cache/torrust-deployer/bundle/current".into());
    assert!(
        std::path::Path::new(&bundle).is_dir(),
        "no offline bundle at {bundle}: run `bash provisioning/images/build-offline-bundle.sh`"
    );
    cfg["images"] = json!({ "offline_bundle": bundle });
    cfg["provider"] = json!({
        "provider": "lxd",
        "profile_name": format!("torrust-test-{name}"),
        "image": IMAGE,
        "endpoint": endpoint,
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg["provider"][k] = v.clone();
    }
    let file = sb.env_file(&format!("{name}.json"), &cfg);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    file
}

/// Deletes the environment's instance and profile through the local socket, whatever happens
/// (the deployer's own destroy may be what failed, or be refused once the certificate is gone).
struct RemoveLocally(String);

impl Drop for RemoveLocally {
    fn drop(&mut self) {
        let instance = format!("torrust-tracker-vm-{}", self.0);
        let profile = format!("torrust-test-{}", self.0);
        runtime().block_on(async {
            let lxd = lxd();
            if lxd.instance(&instance).await.ok().flatten().is_some() {
                let _ = lxd
                    .change_state(
                        &instance,
                        torrust_tracker_deployer::lxd::StateAction::Stop,
                        true,
                    )
                    .await;
                let _ = lxd.delete_instance(&instance).await;
            }
            let _ = lxd.delete_profile(&profile).await;
        });
    }
}

fn error_kind(run: &common::Run) -> String {
    run.json()["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("no error kind: {run:?}"))
        .to_string()
}

#[test]
#[ignore = "needs LXD: provisioning/test.sh prepares it and runs it"]
fn provision_deploy_destroy_over_https_with_a_trust_token() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = &unique("lxd-remote");
    let listener = HttpsListener::start(name);
    let sb = Sandbox::new();
    let endpoint = listener.endpoint();
    let server_fp = listener.fingerprint();

    // A wrong pinned fingerprint is refused before anything is sent.
    let wrong = &format!("{name}-wrong");
    remote_env(
        &sb,
        wrong,
        &endpoint,
        json!({"server_fingerprint": "ab".repeat(32)}),
    );
    let run = sb
        .cmd(&["-o", "json", "provision", wrong])
        .env("TORRUST_LXD_TRUST_TOKEN", &listener.token(wrong))
        .status(1)
        .run();
    assert_eq!(error_kind(&run), "lxd_server_mismatch", "{run:?}");
    assert!(run.stdout.contains(&server_fp), "{run:?}");
    assert!(
        listener.trusted().is_empty(),
        "a refused server got a certificate"
    );

    // No token and nothing pinned: nothing to trust the server by.
    let file = remote_env(&sb, name, &endpoint, json!({}));
    let run = sb.cmd(&["-o", "json", "provision", name]).status(1).run();
    assert_eq!(error_kind(&run), "lxd_not_trusted", "{run:?}");
    assert!(run.stdout.contains("lxc config trust add"), "{run:?}");

    // With a token: trusted, pinned, provisioned over HTTPS.
    let _cleanup = RemoveLocally(name.to_string());
    let token = listener.token(name);
    let run = sb
        .cmd(&["-o", "json", "provision", name])
        .env("TORRUST_LXD_TRUST_TOKEN", &token)
        .run();
    let out = run.json();
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));
    assert!(!sb.logs().contains(&token), "the token was logged");
    let connect = &out["steps"][0];
    assert_eq!(connect["detail"], endpoint.as_str(), "{out:#}");
    let st = state(&sb, name);
    assert_eq!(
        st["lxd"]["server_fingerprint"],
        server_fp.as_str(),
        "{st:#}"
    );
    assert_eq!(st["lxd"]["location"], "none", "{st:#}");
    let client_fp = st["lxd"]["client_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(listener.trusted(), vec![client_fp.clone()]);
    let key = sb.data().join(name).join("lxd-client.key");
    assert_eq!(mode(&key), 0o600);
    let instance = out["instance"].as_str().unwrap().to_string();
    assert_eq!(instance, format!("torrust-tracker-vm-{name}"));
    assert!(instance_exists(&instance));

    // Again, without the token: the certificate is trusted and the pin recorded.
    let again = sb.run(&["-o", "json", "provision", name]).ok().json();
    assert_eq!(again["changed"], false, "{again:#}");

    // `check` reaches it the same way, read-only.
    let checked = sb.run(&["-o", "json", "check", name]).json();
    let endpoint_check = checked["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "LXD endpoint")
        .unwrap_or_else(|| panic!("{checked:#}"))
        .clone();
    assert_eq!(endpoint_check["ok"], true, "{checked:#}");
    assert_eq!(endpoint_check["detail"], endpoint.as_str());

    // The whole deploy (configure, release, run, test): the LXD part of it over HTTPS.
    let deployed = sb
        .run(&["-o", "json", "deploy", name, "--env-file", &file])
        .ok();
    assert_eq!(state(&sb, name)["lifecycle"], "running", "{deployed:?}");
    let phases: Vec<String> = deployed.json()["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        phases,
        [
            "environment",
            "provision",
            "configure",
            "release",
            "run",
            "test"
        ]
    );

    // Revoked on the server: a clear error, nothing deleted.
    listener.revoke(&client_fp);
    let run = sb.cmd(&["-o", "json", "destroy", name]).status(1).run();
    assert_eq!(error_kind(&run), "lxd_not_trusted", "{run:?}");
    assert!(run.stdout.contains("revoked"), "{run:?}");
    assert!(instance_exists(&instance));

    // A new token: trusted again; destroy removes the instance, the profile and the
    // certificate from the trust store.
    let run = sb
        .cmd(&["-o", "json", "destroy", name])
        .env("TORRUST_LXD_TRUST_TOKEN", &listener.token(name))
        .run();
    let steps = run.json()["steps"].clone();
    assert!(
        steps
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "remove client certificate" && s["changed"] == true),
        "{steps:#}"
    );
    assert!(!instance_exists(&instance));
    assert!(!profile_exists(&format!("torrust-test-{name}")));
    assert!(listener.trusted().is_empty());
}
