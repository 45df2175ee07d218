//! Where LXD's Unix socket is.

use std::path::{Path, PathBuf};

/// The places a local LXD (or Incus) listens, in the order we look.
pub fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    if let Some(path) = configured {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("LXD_DIR") {
        out.push(PathBuf::from(dir).join("unix.socket"));
    }
    out.push(PathBuf::from("/var/snap/lxd/common/lxd/unix.socket"));
    out.push(PathBuf::from("/var/lib/lxd/unix.socket"));
    out.push(PathBuf::from("/var/lib/incus/unix.socket"));
    out
}

/// The first candidate that exists, or an error naming every place looked at.
pub fn find_socket(configured: Option<&Path>) -> Result<PathBuf, super::LxdError> {
    let candidates = candidates(configured);
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or(super::LxdError::NoSocket {
            looked: candidates,
            configured: configured.is_some(),
        })
}
