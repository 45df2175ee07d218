//! Archives copied between the host and this machine, streamed (never whole in memory) and
//! checked by sha256 at both ends.
//!
//! - [`fetch`]: an archive from the host into a local directory. The file is written as
//!   `.NAME.part` (0600: it holds the database and the secrets of `.env`), hashed as it
//!   arrives, compared with the sha256 the host computed, then renamed to `NAME` with a
//!   `NAME.sha256` beside it (`sha256sum -c` reads it). A `NAME` already there with the right
//!   checksum is not fetched again; a `.part` left by an interrupted copy is resumed from its
//!   length (and fetched whole once more if the result does not match).
//! - [`upload`]: a local archive to the host's backup directory, streamed into a temporary
//!   file there, its sha256 compared with the local one before it is renamed into place. An
//!   identical archive already on the host is not sent again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

use super::{Archive, BackupError, checksums, hex, host_path, valid_name};
use crate::host::Host;
use crate::ssh::{Stdin, shell_quote};
use crate::stack::layout;

/// What [`fetch`] did with an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchAction {
    /// Copied whole.
    Downloaded,
    /// Copied from where an interrupted copy stopped.
    Resumed,
    /// Already here with the right checksum: not copied.
    Unchanged,
    /// A different file had its name: replaced.
    Replaced,
}

/// An archive copied to this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fetched {
    pub name: String,
    /// The local file.
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub action: FetchAction,
}

/// Writes to a file, hashing and counting what it writes, and keeps the first write error
/// (the SSH layer only sees that writing failed).
struct HashingWriter {
    file: tokio::fs::File,
    hasher: Sha256,
    written: u64,
    error: Option<std::io::Error>,
}

impl HashingWriter {
    fn keep(&mut self, e: &std::io::Error) {
        if self.error.is_none() {
            self.error = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
    }
}

impl AsyncWrite for HashingWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.file).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.written += n as u64;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => {
                this.keep(&e);
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.file).poll_flush(cx);
        if let Poll::Ready(Err(e)) = &r {
            this.keep(e);
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

/// The sha256 state after the first `len` bytes of `path` (all of it with `None`), and the
/// bytes read. Runs on a blocking thread: hashing a large archive is CPU work.
async fn hash_file(path: &Path, len: Option<u64>) -> std::io::Result<(Sha256, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        let mut reader: Box<dyn Read> = match len {
            Some(n) => Box::new(file.take(n)),
            None => Box::new(file),
        };
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        Ok((hasher, total))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The sha256 (hex) and size of a local file.
pub async fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let (hasher, size) = hash_file(path, None).await?;
    Ok((hex(&hasher.finalize()), size))
}

/// `NAME.sha256` beside an archive, in `sha256sum` format.
pub fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    path.with_file_name(name)
}

/// Writes `path` (mode 0600) and makes it durable with its directory entry.
async fn write_private(path: &Path, contents: String) -> Result<(), BackupError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::state::fsutil::write_atomic(&path, contents.as_bytes(), 0o600)
            .map_err(BackupError::local("cannot write", &path))
    })
    .await
    .map_err(|e| BackupError::Unexpected(e.to_string()))?
}

/// Creates the download directory (0700 when it is new).
fn ensure_dir(dir: &Path) -> Result<(), BackupError> {
    crate::state::fsutil::create_private_dir(dir)
        .map_err(BackupError::local("cannot create the directory", dir))
}

fn set_private(path: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(BackupError::local("cannot set the mode of", path))
}

/// Copies `archive` (its `sha256` known) from the host into `dir`. See the module docs.
pub async fn fetch(host: &dyn Host, archive: &Archive, dir: &Path) -> Result<Fetched, BackupError> {
    let want = archive.sha256.clone().ok_or_else(|| {
        BackupError::Unexpected(format!("no checksum of {} from the host", archive.name))
    })?;
    ensure_dir(dir)?;
    let local = dir.join(&archive.name);
    let part = dir.join(format!(".{}.part", archive.name));
    let fetched = |action| Fetched {
        name: archive.name.clone(),
        path: local.clone(),
        size: archive.size,
        sha256: want.clone(),
        action,
    };
    let mut replaced = false;
    if local.is_file() {
        let (have, _) = sha256_file(&local)
            .await
            .map_err(BackupError::local("cannot read", &local))?;
        if have == want {
            set_private(&local)?;
            write_private(&sidecar(&local), format!("{want}  {}\n", archive.name)).await?;
            return Ok(fetched(FetchAction::Unchanged));
        }
        replaced = true;
    }
    // An interrupted copy is resumed; one as long as the archive or longer cannot be right.
    let mut offset = match std::fs::metadata(&part) {
        Ok(m) if m.is_file() && m.len() < archive.size => m.len(),
        _ => 0,
    };
    let resumed = offset > 0;
    loop {
        let got = fetch_part(host, archive, &part, offset).await?;
        if got == want {
            break;
        }
        let _ = std::fs::remove_file(&part);
        if offset > 0 {
            // What the interrupted copy left was not a prefix of this archive.
            offset = 0;
            continue;
        }
        return Err(BackupError::Checksum {
            what: format!("the copy of {} from the host", archive.name),
            expected: want,
            got,
        });
    }
    set_private(&part)?;
    std::fs::rename(&part, &local).map_err(BackupError::local("cannot rename into", &local))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BackupError::local("cannot sync", dir))?;
    write_private(&sidecar(&local), format!("{want}  {}\n", archive.name)).await?;
    Ok(fetched(if replaced {
        FetchAction::Replaced
    } else if resumed {
        FetchAction::Resumed
    } else {
        FetchAction::Downloaded
    }))
}

/// Streams the archive from byte `offset` on into `part` (created 0600, or appended to after
/// its first `offset` bytes); returns the sha256 of the whole file.
async fn fetch_part(
    host: &dyn Host,
    archive: &Archive,
    part: &Path,
    offset: u64,
) -> Result<String, BackupError> {
    let (hasher, file) = if offset > 0 {
        let (hasher, read) = hash_file(part, Some(offset))
            .await
            .map_err(BackupError::local("cannot read", part))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(part)
            .and_then(|f| {
                f.set_len(read)?;
                Ok(f)
            })
            .map_err(BackupError::local("cannot open", part))?;
        let mut file = tokio::fs::File::from_std(file);
        use tokio::io::AsyncSeekExt;
        file.seek(std::io::SeekFrom::Start(read))
            .await
            .map_err(BackupError::local("cannot seek in", part))?;
        (hasher, file)
    } else {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(part)
            .map_err(BackupError::local("cannot create", part))?;
        (Sha256::new(), tokio::fs::File::from_std(file))
    };
    let mut writer = HashingWriter {
        file,
        hasher,
        written: 0,
        error: None,
    };
    let remaining = archive.size.saturating_sub(offset);
    let found = host
        .download_to(&archive.path, offset, &mut writer, Some(remaining))
        .await;
    if let Some(e) = writer.error.take() {
        return Err(BackupError::local("cannot write", part)(e));
    }
    if !found? {
        let _ = std::fs::remove_file(part);
        return Err(BackupError::NotFound {
            name: archive.name.clone(),
            place: format!("on the host (in {})", layout::BACKUP_DIR),
        });
    }
    writer
        .file
        .sync_all()
        .await
        .map_err(BackupError::local("cannot sync", part))?;
    tracing::debug!(
        "{}: {} byte(s) from offset {offset}",
        archive.name,
        writer.written
    );
    Ok(hex(&writer.hasher.finalize()))
}

/// An archive sent to the host (or found there already).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Uploaded {
    /// Its name in the host's backup directory.
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Whether it was sent (false: the host had it).
    pub sent: bool,
}

/// The script that stores its standard input as `name` in the backup directory when its
/// sha256 is `sha256`, and prints `--sha HEX` and, when stored, `--placed`.
pub fn upload_script(name: &str, sha256: &str) -> String {
    format!(
        "set -e\n\
         umask 077\n\
         mkdir -p {dir}\n\
         chmod 0700 {dir}\n\
         t=$(mktemp {dir}/.upload-XXXXXXXX)\n\
         trap 'rm -f \"$t\"' EXIT\n\
         cat >\"$t\"\n\
         s=$(sha256sum \"$t\" | cut -c1-64)\n\
         echo \"--sha $s\"\n\
         if [ \"$s\" = {sha} ]; then mv -f \"$t\" {dest}; echo --placed; fi\n",
        dir = shell_quote(layout::BACKUP_DIR),
        sha = shell_quote(sha256),
        dest = shell_quote(&host_path(name)),
    )
}

/// Puts the local archive `path` in the host's backup directory, under its own name when that
/// is an archive name the host does not hold with other contents, else under
/// `torrust-backup-uploaded-<sha256 prefix>.tar.gz`. When a `.sha256` file is beside it, the
/// local file is checked against it first.
pub async fn upload(host: &dyn Host, path: &Path) -> Result<Uploaded, BackupError> {
    let (sha256, size) = sha256_file(path)
        .await
        .map_err(BackupError::local("cannot read", path))?;
    let side = sidecar(path);
    if let Ok(text) = std::fs::read_to_string(&side) {
        let expected = text.split_whitespace().next().unwrap_or("").to_lowercase();
        if expected != sha256 {
            return Err(BackupError::Checksum {
                what: format!("{} (checked against {})", path.display(), side.display()),
                expected,
                got: sha256,
            });
        }
    }
    let own = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .filter(|n| valid_name(n));
    let mut candidates: Vec<String> = own.into_iter().collect();
    candidates.push(format!("torrust-backup-uploaded-{}.tar.gz", &sha256[..16]));
    let on_host = checksums(host, &candidates).await?;
    let name = candidates
        .into_iter()
        .find(|c| on_host.get(c).is_none_or(|s| *s == sha256))
        .ok_or_else(|| {
            BackupError::Unexpected(format!(
                "the host holds other contents under both names for {}",
                path.display()
            ))
        })?;
    if on_host.contains_key(&name) {
        return Ok(Uploaded {
            name,
            size,
            sha256,
            sent: false,
        });
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(BackupError::local("cannot open", path))?;
    let out = host
        .sudo_stdin(
            &upload_script(&name, &sha256),
            Stdin::Reader(Box::new(file)),
            Some(size),
        )
        .await?
        .check()?;
    let text = out.stdout_str();
    if !text.lines().any(|l| l == "--placed") {
        let got = text
            .lines()
            .find_map(|l| l.strip_prefix("--sha "))
            .unwrap_or("(none)")
            .to_string();
        return Err(BackupError::Checksum {
            what: format!("the copy of {} on the host", path.display()),
            expected: sha256,
            got,
        });
    }
    Ok(Uploaded {
        name,
        size,
        sha256,
        sent: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    fn archive(host: &FakeHost, name: &str, contents: &[u8]) -> Archive {
        let path = host_path(name);
        host.put_file(&path, contents.to_vec(), 0o600);
        Archive {
            name: name.into(),
            path,
            size: contents.len() as u64,
            modified: chrono::Utc::now(),
            sha256: Some(hex(&Sha256::digest(contents))),
        }
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn a_fetch_is_checked_private_and_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("backups");
        let host = FakeHost::new();
        let a = archive(&host, "torrust-backup-a.tar.gz", b"the database and .env");
        let got = fetch(&host, &a, &out).await.unwrap();
        assert_eq!(got.action, FetchAction::Downloaded);
        assert_eq!(std::fs::read(&got.path).unwrap(), b"the database and .env");
        assert_eq!(mode(&got.path), 0o600);
        assert_eq!(mode(&out), 0o700);
        let side = std::fs::read_to_string(sidecar(&got.path)).unwrap();
        assert_eq!(side, format!("{}  torrust-backup-a.tar.gz\n", got.sha256));

        host.clear_calls();
        let again = fetch(&host, &a, &out).await.unwrap();
        assert_eq!(again.action, FetchAction::Unchanged);
        assert!(host.calls().is_empty(), "{:?}", host.calls());
    }

    #[tokio::test]
    async fn an_interrupted_fetch_resumes_and_a_wrong_prefix_is_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::new();
        let a = archive(&host, "torrust-backup-a.tar.gz", b"0123456789");
        let part = dir.path().join(".torrust-backup-a.tar.gz.part");
        std::fs::write(&part, b"0123").unwrap();
        let got = fetch(&host, &a, dir.path()).await.unwrap();
        assert_eq!(got.action, FetchAction::Resumed);
        assert_eq!(std::fs::read(&got.path).unwrap(), b"0123456789");
        assert_eq!(
            host.calls(),
            vec![Call::DownloadTo(a.path.clone(), 4)],
            "only the rest was read"
        );
        assert!(!part.exists());

        // A stale part of another file: fetched whole once more.
        std::fs::remove_file(&got.path).unwrap();
        std::fs::write(&part, b"xxxx").unwrap();
        host.clear_calls();
        let got = fetch(&host, &a, dir.path()).await.unwrap();
        assert_eq!(std::fs::read(&got.path).unwrap(), b"0123456789");
        assert_eq!(
            host.calls(),
            vec![
                Call::DownloadTo(a.path.clone(), 4),
                Call::DownloadTo(a.path.clone(), 0)
            ]
        );

        // A different file under the name is replaced.
        std::fs::write(&got.path, b"damaged").unwrap();
        let got = fetch(&host, &a, dir.path()).await.unwrap();
        assert_eq!(got.action, FetchAction::Replaced);
        assert_eq!(std::fs::read(&got.path).unwrap(), b"0123456789");
    }

    #[tokio::test]
    async fn a_fetch_whose_checksum_differs_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::new();
        let mut a = archive(&host, "torrust-backup-a.tar.gz", b"0123456789");
        a.sha256 = Some("f".repeat(64));
        let err = fetch(&host, &a, dir.path()).await.unwrap_err();
        assert!(matches!(err, BackupError::Checksum { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let gone = Archive {
            path: host_path("torrust-backup-gone.tar.gz"),
            ..a
        };
        let err = fetch(&host, &gone, dir.path()).await.unwrap_err();
        assert!(matches!(err, BackupError::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_upload_is_sent_once_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("torrust-backup-20251130T030000Z.tar.gz");
        std::fs::write(&local, b"archive").unwrap();
        let (sha, _) = sha256_file(&local).await.unwrap();
        let host = FakeHost::new();
        host.reply(
            "sha256sum --",
            [
                Reply::ok(""),
                Reply::ok(format!(
                    "{sha}  {}\n",
                    "torrust-backup-20251130T030000Z.tar.gz"
                )),
            ],
        );
        host.reply(
            "cat >\"$t\"",
            [Reply::ok(format!("--sha {sha}\n--placed\n"))],
        );
        let up = upload(&host, &local).await.unwrap();
        assert_eq!(
            (up.name.as_str(), up.sent),
            ("torrust-backup-20251130T030000Z.tar.gz", true)
        );
        let sent = host.calls().into_iter().find_map(|c| match c {
            Call::SudoStdin(_, bytes) => Some(bytes),
            _ => None,
        });
        assert_eq!(sent.as_deref(), Some(&b"archive"[..]));

        host.clear_calls();
        let again = upload(&host, &local).await.unwrap();
        assert!(!again.sent);
        assert_eq!(host.calls().len(), 1, "{:?}", host.calls());

        // A `.sha256` beside it that disagrees stops it before anything is sent.
        std::fs::write(sidecar(&local), format!("{}  x\n", "0".repeat(64))).unwrap();
        host.clear_calls();
        let err = upload(&host, &local).await.unwrap_err();
        assert!(matches!(err, BackupError::Checksum { .. }), "{err}");
        assert!(host.calls().is_empty());
    }

    #[tokio::test]
    async fn an_upload_under_another_name_when_the_host_has_different_contents() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("torrust-backup-a.tar.gz");
        std::fs::write(&local, b"mine").unwrap();
        let (sha, _) = sha256_file(&local).await.unwrap();
        let host = FakeHost::new();
        host.reply(
            "sha256sum --",
            [Reply::ok(format!(
                "{}  torrust-backup-a.tar.gz\n",
                "e".repeat(64)
            ))],
        );
        host.reply(
            "cat >\"$t\"",
            [Reply::ok(format!("--sha {}\n", "1".repeat(64)))],
        );
        let err = upload(&host, &local).await.unwrap_err();
        assert!(matches!(err, BackupError::Checksum { .. }), "{err}");
        let placed = host
            .commands()
            .into_iter()
            .find(|c| c.contains("cat >"))
            .unwrap();
        assert!(
            placed.contains(&format!("torrust-backup-uploaded-{}.tar.gz", &sha[..16])),
            "{placed}"
        );
    }

    #[test]
    fn the_upload_script_places_only_a_matching_copy() {
        let dir = tempfile::tempdir().unwrap();
        let script = upload_script("torrust-backup-a.tar.gz", &hex(&Sha256::digest(b"abc")))
            .replace(layout::BACKUP_DIR, dir.path().join("b").to_str().unwrap());
        let run = |input: &[u8]| {
            use std::io::Write;
            let mut child = std::process::Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
        };
        let placed = dir.path().join("b/torrust-backup-a.tar.gz");
        assert!(!run(b"abd").contains("--placed"));
        assert!(!placed.exists());
        assert!(run(b"abc").contains("--placed"));
        assert_eq!(std::fs::read(&placed).unwrap(), b"abc");
        assert_eq!(mode(&placed), 0o600);
        assert_eq!(mode(&dir.path().join("b")), 0o700);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path().join("b")).unwrap().count(), 1);
    }
}
