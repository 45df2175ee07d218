//! Blobs kept by digest on this machine (`<dir>/blobs/sha256/<hex>`), so that pulling again
//! fetches only what changed. A blob is used only after its bytes hash to its digest; one that
//! does not is deleted and fetched again. A download in progress is `<hex>.partial`, continued
//! with a `Range` request by the next pull.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{OciError, sha256_hex};

#[derive(Debug, Clone)]
pub struct BlobCache {
    dir: PathBuf,
}

/// What the cache holds of a blob.
#[derive(Debug, PartialEq, Eq)]
pub enum Cached {
    /// Present, with the right size and digest.
    Valid(PathBuf),
    Missing,
    /// Present but wrong (size or digest): deleted.
    Corrupted,
}

impl BlobCache {
    /// Opens (creating) the cache in `dir`, readable by this user only.
    pub fn open(dir: &Path) -> Result<Self, OciError> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(OciError::io("cannot create the cache", &blobs))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` is kept. `None` for a digest that is not `sha256:<64 hex>`.
    pub fn path(&self, digest: &str) -> Option<PathBuf> {
        sha256_hex(digest).map(|hex| self.dir.join("blobs").join("sha256").join(hex))
    }

    /// Where a download of `digest` in progress is kept.
    pub fn partial_path(&self, digest: &str) -> Option<PathBuf> {
        self.path(digest).map(|p| p.with_extension("partial"))
    }

    /// Checks the cached copy of `digest` (`size` bytes): size first, then the hash of every byte.
    pub fn check(&self, digest: &str, size: u64) -> Result<Cached, OciError> {
        let Some(path) = self.path(digest) else {
            return Ok(Cached::Missing);
        };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cached::Missing),
            Err(e) => return Err(OciError::io("cannot inspect", &path)(e)),
        };
        if len == size && hash_file(&path)? == digest {
            return Ok(Cached::Valid(path));
        }
        std::fs::remove_file(&path).map_err(OciError::io("cannot delete the corrupted", &path))?;
        Ok(Cached::Corrupted)
    }

    /// Stores a small blob held in memory (a manifest, a config) whose digest was checked.
    pub fn put(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf, OciError> {
        let path = self.path(digest).ok_or_else(|| OciError::Protocol {
            registry: String::new(),
            what: "a blob".into(),
            detail: format!("an unsupported digest {digest:?}"),
        })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(OciError::io("cannot write", &path))?;
        Ok(path)
    }
}

/// `sha256:<hex>` of a file's bytes.
pub fn hash_file(path: &Path) -> Result<String, OciError> {
    let mut hasher = Sha256::new();
    update_from_file(&mut hasher, path)?;
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// Feeds a file's bytes to `hasher`.
pub fn update_from_file(hasher: &mut Sha256, path: &Path) -> Result<(), OciError> {
    let mut file = std::fs::File::open(path).map_err(OciError::io("cannot read", path))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(OciError::io("cannot read", path))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_checked_and_bad_copies_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let data = b"layer bytes";
        let digest = super::super::sha256_digest(data);
        assert_eq!(cache.check(&digest, 11).unwrap(), Cached::Missing);
        let path = cache.put(&digest, data).unwrap();
        assert_eq!(
            cache.check(&digest, 11).unwrap(),
            Cached::Valid(path.clone())
        );
        // The wrong size, then the right size with other bytes: both deleted.
        assert_eq!(cache.check(&digest, 12).unwrap(), Cached::Corrupted);
        assert!(!path.exists());
        std::fs::write(&path, b"LAYER BYTES").unwrap();
        assert_eq!(cache.check(&digest, 11).unwrap(), Cached::Corrupted);
        assert!(!path.exists());
        assert!(cache.path("sha256:../x").is_none());
        assert!(
            cache
                .partial_path(&digest)
                .unwrap()
                .to_string_lossy()
                .ends_with(".partial")
        );
    }
}
