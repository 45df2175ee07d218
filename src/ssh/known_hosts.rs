//! Host key pinning in an OpenSSH-format `known_hosts` file.
//!
//! The first connection to a host pins its key (trust on first use); later connections refuse
//! any other key with [`SshError::HostKeyChanged`]. Entries are written unhashed, as
//! `host keytype base64` for port 22 and `[host]:port keytype base64` otherwise. Reading accepts
//! comma-separated host lists; hashed (`|1|`) entries, wildcards and `@` markers are ignored.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::{HashAlg, PublicKey};

use super::SshError;

/// Serialises this process's writes to known_hosts files.
static FILE_LOCK: Mutex<()> = Mutex::new(());

/// A key pinned for a host.
#[derive(Debug, Clone)]
pub struct PinnedKey {
    /// 1-based line number in the file.
    pub line: usize,
    /// The pinned key.
    pub key: PublicKey,
}

impl PinnedKey {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }
}

/// The SHA256 fingerprint of a public key, `SHA256:<base64>`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The host field of a known_hosts line for `host`, `port`.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn kh_err(path: &Path, detail: impl std::fmt::Display) -> SshError {
    SshError::KnownHosts {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn line_matches(hosts_field: &str, host: &str, port: u16) -> bool {
    let want = host_pattern(host, port);
    let alt = (port == 22).then(|| format!("[{host}]:22"));
    hosts_field
        .split(',')
        .any(|p| p == want || alt.as_deref() == Some(p))
}

/// Splits a line into (hosts, keytype, base64) when it is a plain entry.
fn entry_fields(line: &str) -> Option<(&str, &str, &str)> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with('@') {
        return None;
    }
    let mut it = t.split_whitespace();
    Some((it.next()?, it.next()?, it.next()?))
}

fn read_file(path: &Path) -> Result<Option<String>, SshError> {
    let mut s = String::new();
    match fs::File::open(path) {
        Ok(mut f) => {
            f.read_to_string(&mut s)
                .map_err(|e| kh_err(path, format!("cannot read: {e}")))?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(kh_err(path, format!("cannot open: {e}"))),
    }
}

/// The keys pinned for `host`:`port` in `known_hosts` (none if the file does not exist).
pub fn pinned_keys(known_hosts: &Path, host: &str, port: u16) -> Result<Vec<PinnedKey>, SshError> {
    let Some(text) = read_file(known_hosts)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((hosts, _kind, b64)) = entry_fields(line) else {
            continue;
        };
        if !line_matches(hosts, host, port) {
            continue;
        }
        match russh::keys::parse_public_key_base64(b64) {
            Ok(key) => out.push(PinnedKey { line: i + 1, key }),
            Err(e) => tracing::warn!(
                target: "ssh",
                "ignoring unparseable key on line {} of {}: {e}",
                i + 1,
                known_hosts.display()
            ),
        }
    }
    Ok(out)
}

/// The SHA256 fingerprint of the key pinned for `host`:`port`, if any (the first one when several
/// are pinned).
pub fn pinned_fingerprint(
    known_hosts: &Path,
    host: &str,
    port: u16,
) -> Result<Option<String>, SshError> {
    Ok(pinned_keys(known_hosts, host, port)?
        .first()
        .map(PinnedKey::fingerprint))
}

/// Removes every line for `host`:`port` from `known_hosts` (atomically: temp file, then rename).
/// Returns how many lines were removed; a missing file removes nothing.
pub fn forget_host(known_hosts: &Path, host: &str, port: u16) -> Result<usize, SshError> {
    let _guard = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let Some(text) = read_file(known_hosts)? else {
        return Ok(0);
    };
    let mut kept = String::with_capacity(text.len());
    let mut removed = 0;
    for line in text.lines() {
        if entry_fields(line).is_some_and(|(h, _, _)| line_matches(h, host, port)) {
            removed += 1;
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if removed == 0 {
        return Ok(0);
    }
    let dir = known_hosts
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp.{}",
        known_hosts
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("known_hosts"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(kept.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, known_hosts)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        kh_err(known_hosts, format!("cannot rewrite: {e}"))
    })?;
    Ok(removed)
}

/// Appends a pin for `host`:`port`. Creates the parent directory (0700) and the file (0600).
#[cfg(test)]
fn pin(known_hosts: &Path, host: &str, port: u16, key: &PublicKey) -> Result<(), SshError> {
    let _guard = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    pin_locked(known_hosts, host, port, key)
}

fn pin_locked(known_hosts: &Path, host: &str, port: u16, key: &PublicKey) -> Result<(), SshError> {
    if let Some(dir) = known_hosts.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| kh_err(known_hosts, format!("cannot create its directory: {e}")))?;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(known_hosts)
        .map_err(|e| kh_err(known_hosts, format!("cannot open for writing: {e}")))?;
    let mut existing = Vec::new();
    f.read_to_end(&mut existing)
        .map_err(|e| kh_err(known_hosts, format!("cannot read: {e}")))?;
    let b64 = key
        .to_openssh()
        .map_err(|e| kh_err(known_hosts, format!("cannot encode key: {e}")))?;
    // `to_openssh` gives `keytype base64 [comment]`; keep the first two fields.
    let mut parts = b64.split_whitespace();
    let (kind, data) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut line = String::new();
    if existing.last().is_some_and(|b| *b != b'\n') {
        line.push('\n');
    }
    line.push_str(&format!("{} {kind} {data}\n", host_pattern(host, port)));
    f.write_all(line.as_bytes())
        .map_err(|e| kh_err(known_hosts, format!("cannot write: {e}")))?;
    Ok(())
}

/// The result of checking a presented host key against the file.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The key is pinned.
    Known,
    /// Nothing is pinned for the host.
    Unknown,
    /// Nothing was pinned for the host; now the presented key is.
    Pinned,
    /// Another key is pinned.
    Changed {
        line: usize,
        pinned_fingerprint: String,
    },
}

/// Pins `key` as the only key of `host`:`port` (any other pin for it goes): for a host whose
/// key was made here, before the first connection to it.
pub fn pin_only(
    known_hosts: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<(), SshError> {
    if pinned_keys(known_hosts, host, port)?
        .iter()
        .all(|p| p.key.key_data() == key.key_data())
        && !pinned_keys(known_hosts, host, port)?.is_empty()
    {
        return Ok(());
    }
    forget_host(known_hosts, host, port)?;
    let _guard = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    pin_locked(known_hosts, host, port, key)
}

/// Checks the presented key and pins it when the host has no pin yet, as one step (no duplicate
/// pins from concurrent first connections in this process).
pub(crate) fn check_and_pin(
    known_hosts: &Path,
    host: &str,
    port: u16,
    presented: &PublicKey,
) -> Result<Verdict, SshError> {
    let _guard = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match verify(known_hosts, host, port, presented)? {
        Verdict::Unknown => {
            pin_locked(known_hosts, host, port, presented)?;
            Ok(Verdict::Pinned)
        }
        v => Ok(v),
    }
}

pub(crate) fn verify(
    known_hosts: &Path,
    host: &str,
    port: u16,
    presented: &PublicKey,
) -> Result<Verdict, SshError> {
    let pinned = pinned_keys(known_hosts, host, port)?;
    if pinned.is_empty() {
        return Ok(Verdict::Unknown);
    }
    if pinned
        .iter()
        .any(|p| p.key.key_data() == presented.key_data())
    {
        return Ok(Verdict::Known);
    }
    // Report the pin of the same algorithm when there is one.
    let shown = pinned
        .iter()
        .find(|p| p.key.algorithm() == presented.algorithm())
        .unwrap_or(&pinned[0]);
    Ok(Verdict::Changed {
        line: shown.line,
        pinned_fingerprint: shown.fingerprint(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn pin_then_verify_then_change_then_forget() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("sub/dir/known_hosts");
        assert!(matches!(
            verify(&kh, "10.0.0.1", 2222, &key(K1)).unwrap(),
            Verdict::Unknown
        ));
        pin(&kh, "10.0.0.1", 2222, &key(K1)).unwrap();
        pin(&kh, "10.0.0.2", 22, &key(K2)).unwrap();
        let text = fs::read_to_string(&kh).unwrap();
        assert_eq!(
            text,
            format!("[10.0.0.1]:2222 ssh-ed25519 {K1}\n10.0.0.2 ssh-ed25519 {K2}\n")
        );
        assert_eq!(
            fs::metadata(&kh).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(kh.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );

        assert!(matches!(
            verify(&kh, "10.0.0.1", 2222, &key(K1)).unwrap(),
            Verdict::Known
        ));
        assert!(matches!(
            verify(&kh, "10.0.0.1", 22, &key(K1)).unwrap(),
            Verdict::Unknown
        ));
        match verify(&kh, "10.0.0.1", 2222, &key(K2)).unwrap() {
            Verdict::Changed {
                line,
                pinned_fingerprint,
            } => {
                assert_eq!(line, 1);
                assert_eq!(pinned_fingerprint, fingerprint(&key(K1)));
                assert!(pinned_fingerprint.starts_with("SHA256:"));
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(
            pinned_fingerprint(&kh, "10.0.0.2", 22).unwrap(),
            Some(fingerprint(&key(K2)))
        );
        assert_eq!(forget_host(&kh, "10.0.0.1", 2222).unwrap(), 1);
        assert_eq!(forget_host(&kh, "10.0.0.1", 2222).unwrap(), 0);
        assert_eq!(
            fs::read_to_string(&kh).unwrap(),
            format!("10.0.0.2 ssh-ed25519 {K2}\n")
        );
        assert_eq!(
            fs::metadata(&kh).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn reads_host_lists_comments_and_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        fs::write(
            &kh,
            format!("# comment\n\nother,[h]:2200 ssh-ed25519 {K1} c\n@revoked h ssh-ed25519 {K2}\nh ssh-ed25519 {K2}"),
        )
        .unwrap();
        let pins = pinned_keys(&kh, "h", 2200).unwrap();
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].line, 3);
        assert_eq!(pinned_keys(&kh, "h", 22).unwrap()[0].line, 5);
        pin(&kh, "new", 22, &key(K1)).unwrap();
        assert!(matches!(
            check_and_pin(&kh, "new", 22, &key(K1)).unwrap(),
            Verdict::Known
        ));
        assert!(matches!(
            check_and_pin(&kh, "new2", 22, &key(K1)).unwrap(),
            Verdict::Pinned
        ));
        assert!(matches!(
            check_and_pin(&kh, "new2", 22, &key(K1)).unwrap(),
            Verdict::Known
        ));
        assert!(matches!(
            check_and_pin(&kh, "new2", 22, &key(K2)).unwrap(),
            Verdict::Changed { .. }
        ));
        assert!(fs::read_to_string(&kh).unwrap().ends_with(&format!(
            "{K2}\nnew ssh-ed25519 {K1}\nnew2 ssh-ed25519 {K1}\n"
        )));
        assert_eq!(forget_host(&kh, "h", 2200).unwrap(), 1);
        assert!(pinned_keys(&kh, "h", 2200).unwrap().is_empty());
        assert_eq!(pinned_keys(&kh, "other", 22).unwrap().len(), 0);
    }

    #[test]
    fn missing_file_means_nothing_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("none");
        assert!(pinned_keys(&kh, "h", 22).unwrap().is_empty());
        assert_eq!(pinned_fingerprint(&kh, "h", 22).unwrap(), None);
        assert_eq!(forget_host(&kh, "h", 22).unwrap(), 0);
    }
}
