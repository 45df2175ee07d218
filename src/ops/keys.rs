//! SSH key pairs generated for environments whose file names none.

use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};

use crate::state::fsutil;

/// Writes a new ed25519 key pair at `private_path` (0600) and `<private_path>.pub` (0644),
/// unless a private key is already there (then it is kept: re-running never rotates keys).
/// Returns the public key's SHA256 fingerprint.
pub fn ensure_ed25519(private_path: &Path, comment: &str) -> std::io::Result<String> {
    let public_path = private_path.with_extension("pub");
    if private_path.exists() {
        let key = russh::keys::load_secret_key(private_path, None)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", private_path.display())))?;
        if !public_path.exists() {
            write_public(&key, &public_path)?;
        }
        return Ok(key.public_key().fingerprint(HashAlg::Sha256).to_string());
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(std::io::Error::other)?;
    if let Some(dir) = private_path.parent() {
        fsutil::create_private_dir(dir)?;
    }
    // Public key first: a crash in between leaves no private key, so the next run regenerates.
    write_public(&key, &public_path)?;
    fsutil::write_atomic(private_path, pem.as_bytes(), 0o600)?;
    Ok(key.public_key().fingerprint(HashAlg::Sha256).to_string())
}

fn write_public(key: &PrivateKey, path: &Path) -> std::io::Result<()> {
    let line = key
        .public_key()
        .to_openssh()
        .map_err(std::io::Error::other)?;
    fsutil::write_atomic(path, format!("{line}\n").as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_and_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssh/id_ed25519");
        let first = ensure_ed25519(&path, "test").unwrap();
        let second = ensure_ed25519(&path, "test").unwrap();
        assert_eq!(first, second);
        assert!(first.starts_with("SHA256:"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 "));
        // The key loads as an OpenSSH private key.
        russh::keys::load_secret_key(&path, None).unwrap();
    }
}
