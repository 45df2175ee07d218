//! The release history: what each release put on the host, and the copy of it kept on this
//! machine.
//!
//! ```text
//! data/<env>/history/releases/<time>-<id>.json    one record per release (0600: it holds the
//!                                                 environment's configuration, secrets included)
//! data/<env>/history/releases/<time>-<id>.unsent  the record is not yet appended on the host
//! data/<env>/history/files/<sha256>               the contents of the released files (0600)
//! ```
//!
//! A [`ReleaseRecord`] names every file released (path, SHA-256, mode, owner, the services that
//! mount it), every image (reference and ID), who released (user and machine), when, and what
//! changed since the release before. The files' contents are stored once each, by hash. The host
//! keeps the same records, appended to a log (see `crate::tasks::history`), so that `history`
//! shows every operator's releases: the two are merged by [`ReleaseRecord::id`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DataDir, StateError, fsutil};
use crate::config::EnvironmentConfig;

/// The shape of a record; bumped when it changes incompatibly.
pub const RECORD_VERSION: u32 = 1;

/// Who released: the user and the machine the deployer ran on.
pub use super::operator::Operator;

/// One released file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFile {
    /// Absolute path on the host.
    pub path: String,
    /// Of its contents (stored under `history/files/`).
    pub sha256: String,
    pub mode: u32,
    /// `(uid, gid)`; `None`: owned by whoever uploaded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<(u32, u32)>,
    pub secret: bool,
    /// The services that mount it and are restarted when it changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<String>,
}

/// One image the compose file uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedImage {
    pub reference: String,
    /// The ID the host had for it (`sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// What a release changed, compared with the release before it and with the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Files created, updated or no longer released.
    #[serde(default)]
    pub files: Vec<String>,
    /// Images whose ID changed (or that are new).
    #[serde(default)]
    pub images: Vec<String>,
    /// Services restarted for a changed file.
    #[serde(default)]
    pub restarts: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.images.is_empty()
    }
}

/// A file as placed: its hash, mode and owner.
type Placed<'a> = (&'a str, u32, Option<(u32, u32)>);

/// Everything one release put on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub version: u32,
    /// 16 hex digits, random: how the local and the host's records are matched.
    pub id: String,
    pub at: DateTime<Utc>,
    pub by: Operator,
    /// `release`, or `rollback`.
    pub command: String,
    /// A rollback: the ID of the release it put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub files: Vec<RecordedFile>,
    pub images: Vec<RecordedImage>,
    pub changed: Changes,
    /// The configuration the files were rendered from (secrets included).
    pub config: EnvironmentConfig,
}

impl ReleaseRecord {
    /// A fresh random ID.
    pub fn new_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    /// Whether the host holds the same files (contents, modes, owners) and images in both.
    pub fn same_content(&self, other: &ReleaseRecord) -> bool {
        fn key(r: &ReleaseRecord) -> BTreeMap<&str, Placed<'_>> {
            r.files
                .iter()
                .map(|f| (f.path.as_str(), (f.sha256.as_str(), f.mode, f.owner)))
                .collect()
        }
        let images = |r: &ReleaseRecord| -> BTreeMap<String, Option<String>> {
            r.images
                .iter()
                .map(|i| (i.reference.clone(), i.id.clone()))
                .collect()
        };
        key(self) == key(other) && images(self) == images(other)
    }

    /// What a record read from elsewhere (the host) must look like before anything uses it: an
    /// ID of 16 hex digits and hashes of 64, absolute paths without `..`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !is_id(&self.id) {
            out.push(format!("id {:?} is not 16 hex digits", self.id));
        }
        if self.version != RECORD_VERSION {
            out.push(format!("version {} is not {RECORD_VERSION}", self.version));
        }
        for f in &self.files {
            if !is_sha256(&f.sha256) {
                out.push(format!("{}: hash {:?} is not SHA-256", f.path, f.sha256));
            }
            if !f.path.starts_with('/') || f.path.split('/').any(|c| c == "..") {
                out.push(format!("path {:?} is not absolute and plain", f.path));
            }
        }
        out
    }
}

/// 16 lowercase hex digits.
pub fn is_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The history kept on this machine for one environment.
#[derive(Debug, Clone)]
pub struct LocalHistory {
    env: String,
    dir: PathBuf,
}

impl DataDir {
    /// The environment's release history on this machine.
    pub fn history(&self, env: &str) -> LocalHistory {
        LocalHistory {
            env: env.to_string(),
            dir: self.env_dir(env).join("history"),
        }
    }
}

impl LocalHistory {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn releases_dir(&self) -> PathBuf {
        self.dir.join("releases")
    }

    fn files_dir(&self) -> PathBuf {
        self.dir.join("files")
    }

    fn record_path(&self, record: &ReleaseRecord) -> PathBuf {
        self.releases_dir().join(format!(
            "{}-{}.json",
            record.at.format("%Y%m%dT%H%M%S%.3fZ"),
            record.id
        ))
    }

    fn write_error(&self, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
        let path = path.to_path_buf();
        move |source| StateError::Write { path, source }
    }

    fn unreadable(&self, path: &Path, reason: impl std::fmt::Display) -> StateError {
        StateError::Unreadable {
            env: self.env.clone(),
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// The record files, oldest first (their names start with the time).
    fn record_files(&self) -> Result<Vec<PathBuf>, StateError> {
        let dir = self.releases_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.unreadable(&dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    fn read_record(&self, path: &Path) -> Result<ReleaseRecord, StateError> {
        let text = fs::read_to_string(path).map_err(|e| self.unreadable(path, e))?;
        serde_json::from_str(&text).map_err(|e| self.unreadable(path, e))
    }

    /// Every record, oldest first.
    pub fn records(&self) -> Result<Vec<ReleaseRecord>, StateError> {
        let mut records = self
            .record_files()?
            .iter()
            .map(|p| self.read_record(p))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(records)
    }

    /// The newest record.
    pub fn latest(&self) -> Result<Option<ReleaseRecord>, StateError> {
        match self.record_files()?.last() {
            Some(path) => self.read_record(path).map(Some),
            None => Ok(None),
        }
    }

    /// The stored contents with this hash, checked.
    pub fn contents(&self, sha256: &str) -> Option<Vec<u8>> {
        if !is_sha256(sha256) {
            return None;
        }
        fs::read(self.files_dir().join(sha256))
            .ok()
            .filter(|bytes| sha256_hex(bytes) == sha256)
    }

    /// Stores contents under their hash (mode 0600, written durably); returns the hash.
    pub fn store_contents(&self, bytes: &[u8]) -> Result<String, StateError> {
        let sha = sha256_hex(bytes);
        if self.contents(&sha).is_none() {
            let path = self.files_dir().join(&sha);
            fsutil::create_private_dir(&self.dir).map_err(self.write_error(&self.dir))?;
            fsutil::create_private_dir(&self.files_dir())
                .map_err(self.write_error(&self.files_dir()))?;
            fsutil::write_atomic(&path, bytes, 0o600).map_err(self.write_error(&path))?;
        }
        Ok(sha)
    }

    /// Writes a record (mode 0600, durably), marked as not yet on the host. Its files' contents
    /// must be stored first ([`store_contents`](Self::store_contents)).
    pub fn write(&self, record: &ReleaseRecord) -> Result<(), StateError> {
        let dir = self.releases_dir();
        fsutil::create_private_dir(&self.dir).map_err(self.write_error(&self.dir))?;
        fsutil::create_private_dir(&dir).map_err(self.write_error(&dir))?;
        let path = self.record_path(record);
        let unsent = path.with_extension("unsent");
        fsutil::write_atomic(&unsent, b"", 0o600).map_err(self.write_error(&unsent))?;
        let text = serde_json::to_string_pretty(record).expect("a record serializes");
        fsutil::write_atomic(&path, text.as_bytes(), 0o600).map_err(self.write_error(&path))
    }

    /// The records not yet appended on the host, oldest first.
    pub fn unsent(&self) -> Result<Vec<ReleaseRecord>, StateError> {
        let mut out = Vec::new();
        for path in self.record_files()? {
            if path.with_extension("unsent").exists() {
                out.push(self.read_record(&path)?);
            }
        }
        Ok(out)
    }

    /// Marks a record as appended on the host.
    pub fn mark_sent(&self, record: &ReleaseRecord) -> Result<(), StateError> {
        let unsent = self.record_path(record).with_extension("unsent");
        match fs::remove_file(&unsent) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.write_error(&unsent)(e)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config;

    pub(crate) fn record(id: &str, at: &str, sha: &str) -> ReleaseRecord {
        let file = config::minimal_test_file("hist", "Hist-Admin-Token-0a1b").to_string();
        let loaded = config::parse(&file, Path::new("/tmp")).unwrap();
        ReleaseRecord {
            version: RECORD_VERSION,
            id: id.into(),
            at: at.parse().unwrap(),
            by: Operator {
                user: "ana".into(),
                machine: "laptop".into(),
            },
            command: "release".into(),
            restores: None,
            note: None,
            files: vec![RecordedFile {
                path: "/opt/torrust/a".into(),
                sha256: sha.into(),
                mode: 0o600,
                owner: None,
                secret: true,
                restarts: vec!["tracker".into()],
            }],
            images: vec![RecordedImage {
                reference: "torrust/tracker:3.0.0".into(),
                id: Some(format!("sha256:{}", "a".repeat(64))),
            }],
            changed: Changes::default(),
            config: loaded.config,
        }
    }

    #[test]
    fn records_and_contents_are_private_durable_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let h = data.history("hist");
        assert!(h.records().unwrap().is_empty());
        assert!(h.latest().unwrap().is_none());

        let sha = h.store_contents(b"token = 's3cr3t'\n").unwrap();
        assert_eq!(sha, sha256_hex(b"token = 's3cr3t'\n"));
        assert_eq!(h.contents(&sha).unwrap(), b"token = 's3cr3t'\n");
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&h.dir().join("files").join(&sha)), 0o600);
        assert_eq!(mode(h.dir()), 0o700);

        let second = record("00000000000000b2", "2026-12-01T10:00:02Z", &sha);
        let first = record("00000000000000a1", "2026-12-01T10:00:01Z", &sha);
        h.write(&second).unwrap();
        h.write(&first).unwrap();
        let all = h.records().unwrap();
        assert_eq!(all, vec![first.clone(), second.clone()]);
        assert_eq!(h.latest().unwrap().unwrap(), second);
        for p in fs::read_dir(h.dir().join("releases")).unwrap() {
            assert_eq!(mode(&p.unwrap().path()), 0o600);
        }
        // Both wait for the host until marked sent.
        assert_eq!(h.unsent().unwrap().len(), 2);
        h.mark_sent(&first).unwrap();
        assert_eq!(h.unsent().unwrap(), vec![second]);
    }

    #[test]
    fn contents_that_do_not_match_their_hash_are_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let h = DataDir::new(dir.path()).history("hist");
        let sha = h.store_contents(b"one").unwrap();
        fs::write(h.dir().join("files").join(&sha), b"two").unwrap();
        assert!(h.contents(&sha).is_none());
        assert!(h.contents("../state.json").is_none());
    }

    #[test]
    fn same_content_and_problems() {
        let sha = "b".repeat(64);
        let a = record("00000000000000a1", "2026-12-01T10:00:01Z", &sha);
        let mut b = record("00000000000000b2", "2026-12-01T10:00:02Z", &sha);
        assert!(a.same_content(&b));
        b.images[0].id = Some(format!("sha256:{}", "c".repeat(64)));
        assert!(!a.same_content(&b));
        assert!(a.problems().is_empty());
        let mut bad = a.clone();
        bad.id = "../x".into();
        bad.files[0].path = "/opt/../etc/passwd".into();
        bad.files[0].sha256 = "zz".into();
        assert_eq!(bad.problems().len(), 3, "{:?}", bad.problems());
    }

    #[test]
    fn the_operator_is_named() {
        let op = Operator::current();
        assert!(!op.user.is_empty() && !op.machine.is_empty());
        assert_eq!(super::super::operator::printable("a\nb\u{7}c"), "abc");
    }
}
