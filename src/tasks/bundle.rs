//! The offline image bundle: a directory of `docker save` archives (`.tar`, `.tar.gz`), read on
//! this machine to know which images each archive holds (tag and image ID), so that release
//! streams only the archives whose images the host lacks. Nothing here touches a host.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

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
