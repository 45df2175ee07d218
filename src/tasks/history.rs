//! The release history on the host: every operator's releases, appended to one log.
//!
//! ```text
//! /var/lib/torrust-deployer/            root, 0700
//!   history.jsonl                       one release record per line, append-only (0600)
//!   history.lock                        taken (flock) while a line is appended
//!   files/<sha256>                      the released files' contents (0600)
//! ```
//!
//! - [`read`]: the records (one download; a line that cannot be read is skipped and named);
//! - [`append`]: the record's files (one hash-compared upload: contents already there are not
//!   sent again), then its line, appended under a lock;
//! - [`fetch`]: the contents of one file, checked against its hash (for a rollback to a release
//!   made on another machine).

use crate::host::Host;
use crate::ssh::{Stdin, UploadFile, shell_quote};
use crate::state::history::{ReleaseRecord, is_sha256, sha256_hex};

use super::TaskError;

/// The task's name in reports.
pub const TASK: &str = "record the release";

/// Where the host keeps the history.
pub const HOST_DIR: &str = "/var/lib/torrust-deployer";

/// The log of release records.
pub fn log_path() -> String {
    format!("{HOST_DIR}/history.jsonl")
}

/// Where the host keeps the contents with this hash.
pub fn file_path(sha256: &str) -> String {
    format!("{HOST_DIR}/files/{sha256}")
}

/// The host's records, in the log's order, and what could not be read.
#[derive(Debug, Default)]
pub struct HostHistory {
    pub records: Vec<ReleaseRecord>,
    /// One line per skipped line: its number and why.
    pub skipped: Vec<String>,
}

/// Reads the host's log (none yet: no records).
pub async fn read(host: &dyn Host) -> Result<HostHistory, TaskError> {
    let Some(bytes) = host.download(&log_path()).await? else {
        return Ok(HostHistory::default());
    };
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

/// Parses the log: one JSON record per line; a line that is not one, or whose record fails
/// [`ReleaseRecord::problems`], is skipped.
pub fn parse(text: &str) -> HostHistory {
    let mut out = HostHistory::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ReleaseRecord>(line) {
            Ok(r) if r.problems().is_empty() => out.records.push(r),
            Ok(r) => out
                .skipped
                .push(format!("line {}: {}", i + 1, r.problems().join("; "))),
            Err(e) => out.skipped.push(format!("line {}: {e}", i + 1)),
        }
    }
    out
}

/// The script that appends stdin (one line) to the log, under its lock, keeping the directory
/// root's alone. The line is read whole first: a connection lost halfway appends nothing
/// (the record stays unsent here and is sent again).
pub fn append_script() -> String {
    let dir = shell_quote(HOST_DIR);
    let log = shell_quote(&log_path());
    format!(
        "set -e\numask 077\nmkdir -p {dir}/files\nchmod 0700 {dir} {dir}/files\n\
         t=$(mktemp {dir}/.record.XXXXXX)\ntrap 'rm -f \"$t\"' EXIT\ncat > \"$t\"\n\
         if [ ! -s \"$t\" ] || [ -n \"$(tail -c 1 \"$t\")\" ]; then echo 'incomplete record' >&2; exit 3; fi\n\
         {{ flock 9 2>/dev/null || true; cat \"$t\" >> {log}; }} 9>> {dir}/history.lock\nchmod 0600 {log}\n"
    )
}

/// Appends `record` to the host's history, after its files' `contents` (hash, bytes).
pub async fn append(
    host: &dyn Host,
    record: &ReleaseRecord,
    contents: &[(String, Vec<u8>)],
) -> Result<(), TaskError> {
    let uploads: Vec<UploadFile> = contents
        .iter()
        .map(|(sha, bytes)| {
            UploadFile::new(file_path(sha), bytes.clone(), 0o600).owned_by("0", "0")
        })
        .collect();
    if !uploads.is_empty() {
        host.upload(&uploads).await?;
    }
    let mut line = serde_json::to_string(record).expect("a record serializes");
    line.push('\n');
    let out = host
        .sudo_stdin(&append_script(), Stdin::Bytes(line.into_bytes()), None)
        .await?;
    if !out.success() {
        return Err(TaskError::failed(
            TASK,
            format!(
                "cannot append to {} on the host: {}",
                log_path(),
                out.stderr_str().trim()
            ),
            "check the host's disk and that the SSH user may use sudo, then run the command \
             again: the record is kept here and sent then",
        ));
    }
    Ok(())
}

/// The contents with this hash from the host's history, if it has them (and they match).
pub async fn fetch(host: &dyn Host, sha256: &str) -> Result<Option<Vec<u8>>, TaskError> {
    if !is_sha256(sha256) {
        return Ok(None);
    }
    Ok(host
        .download(&file_path(sha256))
        .await?
        .filter(|bytes| sha256_hex(bytes) == sha256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};
    use crate::state::history::tests::record;

    #[tokio::test]
    async fn append_uploads_the_contents_then_the_line_and_read_gets_it_back() {
        let host = FakeHost::new();
        host.reply("history.jsonl", [Reply::ok("")]);
        let bytes = b"x = 1\n".to_vec();
        let sha = sha256_hex(&bytes);
        let r = record("00000000000000a1", "2026-12-01T10:00:01Z", &sha);
        append(&host, &r, &[(sha.clone(), bytes.clone())])
            .await
            .unwrap();
        let calls = host.calls();
        assert_eq!(calls[0], Call::Upload(vec![file_path(&sha)]));
        let Call::SudoStdin(script, line) = &calls[1] else {
            panic!("{calls:#?}")
        };
        assert!(script.contains(&format!("cat \"$t\" >> {};", shell_quote(&log_path()))));
        assert!(script.contains("flock 9"));
        assert!(script.contains("chmod 0700"));
        let f = host.file(&file_path(&sha)).unwrap();
        assert_eq!((f.mode, f.owner.as_deref()), (0o600, Some("0")));
        assert!(line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'));

        // The host's log, as the script leaves it (plus a line another build wrote).
        let mut log = line.clone();
        log.extend_from_slice(b"{\"not\": \"a record\"}\n");
        host.put_file(&log_path(), log, 0o600);
        let h = read(&host).await.unwrap();
        assert_eq!(h.records, vec![r]);
        assert_eq!(h.skipped.len(), 1, "{:?}", h.skipped);
        assert!(h.skipped[0].starts_with("line 2: "), "{:?}", h.skipped);

        assert_eq!(fetch(&host, &sha).await.unwrap(), Some(bytes));
        assert_eq!(fetch(&host, &"0".repeat(64)).await.unwrap(), None);
        assert_eq!(fetch(&host, "../../etc/shadow").await.unwrap(), None);
    }

    #[tokio::test]
    async fn no_log_is_no_history_and_a_failed_append_says_so() {
        let host = FakeHost::new();
        let h = read(&host).await.unwrap();
        assert!(h.records.is_empty() && h.skipped.is_empty());
        host.reply("history.jsonl", [Reply::fail(1, "No space left on device")]);
        let r = record("00000000000000a1", "2026-12-01T10:00:01Z", &"a".repeat(64));
        let err = append(&host, &r, &[]).await.unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(
            crate::error_kind::Classify::kind(&err),
            crate::error_kind::ErrorKind::TaskFailed
        );
    }

    #[test]
    fn the_append_script_appends_only_whole_lines() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("h");
        let script = append_script().replace(HOST_DIR, root.to_str().unwrap());
        let append = |input: &[u8]| {
            let mut child = std::process::Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            child.wait_with_output().unwrap()
        };
        assert!(append(b"{\"a\": 1}\n").status.success());
        // A line cut short (the connection lost halfway) is not appended.
        let cut = append(b"{\"b\": ");
        assert_eq!(cut.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&cut.stderr).contains("incomplete record"));
        assert!(append(b"{\"c\": 3}\n").status.success());
        let log = root.join("history.jsonl");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "{\"a\": 1}\n{\"c\": 3}\n"
        );
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&log), 0o600);
        assert_eq!(mode(&root), 0o700);
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| !n.starts_with(".record")), "{left:?}");
    }

    #[test]
    fn a_record_with_a_bad_id_or_path_is_skipped() {
        let mut r = record("00000000000000a1", "2026-12-01T10:00:01Z", &"a".repeat(64));
        r.files[0].path = "relative/path".into();
        let h = parse(&serde_json::to_string(&r).unwrap());
        assert!(h.records.is_empty());
        assert!(h.skipped[0].contains("not absolute"), "{:?}", h.skipped);
    }
}
