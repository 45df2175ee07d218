//! File upload: every file of the stack model on the host, with its mode and owner.
//!
//! - facts: [`read`] asks the host what an upload would do (one round trip: hash, mode and
//!   owner of every file, compared on the host; no content is read back);
//! - plan: [`plan`], pure: the files to create or update;
//! - apply: [`apply`], one tar stream placing exactly those files atomically;
//! - verify: [`verify`] compares again: every file must now match.
//!
//! For a dry run, [`diffs`] downloads the host's version of each file to change and shows a
//! unified diff. Secret files ([`StackFile::secret`]) are diffed on their real contents but
//! shown masked: a line is shown as it is only when the model renders it identically with every
//! secret replaced ([`Public`], from the stack rendered with redacted secrets); any other line
//! is masked ([`mask_line`]). A changed password thus shows as a changed line whose value reads
//! `[REDACTED]` on both sides, while a changed interval in the same file shows its new value.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::host::Host;
use crate::secret::REDACTED;
use crate::ssh::{Change, FileChange, UploadFile};
use crate::stack::StackFile;

use super::{Plan, TaskError};

/// The task's name in reports.
pub const TASK: &str = "upload files";

/// The upload of a stack file: its owner as numeric ids (root when the model names none).
pub fn upload_file(f: &StackFile) -> UploadFile {
    let (uid, gid) = f.owner.unwrap_or((0, 0));
    UploadFile::new(f.path.to_string_lossy(), f.contents.clone(), f.mode)
        .owned_by(uid.to_string(), gid.to_string())
}

/// What an upload of `files` would do to each, in order.
pub async fn read(host: &dyn Host, files: &[UploadFile]) -> Result<Vec<FileChange>, TaskError> {
    Ok(host.compare(files).await?)
}

/// The paths to create or update.
pub fn plan(changes: &[FileChange]) -> Plan<Vec<String>> {
    let paths: Vec<String> = changes
        .iter()
        .filter(|c| c.change != Change::Unchanged)
        .map(|c| c.remote_path.clone())
        .collect();
    if paths.is_empty() {
        Plan::Nothing(format!("{} files, all unchanged", changes.len()))
    } else {
        let text = format!(
            "{} of {} files to place (one tar stream)",
            paths.len(),
            changes.len()
        );
        Plan::Apply(paths, text)
    }
}

/// Places the files; reports what happened to each.
pub async fn apply(host: &dyn Host, files: &[UploadFile]) -> Result<Vec<FileChange>, TaskError> {
    Ok(host.upload(files).await?)
}

/// Compares again: every file must match.
pub async fn verify(host: &dyn Host, files: &[UploadFile]) -> Result<(), TaskError> {
    let after = read(host, files).await?;
    match plan(&after) {
        Plan::Nothing(_) => Ok(()),
        Plan::Apply(paths, _) => Err(TaskError::NotVerified {
            task: TASK.into(),
            found: format!("still different: {}", paths.join(", ")),
            fix: "another process may be writing these files on the host; stop it, then run \
                  release again"
                .into(),
        }),
    }
}

/// `created`, `updated` or `unchanged`.
pub fn change_name(change: Change) -> &'static str {
    match change {
        Change::Created => "created",
        Change::Updated => "updated",
        Change::Unchanged => "unchanged",
    }
}

/// What a dry run shows for a file to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    pub path: String,
    /// `created` or `updated`.
    pub change: &'static str,
    /// Its values are masked in [`diff`](Self::diff).
    pub secret: bool,
    /// A unified diff of the contents (`--- host` / `+++ model`); empty when only the mode or
    /// owner differs.
    pub diff: String,
}

/// The lines of each secret file that hold no secret: those the model renders identically when
/// every secret of the configuration is replaced. Built from the stack rendered with redacted
/// secrets ([`Public::from_redacted`]); a file it does not know is masked whole.
#[derive(Debug, Clone, Default)]
pub struct Public {
    lines: BTreeMap<String, BTreeSet<String>>,
}

impl Public {
    /// `redacted`: the same stack rendered from the configuration with every secret replaced.
    pub fn from_redacted(redacted: &[StackFile]) -> Self {
        let lines = redacted
            .iter()
            .filter(|f| f.secret)
            .map(|f| {
                let text = String::from_utf8_lossy(&f.contents);
                let set = text
                    .lines()
                    .filter(|l| !l.contains(REDACTED))
                    .map(str::to_string)
                    .collect();
                (f.path.to_string_lossy().into_owned(), set)
            })
            .collect();
        Self { lines }
    }

    fn shows(&self, path: &str, line: &str) -> bool {
        self.lines.get(path).is_some_and(|set| set.contains(line))
    }
}

/// Downloads the host's version of every file `changes` says would change and diffs it with
/// the model's (secret files masked with `public`). One round trip per changed file.
pub async fn diffs(
    host: &dyn Host,
    stack: &[StackFile],
    changes: &[FileChange],
    public: &Public,
) -> Result<Vec<FileDiff>, TaskError> {
    let mut out = Vec::new();
    for c in changes.iter().filter(|c| c.change != Change::Unchanged) {
        let Some(f) = stack
            .iter()
            .find(|f| f.path.to_string_lossy() == c.remote_path)
        else {
            continue;
        };
        let old = match c.change {
            Change::Created => Vec::new(),
            _ => host.download(&c.remote_path).await?.unwrap_or_default(),
        };
        let mask = f.secret.then_some(public);
        out.push(FileDiff {
            path: c.remote_path.clone(),
            change: change_name(c.change),
            secret: f.secret,
            diff: unified_diff(&c.remote_path, &old, &f.contents, mask),
        });
    }
    Ok(out)
}

/// A line of a secret file as it may be shown: comments and blank lines as they are; in any
/// other line, everything after the first `=` or `:` is replaced by [`REDACTED`] (a line with
/// neither is replaced whole).
pub fn mask_line(line: &str) -> String {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return line.to_string();
    }
    match line.find(['=', ':']) {
        Some(i) => format!("{}{REDACTED}", &line[..=i]),
        None => REDACTED.to_string(),
    }
}

/// A unified diff of `old` (the host's) and `new` (the model's) contents. With `mask`, only the
/// lines it knows as public are shown as they are. Empty when the contents are equal.
pub fn unified_diff(path: &str, old: &[u8], new: &[u8], mask: Option<&Public>) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
    let mut out = String::new();
    let unified = diff.unified_diff();
    for hunk in unified.iter_hunks() {
        if out.is_empty() {
            out.push_str(&format!("--- {path} (host)\n+++ {path} (model)\n"));
        }
        out.push_str(&format!("{}\n", hunk.header()));
        for change in hunk.iter_changes() {
            let line = change.value().trim_end_matches('\n');
            let line = match mask {
                Some(public) if !public.shows(path, line) => mask_line(line),
                _ => line.to_string(),
            };
            out.push_str(&format!("{}{line}\n", change.tag()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost};
    use crate::stack::FileRole;

    fn stack_file(path: &str, contents: &str, secret: bool) -> StackFile {
        StackFile {
            path: path.into(),
            contents: contents.as_bytes().to_vec(),
            mode: if secret { 0o600 } else { 0o644 },
            owner: None,
            secret,
            role: FileRole::Compose,
        }
    }

    #[test]
    fn a_diff_shows_the_changed_lines_with_context() {
        let d = unified_diff("/a", b"one\ntwo\nthree\n", b"one\n2\nthree\n", None);
        assert_eq!(
            d,
            "--- /a (host)\n+++ /a (model)\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n"
        );
        assert_eq!(unified_diff("/a", b"same\n", b"same\n", None), "");
    }

    #[test]
    fn a_secret_diff_shows_only_the_lines_without_a_secret() {
        let path = "/opt/torrust/prometheus.yml";
        // The model rendered with redacted secrets: what may be shown.
        let redacted = stack_file(
            path,
            "# Prometheus\nscrape_interval: 30s\nparams:\n  token:\n  - [REDACTED]\n",
            true,
        );
        let public = Public::from_redacted(&[redacted]);
        let old = b"# Prometheus\nscrape_interval: 10s\nparams:\n  token:\n  - old-secret-1\n";
        let new = b"# Prometheus\nscrape_interval: 30s\nparams:\n  token:\n  - new-secret-3\n";
        let d = unified_diff(path, old, new, Some(&public));
        for value in ["old-secret-1", "new-secret-3", "10s"] {
            assert!(!d.contains(value), "{d}");
        }
        assert!(d.contains("-scrape_interval:[REDACTED]\n"), "{d}");
        assert!(d.contains("+scrape_interval: 30s\n"), "{d}");
        assert!(d.contains("-[REDACTED]\n+[REDACTED]\n"), "{d}");
        assert!(d.contains(" # Prometheus\n"), "{d}");
        // A file the redacted model does not have is masked whole.
        let env = unified_diff("/opt/torrust/.env", b"A='x1'\n", b"A='x2'\n", Some(&public));
        assert_eq!(
            env,
            "--- /opt/torrust/.env (host)\n+++ /opt/torrust/.env (model)\n@@ -1 +1 @@\n\
             -A=[REDACTED]\n+A=[REDACTED]\n"
        );
        assert_eq!(mask_line("  password: hunter2"), "  password:[REDACTED]");
        assert_eq!(mask_line("bare-token"), REDACTED);
    }

    #[tokio::test]
    async fn plan_apply_verify_against_the_fake_host() {
        let host = FakeHost::new();
        host.put_file("/opt/torrust/a.yml", "x: 1\n", 0o644);
        let stack = vec![
            stack_file("/opt/torrust/a.yml", "x: 2\n", false),
            stack_file("/opt/torrust/.env", "TOKEN='s3cr3t'\n", true),
        ];
        let uploads: Vec<UploadFile> = stack
            .iter()
            .map(|f| UploadFile::new(f.path.to_string_lossy(), f.contents.clone(), f.mode))
            .collect();
        let changes = read(&host, &uploads).await.unwrap();
        let Plan::Apply(paths, text) = plan(&changes) else {
            panic!("nothing planned")
        };
        assert_eq!(paths, vec!["/opt/torrust/a.yml", "/opt/torrust/.env"]);
        assert_eq!(text, "2 of 2 files to place (one tar stream)");

        let shown = diffs(&host, &stack, &changes, &Public::default())
            .await
            .unwrap();
        assert_eq!(shown[0].change, "updated");
        assert!(
            shown[0].diff.contains("-x: 1\n+x: 2\n"),
            "{}",
            shown[0].diff
        );
        assert_eq!(shown[1].change, "created");
        assert!(!shown[1].diff.contains("s3cr3t"));
        // Only the file that exists was downloaded; nothing was written.
        assert_eq!(
            host.calls()[1..],
            [Call::Download("/opt/torrust/a.yml".into())]
        );
        assert_eq!(host.file("/opt/torrust/a.yml").unwrap().contents, b"x: 1\n");

        apply(&host, &uploads).await.unwrap();
        verify(&host, &uploads).await.unwrap();
        let again = read(&host, &uploads).await.unwrap();
        assert!(!plan(&again).is_apply());
    }
}
