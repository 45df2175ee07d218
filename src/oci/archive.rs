//! The `docker load` archive of a pulled image: Docker's `manifest.json` (what every engine
//! loads, Docker 20.10 included) pointing into an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), the shape newer engines write. The blobs go in as pulled: layers stay
//! gzip-compressed (`docker load` accepts them), and the config blob's digest is the image ID.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::OciError;

/// One image to write.
pub struct ArchiveImage<'a> {
    /// The name the image is loaded as (`torrust/tracker:3.0.0`); `None`: untagged.
    pub tag: Option<&'a str>,
    pub manifest_digest: &'a str,
    pub manifest_media_type: &'a str,
    pub manifest_bytes: &'a [u8],
    /// Digest and cached file of the config blob, then of each layer, base first.
    pub config: (&'a str, &'a Path),
    pub layers: Vec<(&'a str, &'a Path)>,
}

/// Size and `sha256:` digest of the archive written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    pub sha256: String,
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Writes `image` as an uncompressed tar at `path` (through `path.partial`, renamed at the end).
pub fn write(path: &Path, image: &ArchiveImage<'_>) -> Result<Written, OciError> {
    let partial = path.with_extension("partial");
    let written =
        write_to(&partial, image).map_err(OciError::io("cannot write the archive", path))?;
    std::fs::rename(&partial, path).map_err(OciError::io("cannot write the archive", path))?;
    Ok(written)
}

fn write_to(path: &Path, image: &ArchiveImage<'_>) -> std::io::Result<Written> {
    let file = std::fs::File::create(path)?;
    let hashing = Hashing {
        inner: std::io::BufWriter::new(file),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut tar = tar::Builder::new(hashing);
    let add = |tar: &mut tar::Builder<Hashing<_>>, name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes)
    };
    let docker_manifest = serde_json::json!([{
        "Config": blob_name(image.config.0),
        "RepoTags": image.tag.map(|t| vec![t]),
        "Layers": image.layers.iter().map(|(d, _)| blob_name(d)).collect::<Vec<_>>(),
    }]);
    add(
        &mut tar,
        "manifest.json",
        docker_manifest.to_string().as_bytes(),
    )?;
    add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut annotations = serde_json::Map::new();
    if let Some(tag) = image.tag {
        annotations.insert("io.containerd.image.name".into(), tag.into());
        let short = tag.rsplit_once(':').map(|(_, t)| t).unwrap_or(tag);
        annotations.insert("org.opencontainers.image.ref.name".into(), short.into());
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::manifest::OCI_INDEX,
        "manifests": [{
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest,
            "size": image.manifest_bytes.len(),
            "annotations": annotations,
        }]
    });
    add(&mut tar, "index.json", index.to_string().as_bytes())?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, "blobs/sha256/", std::io::empty())?;
    add(
        &mut tar,
        &blob_name(image.manifest_digest),
        image.manifest_bytes,
    )?;
    let mut seen = std::collections::BTreeSet::new();
    for (digest, file) in std::iter::once(&image.config).chain(&image.layers) {
        // A layer may repeat (the same empty layer twice): one copy is enough.
        if !seen.insert(*digest) {
            continue;
        }
        let mut f = std::fs::File::open(file)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(f.metadata()?.len());
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, blob_name(digest), &mut f)?;
    }
    let mut hashing = tar.into_inner()?;
    hashing.flush()?;
    hashing.inner.get_ref().sync_all()?;
    Ok(Written {
        bytes: hashing.bytes,
        sha256: format!("{:x}", hashing.hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::sha256_digest;

    #[test]
    fn the_archive_is_what_the_bundle_reader_and_docker_load_expect() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = b"not really gzip";
        let (cd, ld) = (sha256_digest(config), sha256_digest(layer));
        let (cp, lp) = (dir.path().join("c"), dir.path().join("l"));
        std::fs::write(&cp, config).unwrap();
        std::fs::write(&lp, layer).unwrap();
        let manifest = b"{}";
        let md = sha256_digest(manifest);
        let out = dir.path().join("x.tar");
        let w = write(
            &out,
            &ArchiveImage {
                tag: Some("torrust/tracker:3.0.0"),
                manifest_digest: &md,
                manifest_media_type: crate::oci::manifest::DOCKER_MANIFEST,
                manifest_bytes: manifest,
                config: (&cd, &cp),
                layers: vec![(&ld, &lp), (&ld, &lp)],
            },
        )
        .unwrap();
        assert_eq!(w.bytes, std::fs::metadata(&out).unwrap().len());
        assert_eq!(
            format!("sha256:{}", w.sha256),
            crate::oci::cache::hash_file(&out).unwrap()
        );
        let bundle = crate::tasks::bundle::read_bundle(dir.path()).unwrap();
        assert_eq!(bundle[0].images["torrust/tracker:3.0.0"], cd);
        let mut names = Vec::new();
        let mut a = tar::Archive::new(std::fs::File::open(&out).unwrap());
        for e in a.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().to_string());
        }
        assert_eq!(names.len(), 7, "{names:?}");
        assert!(names.contains(&format!("blobs/sha256/{}", &ld[7..])));
        assert!(!out.with_extension("partial").exists());
    }
}
