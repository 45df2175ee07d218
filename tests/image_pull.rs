//! `image pull` against a real registry: Debian's `docker-registry` started on a loopback port
//! with a temporary storage directory (tests/support/registry.rs), holding images pushed by the
//! test as Docker schema 2 (gzip layers), OCI (uncompressed layers) and a multi-platform list.
//! Checks the bundle (image IDs equal to the pushed configs' digests, archives the bundle reader
//! and `docker load` read), a second pull that receives no blob, a corrupted cached blob found
//! and fetched again, a partial blob continued with `Range`, the error kinds, and the token auth
//! of the distribution spec against a small registry served by the test.
//! Needs `bash provisioning/ci/install-registry-test-deps.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Run, Sandbox};
use crate::support::registry::{Push, Registry, SavedImage, sha256};

const IMAGES: [(&str, &str, &str, Push); 3] = [
    (
        "torrust/tracker:3.0.0",
        "torrust/tracker",
        "3.0.0",
        Push::DockerGzip,
    ),
    ("mysql:8.4", "library/mysql", "8.4", Push::OciTar),
    (
        "prom/prometheus:v3.11.2",
        "prom/prometheus",
        "v3.11.2",
        Push::IndexDockerGzip,
    ),
];

/// Pushes three small images; returns image -> image ID.
fn registry_with_images() -> (Registry, BTreeMap<String, String>) {
    let registry = Registry::start();
    let mut ids = BTreeMap::new();
    for (image, repo, tag, how) in IMAGES {
        let saved = SavedImage::synthetic(image, 3, 300_000);
        let (id, _) = registry.push_image(&saved, repo, tag, how);
        ids.insert(image.to_string(), id);
    }
    (registry, ids)
}

fn pull(sb: &Sandbox, registry: &Registry, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["-o", "json", "image", "pull", "--registry", &registry.addr];
    let out = out.to_str().unwrap();
    args.extend(["--out", out]);
    for (image, ..) in IMAGES {
        args.extend(["--image", image]);
    }
    args.extend_from_slice(extra);
    sb.command(&args).output().expect("binary runs").into()
}

fn cached_blobs(sb: &Sandbox) -> Vec<PathBuf> {
    let dir = sb.data().join(".cache/oci/blobs/sha256");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    v.sort();
    v
}

/// The largest cached blob (a layer) and its bytes.
fn largest_blob(sb: &Sandbox) -> (PathBuf, Vec<u8>) {
    let path = cached_blobs(sb)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// Checks each archive as `docker load` reads it: manifest.json's config is the image ID's
/// blob, every layer is there and hashes to its name, and the tag is the image's.
fn check_archive(path: &Path, image: &str, id: &str) {
    use std::io::Read;
    let mut files = BTreeMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], image);
    let config = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(sha256(&files[config]), id);
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for l in layers {
        let name = l.as_str().unwrap();
        assert_eq!(sha256(&files[name]), format!("sha256:{}", &name[13..]));
    }
    assert!(files.contains_key("oci-layout") && files.contains_key("index.json"));
}

#[test]
fn pull_writes_a_bundle_then_fetches_only_what_changed() {
    let (registry, ids) = registry_with_images();
    let sb = Sandbox::new();
    let out = sb.path().join("bundle");

    // First pull: every blob received.
    let first = pull(&sb, &registry, &out, &[]);
    assert_eq!(first.code, 0, "{first:#?}\n{}", registry.log());
    let doc = first.json();
    assert_eq!(doc["images"].as_array().unwrap().len(), 3, "{doc:#}");
    // 3 images x (config + 3 layers).
    assert_eq!(doc["blobs_fetched"], 12, "{doc:#}");
    assert!(doc["bytes_received"].as_u64().unwrap() > 900_000, "{doc:#}");
    assert_eq!(doc["blobs_refetched"], 0);
    // Progress went out as byte events of each image's step.
    assert!(
        first
            .stderr
            .lines()
            .any(|l| l.contains("\"step_progress\"") && l.contains("\"bytes\"")),
        "{}",
        first.stderr
    );
    // The bundle, read as release reads it: the pushed image IDs, under the names compose uses.
    let bundle = torrust_tracker_deployer::tasks::bundle::read_bundle(&out).unwrap();
    let mut found = BTreeMap::new();
    for a in &bundle {
        found.extend(a.images.clone());
    }
    assert_eq!(found, ids);
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    for entry in index["images"].as_array().unwrap() {
        let image = entry["image"].as_str().unwrap();
        assert_eq!(entry["id"], ids[image].as_str());
        assert_eq!(entry["kind"], "pulled");
        assert_eq!(entry["platform"], "linux/amd64");
        assert!(entry["digest"].as_str().unwrap().starts_with("sha256:"));
        let file = out.join(entry["file"].as_str().unwrap());
        assert_eq!(
            entry["bytes"].as_u64(),
            Some(std::fs::metadata(&file).unwrap().len())
        );
        check_archive(&file, image, &ids[image]);
    }

    // Again into the same bundle: no blob, no archive written; only the manifests are asked
    // for (one per image, two for the list).
    let second = pull(&sb, &registry, &out, &[]).ok().json();
    assert_eq!(second["blobs_fetched"], 0, "{second:#}");
    assert_eq!(second["bytes_received"], 0);
    assert_eq!(second["requests"], 4);
    assert!(
        second["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["written"] == false)
    );

    // Into a new bundle: archives written from the cache, byte for byte the same.
    let out2 = sb.path().join("bundle2");
    let third = pull(&sb, &registry, &out2, &[]).ok().json();
    assert_eq!(third["bytes_received"], 0, "{third:#}");
    assert_eq!(third["blobs_cached"], 12);
    for (a, b) in doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .zip(third["images"].as_array().unwrap())
    {
        assert_eq!(a["sha256"], b["sha256"]);
        assert_eq!(b["written"], true);
    }

    // A corrupted cached layer (same size, one byte changed) is found and fetched again.
    let (path, bytes) = largest_blob(&sb);
    let mut bad = bytes.clone();
    bad[1000] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let out3 = sb.path().join("bundle3");
    let fourth = pull(&sb, &registry, &out3, &[]).ok().json();
    assert_eq!(fourth["blobs_refetched"], 1, "{fourth:#}");
    assert_eq!(fourth["bytes_received"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // A partial download is continued where it stopped (Range): only the rest is received.
    let partial = path.with_extension("partial");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&partial, &bytes[..bytes.len() / 3]).unwrap();
    let out4 = sb.path().join("bundle4");
    let fifth = pull(&sb, &registry, &out4, &[]).ok().json();
    let rest = (bytes.len() - bytes.len() / 3) as u64;
    assert_eq!(fifth["bytes_received"].as_u64(), Some(rest), "{fifth:#}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(!partial.exists());

    // A stored environment's images (tracker and Prometheus), named as its compose file does,
    // each in its service's archive; all from the cache.
    let mut env = crate::common::minimal("pulled");
    env["prometheus"] = serde_json::json!({});
    let file = sb.env_file("pulled.json", &env);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let out5 = sb.path().join("bundle5");
    let args = [
        "-o",
        "json",
        "image",
        "pull",
        "--env-name",
        "pulled",
        "--registry",
        &registry.addr,
    ];
    let sixth = sb
        .run(&[&args[..], &["--out", out5.to_str().unwrap()]].concat())
        .ok()
        .json();
    let got: Vec<(&str, &str, &str)> = sixth["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["service"].as_str().unwrap(),
                i["image"].as_str().unwrap(),
                i["file"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("tracker", "torrust/tracker:3.0.0", "tracker.tar"),
            ("prometheus", "prom/prometheus:v3.11.2", "prometheus.tar")
        ]
    );
    assert_eq!(sixth["bytes_received"], 0, "{sixth:#}");
}

fn error_kind(run: &Run) -> String {
    run.json()["error"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn pull_failures_have_kinds() {
    let (registry, _) = registry_with_images();
    let sb = Sandbox::new();
    let out = sb.path().join("bundle");
    let out_s = out.to_str().unwrap();
    let run = |args: &[&str]| -> Run {
        let mut all = vec!["-o", "json", "image", "pull", "--out", out_s];
        all.extend_from_slice(args);
        sb.command(&all).output().expect("binary runs").into()
    };
    let local = |image: &str| format!("{}/{image}", registry.addr);

    // A tag the registry lacks.
    let r = run(&["--image", &local("torrust/tracker:9.9.9")]);
    assert_eq!(
        (r.code, error_kind(&r).as_str()),
        (1, "registry_not_found"),
        "{r:#?}"
    );
    assert!(r.stdout.contains("MANIFEST_UNKNOWN"), "{}", r.stdout);

    // A multi-platform image without the platform asked for: the message lists those it has.
    let r = run(&[
        "--image",
        &local("prom/prometheus:v3.11.2"),
        "--platform",
        "linux/s390x",
    ]);
    assert_eq!(
        (r.code, error_kind(&r).as_str()),
        (1, "platform_missing"),
        "{r:#?}"
    );
    assert!(
        r.stdout.contains("linux/arm64/v8, linux/amd64"),
        "{}",
        r.stdout
    );
    // ... and the arm64 child is what --platform linux/arm64 gets.
    let r = run(&[
        "--image",
        &local("prom/prometheus:v3.11.2"),
        "--platform",
        "linux/arm64",
    ])
    .ok();
    assert_eq!(r.json()["images"][0]["layers"], 0);

    // A blob the registry serves with other bytes than its digest says: refused, nothing kept.
    let saved = SavedImage::synthetic("tampered", 1, 50_000);
    let (_, manifest) = registry.push_image(&saved, "team/tampered", "1", Push::OciTar);
    let layer = sha256(&saved.layers[0]);
    let data = registry.blob_data(&layer);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let r = run(&["--image", &local("team/tampered:1")]);
    assert_eq!(
        (r.code, error_kind(&r).as_str()),
        (1, "digest_mismatch"),
        "{r:#?}"
    );
    assert!(r.stdout.contains(&layer), "{}", r.stdout);
    let cached = sb.data().join(".cache/oci/blobs/sha256").join(&layer[7..]);
    assert!(!cached.exists() && !cached.with_extension("partial").exists());
    assert!(manifest.starts_with("sha256:"));

    // Nothing listens there.
    let port = crate::support::tracker::free_tcp_port();
    let r = run(&["--image", &format!("127.0.0.1:{port}/a/b:1")]);
    assert_eq!(
        (r.code, error_kind(&r).as_str()),
        (1, "registry_unreachable"),
        "{r:#?}"
    );

    // A bad reference and a bad platform are usage errors.
    let r = run(&["--image", "Bad/Name"]);
    assert_eq!(r.code, 2, "{r:#?}");
    let r = run(&["--image", "a:1", "--platform", "amd64"]);
    assert_eq!(r.code, 2, "{r:#?}");
}

/// A registry that wants a token (the distribution token spec), served from memory: every
/// `/v2/` request without `Authorization: Bearer <token>` gets a `401` with a `Bearer`
/// challenge naming `/token` on the same server, which hands out the token (or refuses, when
/// `deny` is set). Records each request's first line and its `Authorization` header.
struct TokenRegistry {
    addr: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl TokenRegistry {
    fn start(image: &SavedImage, deny: bool) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (config, layer) = (image.config.clone(), image.layers[0].clone());
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": crate::support::registry::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let realm = format!("http://{addr}/token");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                let mut auth = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line
                        .strip_prefix("authorization: ")
                        .or(line.strip_prefix("Authorization: "))
                    {
                        auth = v.trim().to_string();
                    }
                }
                let path = first
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                seen.lock()
                    .unwrap()
                    .push((first.trim().to_string(), auth.clone()));
                let (status, ctype, body, extra): (&str, &str, Vec<u8>, String) = if path
                    .starts_with("/token")
                {
                    if deny {
                        (
                            "401 Unauthorized",
                            "application/json",
                            br#"{"errors":[{"code":"DENIED","message":"no"}]}"#.to_vec(),
                            String::new(),
                        )
                    } else {
                        (
                            "200 OK",
                            "application/json",
                            br#"{"access_token":"good-token","expires_in":300}"#.to_vec(),
                            String::new(),
                        )
                    }
                } else if auth != "Bearer good-token" {
                    let challenge = format!(
                        "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"test-registry\",scope=\"repository:team/app:pull\"\r\n"
                    );
                    (
                        "401 Unauthorized",
                        "application/json",
                        br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec(),
                        challenge,
                    )
                } else if path.ends_with("/manifests/1") {
                    (
                        "200 OK",
                        crate::support::registry::OCI_MANIFEST,
                        manifest.clone(),
                        format!("Docker-Content-Digest: {}\r\n", sha256(&manifest)),
                    )
                } else if path.ends_with(&sha256(&config)) {
                    (
                        "200 OK",
                        "application/octet-stream",
                        config.clone(),
                        String::new(),
                    )
                } else if path.ends_with(&sha256(&layer)) {
                    (
                        "200 OK",
                        "application/octet-stream",
                        layer.clone(),
                        String::new(),
                    )
                } else {
                    (
                        "404 Not Found",
                        "application/json",
                        br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#.to_vec(),
                        String::new(),
                    )
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        Self { addr, requests }
    }
}

#[test]
fn a_bearer_challenge_is_answered_from_its_realm() {
    let image = SavedImage::synthetic("token", 1, 20_000);
    let registry = TokenRegistry::start(&image, false);
    let sb = Sandbox::new();
    let out = sb.path().join("bundle");
    let reference = format!("{}/team/app:1", registry.addr);
    let run: Run = sb
        .command(&[
            "-o",
            "json",
            "image",
            "pull",
            "--image",
            &reference,
            "--out",
            out.to_str().unwrap(),
        ])
        .env("TORRUST_DEPLOYER_REGISTRY_USERNAME", "ops")
        .env("TORRUST_DEPLOYER_REGISTRY_PASSWORD", "s3cret")
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(
        run.json()["images"][0]["id"],
        sha256(&image.config).as_str()
    );
    let requests = registry.requests.lock().unwrap().clone();
    // One refused manifest request, one token request (with the operator's credentials, and
    // the challenge's service and scope), then everything with the token.
    assert!(
        requests[0].0.contains("/manifests/1") && requests[0].1.is_empty(),
        "{requests:#?}"
    );
    assert!(
        requests[1]
            .0
            .contains("/token?service=test-registry&scope=repository%3Ateam%2Fapp%3Apull"),
        "{requests:#?}"
    );
    assert!(requests[1].1.starts_with("Basic "), "{requests:#?}");
    assert!(
        requests[2..].iter().all(|(_, a)| a == "Bearer good-token"),
        "{requests:#?}"
    );
    assert_eq!(requests.len(), 5, "{requests:#?}");
    assert!(!run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"));

    // A token service that refuses: registry_auth_denied.
    let denied = TokenRegistry::start(&image, true);
    let reference = format!("{}/team/app:1", denied.addr);
    let run: Run = sb
        .command(&[
            "-o",
            "json",
            "image",
            "pull",
            "--image",
            &reference,
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap()
        .into();
    assert_eq!(
        (run.code, error_kind(&run).as_str()),
        (1, "registry_auth_denied"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("DENIED"), "{}", run.stdout);
}
