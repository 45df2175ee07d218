//! A real OCI registry on loopback (Debian's `docker-registry`, the CNCF distribution registry)
//! with a temporary storage directory, and a small push client: images from `docker save`
//! archives (the offline bundle's) go in as Docker schema 2 or OCI manifests, optionally under
//! a multi-platform index. The registry process is the test's own child, stopped by its PID.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub struct Registry {
    child: Child,
    pub addr: String,
    pub storage: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

impl Registry {
    /// Starts `docker-registry serve` on a free loopback port, no auth, and waits for `/v2/`.
    pub fn start() -> Self {
        let bin = which("docker-registry").unwrap_or_else(|| {
            panic!(
                "docker-registry is missing: run `bash provisioning/ci/install-registry-test-deps.sh` \
                 (Debian's docker-registry package)"
            )
        });
        let storage = tempfile::tempdir().unwrap();
        let port = super::tracker::free_tcp_port();
        let addr = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        let root = storage.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        // Our own config: Debian's stock one demands htpasswd auth.
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                 delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                root.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(storage.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let registry = Self {
            child,
            addr,
            storage,
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = registry.http.get(registry.url("/v2/")).send()
                && r.status().is_success()
            {
                return registry;
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not answer on {}: {}",
                registry.addr,
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.storage.path().join("registry.log")).unwrap_or_default()
    }

    /// Uploads a blob (monolithic: POST, then PUT with the digest) unless it is there.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let head = self
            .http
            .head(self.url(&format!("/v2/{repo}/blobs/{digest}")))
            .send()
            .unwrap();
        if head.status().is_success() {
            return digest;
        }
        let r = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{:?}", r.text());
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .http
            .put(format!("{location}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
        digest
    }

    /// Puts a manifest under `reference` (a tag or its digest); returns its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let r = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
        sha256(body)
    }

    /// Pushes the image of a `docker save` archive as `repo:tag`. Returns the image ID (the
    /// config's digest) and the manifest's digest.
    pub fn push_archive(
        &self,
        archive: &Path,
        repo: &str,
        tag: &str,
        how: Push,
    ) -> (String, String) {
        let image = SavedImage::read(archive);
        self.push_image(&image, repo, tag, how)
    }

    pub fn push_image(
        &self,
        image: &SavedImage,
        repo: &str,
        tag: &str,
        how: Push,
    ) -> (String, String) {
        let config = self.push_blob(repo, &image.config);
        let (manifest_type, config_type, layer_type) = match how {
            Push::DockerGzip | Push::IndexDockerGzip => (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            ),
            Push::OciTar => (
                OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar",
            ),
        };
        let mut layers = Vec::new();
        for layer in &image.layers {
            let bytes = match how {
                Push::OciTar => layer.clone(),
                _ => gzip(layer),
            };
            let digest = self.push_blob(repo, &bytes);
            layers.push(
                serde_json::json!({"mediaType": layer_type, "digest": digest, "size": bytes.len()}),
            );
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config, "size": image.config.len()},
            "layers": layers,
        })
        .to_string();
        if how != Push::IndexDockerGzip {
            let digest = self.push_manifest(repo, tag, manifest_type, manifest.as_bytes());
            return (config, digest);
        }
        // A multi-platform list: another platform first (a tiny image of its own), then amd64.
        let digest = self.push_manifest(
            repo,
            &sha256(manifest.as_bytes()),
            manifest_type,
            manifest.as_bytes(),
        );
        let other_config = format!(
            r#"{{"architecture":"arm64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"x":"{repo}"}}"#
        );
        let oc = self.push_blob(repo, other_config.as_bytes());
        let other = serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": oc, "size": other_config.len()},
            "layers": [],
        })
        .to_string();
        let other_digest = self.push_manifest(
            repo,
            &sha256(other.as_bytes()),
            manifest_type,
            other.as_bytes(),
        );
        let list = serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_LIST,
            "manifests": [
                {"mediaType": manifest_type, "digest": other_digest, "size": other.len(),
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": manifest_type, "digest": digest, "size": manifest.len(),
                 "platform": {"os": "linux", "architecture": "amd64"}},
            ]
        })
        .to_string();
        self.push_manifest(repo, tag, DOCKER_LIST, list.as_bytes());
        (config, digest)
    }

    /// The files of the blob `digest` in the registry's storage.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to push an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Docker schema 2, gzip layers (what `docker push` does).
    DockerGzip,
    /// OCI manifest, uncompressed layers.
    OciTar,
    /// A Docker manifest list with an arm64 child and this image as linux/amd64.
    IndexDockerGzip,
}

/// An image as `docker save` wrote it: the config blob and the uncompressed layers.
pub struct SavedImage {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub tags: Vec<String>,
}

impl SavedImage {
    /// Reads a `docker save` archive (`.tar` or `.tar.gz`).
    pub fn read(path: &Path) -> Self {
        let file = std::fs::File::open(path).unwrap();
        let reader: Box<dyn Read> = if path.to_string_lossy().ends_with("gz") {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut files = std::collections::HashMap::new();
        let mut a = tar::Archive::new(reader);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if !e.header().entry_type().is_file() {
                continue;
            }
            let name = e.path().unwrap().to_string_lossy().to_string();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            files.insert(name, bytes);
        }
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        let item = &manifest[0];
        let config = files[item["Config"].as_str().unwrap()].clone();
        let layers = item["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| files[l.as_str().unwrap()].clone())
            .collect();
        let tags = item["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        Self {
            config,
            layers,
            tags,
        }
    }

    /// A small image made here: `layers` tar layers of files with `seed`-dependent content,
    /// and a config whose diff_ids are the layers' digests.
    pub fn synthetic(seed: &str, layers: usize, layer_bytes: usize) -> Self {
        let mut tars = Vec::new();
        for i in 0..layers {
            let mut b = tar::Builder::new(Vec::new());
            let mut content = Vec::with_capacity(layer_bytes);
            let mut x: u64 = 0x9e3779b97f4a7c15 ^ (i as u64) ^ seed.len() as u64;
            for c in seed.bytes() {
                x = x.wrapping_mul(31).wrapping_add(c as u64);
            }
            while content.len() < layer_bytes {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                content.extend_from_slice(&x.to_le_bytes());
            }
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("data/{seed}-{i}.bin"), &content[..])
                .unwrap();
            tars.push(b.into_inner().unwrap());
        }
        let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t)).collect();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/true"], "Labels": {"seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string()
        .into_bytes();
        Self {
            config,
            layers: tars,
            tags: Vec::new(),
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
