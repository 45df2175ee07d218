//! `image pull`: the images an environment uses (or those named), pulled from their registries
//! (or a mirror) over the OCI distribution API, written as an offline bundle that `release`
//! loads: one `docker load` archive per image and the bundle's `manifest.json` (ADR 38).
//!
//! Blobs are kept by digest in a cache on this machine and checked against their digests
//! before use, so pulling again fetches only what changed, and an archive whose manifest
//! digest has not changed is not written again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::OpsError;
use super::backup::Unrecorded;
use super::render::{self, Source};
use crate::events::{self, ByteCounter};
use crate::oci::archive::{self, ArchiveImage};
use crate::oci::cache::{self as blob_cache, BlobCache};
use crate::oci::client::{Client, Credentials, Fetched};
use crate::oci::{OciError, Platform, Reference};
use crate::stack;
use crate::state::DataDir;

/// Which images to pull.
pub enum Images<'a> {
    /// Those the environment's stack uses.
    Environment(Source<'a>),
    /// These references.
    List(&'a [String]),
}

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The bundle directory to write.
    pub out: PathBuf,
    /// The blob cache (default: `<data dir>/.cache/oci`).
    pub cache: Option<PathBuf>,
    pub platform: Platform,
    /// Pull every image from this registry (`host[:port]`, a mirror with the same repository
    /// paths) instead of the one its name says; the bundle still names them as the stack does.
    pub registry: Option<String>,
    /// Registries spoken to over plain HTTP (loopback ones always may be).
    pub insecure: Vec<String>,
}

/// What `image pull` did.
#[derive(Debug, Serialize)]
pub struct Pulled {
    pub out: PathBuf,
    pub cache: PathBuf,
    pub platform: String,
    pub images: Vec<PulledImage>,
    /// Blobs received in this pull, and the bytes of them.
    pub blobs_fetched: u64,
    pub bytes_received: u64,
    /// Blobs the cache already held (checked by digest).
    pub blobs_cached: u64,
    /// Blobs whose cached copy was corrupted, deleted and fetched again.
    pub blobs_refetched: u64,
    /// HTTP requests sent (manifests, blobs, tokens).
    pub requests: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PulledImage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The name the bundle loads it as.
    pub image: String,
    /// Where it was pulled from.
    pub source: String,
    /// The manifest's digest (for the platform).
    pub digest: String,
    /// The image ID (the config blob's digest), as `docker images` shows it.
    pub id: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub layers: usize,
    /// Blob bytes received for it in this pull.
    pub received: u64,
    /// Whether its archive was written (false: the bundle already held this manifest).
    pub written: bool,
}

/// Counts across the images.
#[derive(Debug, Default)]
struct Counts {
    fetched: u64,
    cached: u64,
    refetched: u64,
}

impl Counts {
    fn add(&mut self, f: &Fetched) {
        match (f.received > 0 || f.refetched, f.refetched) {
            (true, true) => {
                self.fetched += 1;
                self.refetched += 1;
            }
            (true, false) => self.fetched += 1,
            _ => self.cached += 1,
        }
    }
}

/// Pulls `images` into the bundle `options.out`.
pub async fn pull(
    data: &DataDir,
    images: Images<'_>,
    options: &PullOptions,
) -> Result<Pulled, OpsError> {
    let started = Instant::now();
    let (label, wanted) = wanted_images(data, images)?;
    for (_, image) in &wanted {
        Reference::parse(image).map_err(|e| OpsError::Refused(e.to_string()))?;
    }
    if let Some(registry) = &options.registry {
        Reference::parse(&format!("{registry}/x")).map_err(|_| {
            OpsError::Refused(format!("--registry {registry:?} is not `host[:port]`"))
        })?;
    }
    let cache_dir = options
        .cache
        .clone()
        .unwrap_or_else(|| data.root().join(".cache").join("oci"));
    let cache = BlobCache::open(&cache_dir).map_err(OpsError::typed)?;
    std::fs::create_dir_all(&options.out).map_err(OpsError::io(format!(
        "cannot create the bundle directory {}",
        options.out.display()
    )))?;
    let old = read_index(&options.out);
    let client =
        Client::new(options.insecure.clone(), Credentials::from_env()).map_err(OpsError::typed)?;
    let run = Unrecorded::begin(&label, "image pull");
    let mut counts = Counts::default();
    let mut pulled = Vec::new();
    for (service, image) in &wanted {
        let step = format!("pull {image}");
        let one = run
            .step(&step, |p: &PulledImage| Some(p.written), async {
                pull_one(
                    &client,
                    &cache,
                    &old,
                    options,
                    service.as_deref(),
                    image,
                    &mut counts,
                )
                .await
            })
            .await?;
        pulled.push(one);
    }
    run.step("write manifest.json", |_: &()| Some(true), async {
        write_index(&options.out, &old, &pulled, &options.platform)
    })
    .await?;
    run.finish();
    Ok(Pulled {
        out: options.out.clone(),
        cache: cache_dir,
        platform: options.platform.to_string(),
        blobs_fetched: counts.fetched,
        bytes_received: client
            .stats
            .blob_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        blobs_cached: counts.cached,
        blobs_refetched: counts.refetched,
        requests: client
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        images: pulled,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// (service, image).
type Wanted = (Option<String>, String);

/// (label for the events, [(service, image)]), without repeats.
fn wanted_images(data: &DataDir, images: Images<'_>) -> Result<(String, Vec<Wanted>), OpsError> {
    match images {
        Images::List(list) => {
            let mut seen = BTreeSet::new();
            let wanted = list
                .iter()
                .filter(|i| seen.insert(i.to_string()))
                .map(|i| (None, i.clone()))
                .collect();
            Ok((format!("{} image(s)", list.len()), wanted))
        }
        Images::Environment(source) => {
            let label = match &source {
                Source::Environment(name) => name.to_string(),
                Source::File(path) => path.display().to_string(),
            };
            let (config, _) = render::load(data, source)?;
            let stack = stack::render(&config)
                .map_err(|e| OpsError::Refused(format!("cannot render the stack: {e}")))?;
            let mut seen = BTreeSet::new();
            let wanted = stack
                .services
                .iter()
                .filter(|s| seen.insert(s.image.clone()))
                .map(|s| (Some(s.name.as_str().to_string()), s.image.clone()))
                .collect();
            Ok((label, wanted))
        }
    }
}

/// The archive's file name: the service's, else the image's with `/`, `:`, `@` made `_`.
fn file_name(service: Option<&str>, image: &str) -> String {
    match service {
        Some(s) => format!("{s}.tar"),
        None => format!("{}.tar", image.replace(['/', ':', '@'], "_")),
    }
}

/// The name `docker load` tags the image with: the reference without its digest (an image
/// named by digest only is loaded untagged).
fn load_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    (last.contains(':') || !image.contains('@')).then_some(name)
}

async fn pull_one(
    client: &Client,
    cache: &BlobCache,
    old: &serde_json::Value,
    options: &PullOptions,
    service: Option<&str>,
    image: &str,
    counts: &mut Counts,
) -> Result<PulledImage, OciError> {
    let named = Reference::parse(image)?;
    let source = match &options.registry {
        Some(mirror) => named.on_registry(mirror),
        None => named,
    };
    events::note(format!("resolving {source} for {}", options.platform));
    let resolved = client.resolve(&source, &options.platform).await?;
    let manifest = &resolved.image;
    let file = file_name(service, image);
    let path = options.out.join(&file);
    let mut out = PulledImage {
        service: service.map(str::to_string),
        image: image.to_string(),
        source: source.to_string(),
        digest: resolved.digest.clone(),
        id: manifest.config.digest.clone(),
        file: file.clone(),
        bytes: 0,
        sha256: String::new(),
        layers: manifest.layers.len(),
        received: 0,
        written: false,
    };
    if let Some((bytes, sha256)) = unchanged(old, &out, &path)? {
        events::note(format!("{file} already holds {}", resolved.digest));
        (out.bytes, out.sha256) = (bytes, sha256);
        return Ok(out);
    }
    let blobs: Vec<_> = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .collect();
    let missing: u64 = blobs
        .iter()
        .filter(|d| {
            cache
                .path(&d.digest)
                .and_then(|p| std::fs::metadata(p).ok())
                .is_none_or(|m| m.len() != d.size)
        })
        .map(|d| d.size)
        .sum();
    let mut counter = ByteCounter::new(Some(missing));
    let mut paths = Vec::new();
    for d in &blobs {
        let fetched = client.blob(&source, d, cache, &mut counter).await?;
        if fetched.refetched {
            events::note(format!(
                "the cached {} was corrupted: fetched again",
                d.digest
            ));
        }
        counts.add(&fetched);
        out.received += fetched.received;
        paths.push(fetched.path);
    }
    counter.finish();
    cache.put(&resolved.digest, &resolved.bytes)?;
    events::note(format!("writing {file}"));
    let written = archive::write(
        &path,
        &ArchiveImage {
            tag: load_tag(image),
            manifest_digest: &resolved.digest,
            manifest_media_type: &resolved.media_type,
            manifest_bytes: &resolved.bytes,
            config: (&manifest.config.digest, &paths[0]),
            layers: manifest
                .layers
                .iter()
                .zip(&paths[1..])
                .map(|(d, p)| (d.digest.as_str(), p.as_path()))
                .collect(),
        },
    )?;
    (out.bytes, out.sha256, out.written) = (written.bytes, written.sha256, true);
    Ok(out)
}

/// (bytes, sha256) of the archive when the bundle's index already lists this image with the
/// same manifest digest and the file is intact.
fn unchanged(
    old: &serde_json::Value,
    now: &PulledImage,
    path: &Path,
) -> Result<Option<(u64, String)>, OciError> {
    let Some(entry) = old["images"].as_array().into_iter().flatten().find(|e| {
        e["image"] == now.image.as_str()
            && e["file"] == now.file.as_str()
            && e["digest"] == now.digest.as_str()
            && e["id"] == now.id.as_str()
    }) else {
        return Ok(None);
    };
    let (Some(bytes), Some(sha256)) = (entry["bytes"].as_u64(), entry["sha256"].as_str()) else {
        return Ok(None);
    };
    if std::fs::metadata(path).map(|m| m.len()).ok() != Some(bytes) {
        return Ok(None);
    }
    let actual = blob_cache::hash_file(path)?;
    Ok((actual == format!("sha256:{sha256}")).then(|| (bytes, sha256.to_string())))
}

fn read_index(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Writes the bundle's `manifest.json`: the format build-offline-bundle.sh writes (`images`:
/// service, image, id, file, bytes, sha256, kind), with `kind: "pulled"` and the source,
/// manifest digest and platform added. Entries of other images whose files remain are kept.
fn write_index(
    dir: &Path,
    old: &serde_json::Value,
    pulled: &[PulledImage],
    platform: &Platform,
) -> Result<(), OciError> {
    let now: BTreeSet<&str> = pulled.iter().map(|p| p.image.as_str()).collect();
    let mut images: Vec<serde_json::Value> = old["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let file = e["file"].as_str().unwrap_or_default();
            !now.contains(e["image"].as_str().unwrap_or_default())
                && !file.is_empty()
                && !file.contains('/')
                && dir.join(file).is_file()
        })
        .cloned()
        .collect();
    for p in pulled {
        let mut entry = serde_json::json!({
            "image": p.image, "id": p.id, "file": p.file, "bytes": p.bytes, "sha256": p.sha256,
            "kind": "pulled", "source": p.source, "digest": p.digest, "platform": platform.to_string(),
        });
        if let Some(service) = &p.service {
            entry["service"] = service.as_str().into();
        }
        images.push(entry);
    }
    let index = serde_json::json!({
        "format": 1,
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "pulled_with": concat!("torrust-tracker-deployer ", env!("CARGO_PKG_VERSION")),
        "load": "docker load -i FILE",
        "images": images,
    });
    let path = dir.join("manifest.json");
    let tmp = dir.join(".manifest.json.tmp");
    let text = serde_json::to_string_pretty(&index).expect("JSON") + "\n";
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(OciError::io("cannot write", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags() {
        assert_eq!(
            file_name(Some("tracker"), "torrust/tracker:3.0.0"),
            "tracker.tar"
        );
        assert_eq!(
            file_name(None, "127.0.0.1:5000/a/b:1"),
            "127.0.0.1_5000_a_b_1.tar"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(load_tag("mysql:8.4"), Some("mysql:8.4"));
        assert_eq!(load_tag(&format!("mysql:8.4@{d}")), Some("mysql:8.4"));
        assert_eq!(load_tag(&format!("mysql@{d}")), None);
        assert_eq!(load_tag("localhost:5000/app"), Some("localhost:5000/app"));
    }

    #[test]
    fn the_index_keeps_other_images_and_replaces_pulled_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mysql.tar.gz"), "x").unwrap();
        let old = serde_json::json!({"format": 1, "images": [
            {"service": "mysql", "image": "mysql:8.4", "id": "sha256:1", "file": "mysql.tar.gz", "bytes": 1, "sha256": "s", "kind": "stand-in"},
            {"service": "tracker", "image": "torrust/tracker:3.0.0", "id": "sha256:2", "file": "tracker.tar.gz", "bytes": 1, "sha256": "s", "kind": "real"},
            {"image": "gone:1", "id": "sha256:3", "file": "gone.tar", "bytes": 1, "sha256": "s"}
        ]});
        let p = PulledImage {
            service: Some("tracker".into()),
            image: "torrust/tracker:3.0.0".into(),
            source: "127.0.0.1:5000/torrust/tracker:3.0.0".into(),
            digest: "sha256:m".into(),
            id: "sha256:c".into(),
            file: "tracker.tar".into(),
            bytes: 10,
            sha256: "h".into(),
            layers: 1,
            received: 10,
            written: true,
        };
        write_index(dir.path(), &old, &[p], &Platform::linux_amd64()).unwrap();
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("manifest.json")).unwrap(),
        )
        .unwrap();
        let images = v["images"].as_array().unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images[0]["image"], "mysql:8.4");
        assert_eq!(images[1]["kind"], "pulled");
        assert_eq!(images[1]["platform"], "linux/amd64");
        assert_eq!(images[1]["service"], "tracker");
    }
}
