//! `release`: put the tracker stack on the host — storage directories with their owners, every
//! file of the stack model in one tar stream, and the images (pulled, or loaded from an offline
//! bundle) — without starting anything. `run` starts it.
//!
//! A second release with no configuration change changes nothing: files are compared by hash
//! on the host, directories by stat, images by ID. What a change requires (services to restart)
//! is recorded in the state for `run`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::StepReport;
use super::host::{configured_host, connect};
use super::steps::StepRun;
use crate::ssh::{Change, ExecOptions, Session, UploadFile};
use crate::ssh::{SshError, shell_quote};
use crate::stack::{self, RenderedStack, StackError};
use crate::state::{DataDir, EnvironmentState, Lifecycle};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("{0}")]
    Bundle(String),
    #[error("{0}")]
    Images(String),
}

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    /// `created`, `updated` or `unchanged`.
    pub change: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Released {
    pub name: String,
    pub host: String,
    pub changed: bool,
    pub steps: Vec<StepReport>,
    pub files: Vec<FileReport>,
    /// Services `run` will restart to apply changed mounted files.
    pub pending_restarts: Vec<String>,
    pub elapsed_ms: u64,
}

pub async fn release(data: &DataDir, env: &str, lock_wait: Duration) -> Result<Released, OpsError> {
    let started = Instant::now();
    let _lock = data.lock(env, "release", lock_wait)?;
    let mut state = data.load(env)?;
    let (host, _setup) = configured_host(&state, "release")?;
    let rendered = stack::render(&state.config).map_err(|e| {
        OpsError::Failed(format!(
            "cannot build the stack from the environment's configuration: {e}"
        ))
    })?;
    let bundle = state
        .config
        .images
        .as_ref()
        .and_then(|i| i.offline_bundle.clone());

    let mut run = StepRun::begin(data, &mut state, "release")?;
    let session = run
        .step(&mut state, "connect", async |s| {
            connect(data, s, &host).await
        })
        .await?;
    let result = release_steps(&mut run, &mut state, &session, &rendered, bundle.as_deref()).await;
    session.close().await;
    let (steps, files, restarts) = result?;

    // Restarts still owed by an earlier release that `run` has not applied stay owed.
    let mut pending: BTreeSet<String> = state.pending_restarts.iter().cloned().collect();
    pending.extend(restarts);
    state.pending_restarts = pending.into_iter().collect();
    let lifecycle = (state.lifecycle < Lifecycle::Released).then_some(Lifecycle::Released);
    run.finish(&mut state, lifecycle)?;
    Ok(Released {
        name: env.to_string(),
        host: format!("{}:{}", host.ip, host.ssh_port),
        changed: steps.iter().any(|s| s.changed),
        steps,
        files,
        pending_restarts: state.pending_restarts.clone(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

type ReleaseOutcome = (Vec<StepReport>, Vec<FileReport>, Vec<String>);

async fn release_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    session: &Session,
    rendered: &RenderedStack,
    bundle: Option<&Path>,
) -> Result<ReleaseOutcome, OpsError> {
    let mut steps = Vec::new();

    let created = run
        .step(state, "storage directories", async |_s| {
            ensure_dirs(session, rendered).await
        })
        .await?;
    steps.push(StepReport {
        step: "storage directories".into(),
        changed: !created.is_empty(),
        detail: if created.is_empty() {
            format!("{} directories in place", rendered.dirs.len())
        } else {
            format!("fixed {}", created.join(", "))
        },
    });

    let changes = run
        .step(state, "upload files", async |_s| {
            let files: Vec<UploadFile> = rendered.files.iter().map(upload_file).collect();
            session.upload(&files).await
        })
        .await?;
    let files: Vec<FileReport> = changes
        .iter()
        .map(|c| FileReport {
            path: PathBuf::from(&c.remote_path),
            change: match c.change {
                Change::Created => "created",
                Change::Updated => "updated",
                Change::Unchanged => "unchanged",
            },
        })
        .collect();
    let changed_paths: Vec<&Path> = files
        .iter()
        .filter(|f| f.change != "unchanged")
        .map(|f| f.path.as_path())
        .collect();
    let restarts: Vec<String> = rendered
        .restarts_for(changed_paths.iter().copied())
        .into_iter()
        .map(|s| s.as_str().to_string())
        .collect();
    steps.push(StepReport {
        step: "upload files".into(),
        changed: !changed_paths.is_empty(),
        detail: if changed_paths.is_empty() {
            format!("{} files, all unchanged", files.len())
        } else {
            format!(
                "{} of {} files changed (one tar stream)",
                changed_paths.len(),
                files.len()
            )
        },
    });

    let (loaded, detail) = run
        .step(state, "images", async |_s| {
            ensure_images(session, rendered, bundle).await
        })
        .await?;
    steps.push(StepReport {
        step: "images".into(),
        changed: loaded,
        detail,
    });
    Ok((steps, files, restarts))
}

fn upload_file(f: &stack::StackFile) -> UploadFile {
    let (uid, gid) = f.owner.unwrap_or((0, 0));
    UploadFile::new(f.path.to_string_lossy(), f.contents.clone(), f.mode)
        .owned_by(uid.to_string(), gid.to_string())
}

/// Creates the storage directories, or fixes their owner and mode. Returns those it touched.
async fn ensure_dirs(session: &Session, rendered: &RenderedStack) -> Result<Vec<String>, SshError> {
    let mut script = String::from("set -e\n");
    for d in &rendered.dirs {
        let p = shell_quote(&d.path.to_string_lossy());
        let want = format!("{:o} {}:{}", d.mode, d.uid, d.gid);
        script.push_str(&format!(
            "if [ \"$(stat -c '%a %u:%g' {p} 2>/dev/null)\" != '{want}' ]; then \
             install -d -m {:o} -o {} -g {} {p}; chmod {:o} {p}; echo {p}; fi\n",
            d.mode, d.uid, d.gid, d.mode
        ));
    }
    let out = session.sudo(&script).await?.check()?;
    Ok(out
        .stdout_str()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// One archive of an offline bundle: the images it holds, by tag, with their IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleArchive {
    pub path: PathBuf,
    /// tag -> image ID (`sha256:...`).
    pub images: BTreeMap<String, String>,
}

/// Reads the archives of an offline bundle directory (`docker save` output, `.tar` or
/// `.tar.gz`), each with the tags and image IDs its `manifest.json` lists.
pub fn read_bundle(dir: &Path) -> Result<Vec<BundleArchive>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read the offline bundle {}: {e}.\n  Fix `images.offline_bundle` in the environment file",
            dir.display()
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            n.ends_with(".tar") || n.ends_with(".tar.gz") || n.ends_with(".tgz")
        })
        .collect();
    paths.sort();
    // A bundle index (`manifest.json` with `images: [{file, image, id, bytes}]`, as
    // provisioning/images/build-offline-bundle.sh writes) saves decompressing every archive to
    // find its own manifest. It is trusted only for files whose size it states correctly.
    let index = read_bundle_index(dir);
    let mut out = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let size = std::fs::metadata(&path).map(|m| m.len()).ok();
        let images = match index.get(&name) {
            Some((bytes, images)) if Some(*bytes) == size => images.clone(),
            _ => archive_images(&path)?,
        };
        out.push(BundleArchive { path, images });
    }
    Ok(out)
}

/// file name -> (size, tag -> image ID), from the bundle's `manifest.json`, if any.
fn read_bundle_index(dir: &Path) -> BTreeMap<String, (u64, BTreeMap<String, String>)> {
    let mut out: BTreeMap<String, (u64, BTreeMap<String, String>)> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        return out;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return out;
    };
    for item in v["images"].as_array().into_iter().flatten() {
        let (Some(file), Some(image), Some(id), Some(bytes)) = (
            item["file"].as_str(),
            item["image"].as_str(),
            item["id"].as_str(),
            item["bytes"].as_u64(),
        ) else {
            continue;
        };
        if !id.starts_with("sha256:") {
            continue;
        }
        let entry = out
            .entry(file.to_string())
            .or_insert((bytes, BTreeMap::new()));
        entry.1.insert(image.to_string(), id.to_string());
    }
    out
}

fn archive_images(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let bad = |why: String| format!("{} is not a `docker save` archive: {why}", path.display());
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let gz = path.to_string_lossy().ends_with("gz");
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let is_manifest = entry
            .path()
            .map(|p| p.as_os_str() == "manifest.json")
            .unwrap_or(false);
        if !is_manifest {
            continue;
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| bad(e.to_string()))?;
        return parse_manifest(&text).map_err(bad);
    }
    Err(bad("no manifest.json".into()))
}

/// tag -> image ID from a `docker save` manifest (Docker's `<id>.json` and OCI's
/// `blobs/sha256/<id>` config paths).
pub fn parse_manifest(text: &str) -> Result<BTreeMap<String, String>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for item in v.as_array().ok_or("manifest.json is not a list")? {
        let config = item["Config"].as_str().ok_or("an entry without Config")?;
        let id = config
            .rsplit('/')
            .next()
            .unwrap_or(config)
            .trim_end_matches(".json");
        if id.len() != 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("unexpected Config {config:?}"));
        }
        for tag in item["RepoTags"].as_array().into_iter().flatten() {
            if let Some(tag) = tag.as_str() {
                out.insert(tag.to_string(), format!("sha256:{id}"));
            }
        }
    }
    Ok(out)
}

/// The image IDs the host has for `refs` (missing ones absent).
async fn host_image_ids(
    session: &Session,
    refs: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, SshError> {
    let mut script = String::new();
    for r in refs {
        let q = shell_quote(r);
        script.push_str(&format!(
            "printf '%s %s\\n' {q} \"$(docker image inspect --format '{{{{.Id}}}}' {q} 2>/dev/null || echo missing)\"\n"
        ));
    }
    let out = session.sudo(&script).await?.check()?;
    Ok(out
        .stdout_str()
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(_, id)| id.starts_with("sha256:"))
        .map(|(r, id)| (r.to_string(), id.to_string()))
        .collect())
}

/// Makes every image the compose file uses present on the host: loaded from the offline
/// bundle when there is one (only archives whose images the host lacks), else pulled.
async fn ensure_images(
    session: &Session,
    rendered: &RenderedStack,
    bundle: Option<&Path>,
) -> Result<(bool, String), ReleaseError> {
    let wanted: BTreeSet<String> = rendered.images.iter().cloned().collect();
    let mut changed = false;
    let mut notes = Vec::new();
    if let Some(dir) = bundle {
        let archives = read_bundle(dir).map_err(ReleaseError::Bundle)?;
        let all_refs: BTreeSet<String> = archives
            .iter()
            .flat_map(|a| a.images.keys().cloned())
            .chain(wanted.iter().cloned())
            .collect();
        let have = host_image_ids(session, &all_refs).await?;
        for a in &archives {
            // Only archives that hold an image the stack uses, which the host lacks or has
            // with another ID.
            let needed = a
                .images
                .iter()
                .any(|(tag, id)| wanted.contains(tag) && have.get(tag) != Some(id));
            if !needed {
                continue;
            }
            let t = Instant::now();
            let file = tokio::fs::File::open(&a.path)
                .await
                .map_err(|e| ReleaseError::Bundle(format!("{}: {e}", a.path.display())))?;
            let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
            tracing::info!(
                "uploading {} ({:.1} MB) into `docker load`",
                a.path.display(),
                size as f64 / 1e6
            );
            let out = session
                .sudo_with("docker load", ExecOptions::new().stdin_reader(file))
                .await?;
            if !out.success() {
                return Err(ReleaseError::Images(format!(
                    "`docker load` of {} failed: {}.\n  Check the archive (`docker load -i` it on \
                     another machine) or rebuild the bundle",
                    a.path.display(),
                    out.stderr_str().trim()
                )));
            }
            changed = true;
            notes.push(format!(
                "loaded {} ({:.1} s)",
                a.path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                t.elapsed().as_secs_f64()
            ));
        }
    } else {
        let have = host_image_ids(session, &wanted).await?;
        for image in wanted.iter().filter(|i| !have.contains_key(*i)) {
            let out = session
                .sudo(&format!("docker pull -q {}", shell_quote(image)))
                .await?;
            if !out.success() {
                return Err(ReleaseError::Images(format!(
                    "cannot pull {image}: {}.\n  The host needs access to the registry; on an \
                     air-gapped host, set `images.offline_bundle` to a directory of `docker save` \
                     archives",
                    out.stderr_str().trim()
                )));
            }
            changed = true;
            notes.push(format!("pulled {image}"));
        }
    }
    let have = host_image_ids(session, &wanted).await?;
    let missing: Vec<&String> = wanted.iter().filter(|i| !have.contains_key(*i)).collect();
    if !missing.is_empty() {
        return Err(ReleaseError::Images(format!(
            "the host lacks {} image(s) the compose file uses: {}.\n  Add their `docker save` \
             archives to the offline bundle ({}), or set `images.*` to tags the bundle holds",
            missing.len(),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            bundle
                .map(|b| b.display().to_string())
                .unwrap_or_else(|| "none configured".into())
        )));
    }
    let detail = if notes.is_empty() {
        format!("all {} images present", wanted.len())
    } else {
        format!("{}; all {} images present", notes.join(", "), wanted.len())
    };
    Ok((changed, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_of_docker_and_oci_saves() {
        let id = "a".repeat(64);
        let docker = format!(
            r#"[{{"Config":"{id}.json","RepoTags":["mysql:8.4"],"Layers":["x/layer.tar"]}}]"#
        );
        let m = parse_manifest(&docker).unwrap();
        assert_eq!(m["mysql:8.4"], format!("sha256:{id}"));
        let oci =
            format!(r#"[{{"Config":"blobs/sha256/{id}","RepoTags":["a:1","b:2"],"Layers":[]}}]"#);
        let m = parse_manifest(&oci).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["b:2"], format!("sha256:{id}"));
        assert!(parse_manifest(r#"[{"Config":"nope.json","RepoTags":[]}]"#).is_err());
        assert!(parse_manifest("{}").is_err());
    }

    #[test]
    fn a_bundle_is_read_from_real_tar_archives() {
        let dir = tempfile::tempdir().unwrap();
        let id = "b".repeat(64);
        let manifest = format!(r#"[{{"Config":"{id}.json","RepoTags":["x/y:1"]}}]"#);
        for (name, gz) in [("one.tar", false), ("two.tar.gz", true)] {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            let write = |w: &mut dyn std::io::Write| {
                let mut b = tar::Builder::new(w);
                let mut h = tar::Header::new_gnu();
                h.set_size(manifest.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, "manifest.json", manifest.as_bytes())
                    .unwrap();
                b.finish().unwrap();
            };
            if gz {
                let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
                write(&mut enc);
                enc.finish().unwrap();
            } else {
                let mut f = file;
                write(&mut f);
            }
        }
        std::fs::write(dir.path().join("README"), "not an archive").unwrap();
        let archives = read_bundle(dir.path()).unwrap();
        assert_eq!(archives.len(), 2);
        assert!(
            archives
                .iter()
                .all(|a| a.images["x/y:1"] == format!("sha256:{id}"))
        );
        // An index entry with the right size is used instead of the archive's own manifest;
        // a wrong size is ignored.
        let size = std::fs::metadata(dir.path().join("one.tar")).unwrap().len();
        let other = format!("sha256:{}", "c".repeat(64));
        let index = serde_json::json!({ "images": [
            { "file": "one.tar", "image": "x/y:1", "id": other, "bytes": size },
            { "file": "two.tar.gz", "image": "x/y:1", "id": other, "bytes": 1 }
        ]});
        std::fs::write(dir.path().join("manifest.json"), index.to_string()).unwrap();
        let archives = read_bundle(dir.path()).unwrap();
        assert_eq!(archives[0].images["x/y:1"], other);
        assert_eq!(archives[1].images["x/y:1"], format!("sha256:{id}"));
        std::fs::write(dir.path().join("bad.tar"), "garbage").unwrap();
        assert!(read_bundle(dir.path()).is_err());
    }
}
