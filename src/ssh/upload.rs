//! [`Session::upload`]: files placed atomically with owner, group and mode, reporting changes.
//!
//! Two round trips at most:
//! 1. one command prints, for every file, its sha256, mode, owner and group (or that it is absent);
//! 2. only when something differs, one command reads a tar archive on stdin holding the new
//!    contents under temporary names in the target directories, then for each file sets owner,
//!    group and mode on the temporary file and renames it over the target (atomic: readers see the
//!    old or the new file, never a partial one). Files whose content is right but whose mode or
//!    owner is not are fixed in place.
//!
//! Runs through `sudo -n` unless the user is root. The remote side needs `sh`, `tar`,
//! `sha256sum`, `stat`, `mkdir`, `mv`, `chown`, `chmod` (coreutils or busybox).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};

use super::exec::{ExecOptions, ExecOutput, tail};
use super::quote::shell_quote;
use super::{Session, SshError};

/// A file to place on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// Absolute path on the host.
    pub remote_path: String,
    pub contents: Vec<u8>,
    /// Permission bits, e.g. `0o644` (setuid/setgid/sticky allowed).
    pub mode: u32,
    /// User name or numeric id; `None` keeps the current owner (the writing user for new files).
    pub owner: Option<String>,
    /// Group name or numeric id; `None` keeps the current group (the writing user's for new files).
    pub group: Option<String>,
}

impl UploadFile {
    /// A file with `mode` and the default owner and group.
    pub fn new(remote_path: impl Into<String>, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self {
            remote_path: remote_path.into(),
            contents: contents.into(),
            mode,
            owner: None,
            group: None,
        }
    }

    /// Sets the owner and group.
    pub fn owned_by(mut self, owner: impl Into<String>, group: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self.group = Some(group.into());
        self
    }
}

/// What an upload did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The file did not exist.
    Created,
    /// Its content, mode, owner or group differed, and now match.
    Updated,
    /// Everything already matched; the file was not touched.
    Unchanged,
}

/// The outcome for one file, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub remote_path: String,
    pub change: Change,
}

/// What the host has at a path.
#[derive(Debug, PartialEq, Eq)]
enum Remote {
    Absent,
    /// A symbolic link: replaced by the file.
    Link,
    /// Something that is neither a file nor a link.
    Other,
    File {
        sha256: String,
        mode: u32,
        uid: String,
        gid: String,
        user: String,
        group: String,
    },
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn validate_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not an absolute path"));
    }
    if p.ends_with('/') || p.contains('\0') || p.contains('\n') {
        return Err(format!("{p:?} is not a file path"));
    }
    if p.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!("{p:?} contains `.` or `..`"));
    }
    Ok(())
}

fn split_dir(p: &str) -> (&str, &str) {
    let i = p.rfind('/').unwrap_or(0);
    (if i == 0 { "/" } else { &p[..i] }, &p[i + 1..])
}

/// The probe script. Shell builtins classify each path (`INDEX absent|link|other|file`); then ONE
/// `sha256sum` and ONE `stat` cover all regular files, in order, after `--sha` and `--stat`.
fn probe_script(files: &[UploadFile]) -> String {
    let mut s = String::from("set -e\nset --\n");
    for (i, f) in files.iter().enumerate() {
        let p = shell_quote(&f.remote_path);
        let _ = writeln!(
            s,
            "if [ -L {p} ]; then echo '{i} link'; elif [ -f {p} ]; then echo '{i} file'; \
             set -- \"$@\" {p}; elif [ -e {p} ]; then echo '{i} other'; else echo '{i} absent'; fi"
        );
    }
    s.push_str(
        "if [ $# -gt 0 ]; then echo --sha; sha256sum \"$@\"; \
         echo --stat; stat -c '%a %u %g %U %G' \"$@\"; fi\n",
    );
    s
}

fn parse_probe(out: &str, n: usize) -> Result<Vec<Remote>, String> {
    let bad = |line: &str| format!("unexpected probe output line {line:?}");
    let mut kinds: Vec<Option<&str>> = vec![None; n];
    let mut lines = out.lines();
    let mut section = "";
    let (mut shas, mut stats) = (Vec::new(), Vec::new());
    for line in lines.by_ref() {
        match line {
            "--sha" | "--stat" => section = line,
            _ if section == "--sha" => {
                // `\` starts the line when sha256sum escaped the name.
                let sha = line
                    .strip_prefix('\\')
                    .unwrap_or(line)
                    .get(..64)
                    .ok_or_else(|| bad(line))?;
                shas.push(sha.to_string());
            }
            _ if section == "--stat" => stats.push(line),
            _ => {
                let (i, kind) = line.split_once(' ').ok_or_else(|| bad(line))?;
                let i: usize = i.parse().ok().filter(|i| *i < n).ok_or_else(|| bad(line))?;
                kinds[i] = Some(kind);
            }
        }
    }
    let (mut shas, mut stats) = (shas.into_iter(), stats.into_iter());
    let mut res = Vec::with_capacity(n);
    for (i, kind) in kinds.into_iter().enumerate() {
        res.push(
            match kind.ok_or_else(|| format!("no probe result for file #{i}"))? {
                "absent" => Remote::Absent,
                "link" => Remote::Link,
                "other" => Remote::Other,
                "file" => {
                    let sha = shas.next().ok_or("fewer checksums than files")?;
                    let stat = stats.next().ok_or("fewer stat lines than files")?;
                    let w: Vec<&str> = stat.split_whitespace().collect();
                    let [mode, uid, gid, user, group] = w[..] else {
                        return Err(bad(stat));
                    };
                    Remote::File {
                        sha256: sha,
                        mode: u32::from_str_radix(mode, 8).map_err(|_| bad(stat))?,
                        uid: uid.to_string(),
                        gid: gid.to_string(),
                        user: user.to_string(),
                        group: group.to_string(),
                    }
                }
                other => return Err(bad(other)),
            },
        );
    }
    Ok(res)
}

fn id_matches(want: &Option<String>, id: &str, name: &str) -> bool {
    match want {
        None => true,
        Some(w) => w == id || w == name,
    }
}

/// One file's plan.
struct Plan {
    change: Change,
    /// Write new content (through a temporary file).
    write: bool,
    /// `chown` argument, if any.
    chown: Option<String>,
}

fn plan(f: &UploadFile, remote: &Remote) -> Plan {
    let mode = f.mode & 0o7777;
    let chown_spec = |keep_uid: Option<&str>, keep_gid: Option<&str>| {
        let user = f.owner.as_deref().or(keep_uid);
        let group = f.group.as_deref().or(keep_gid);
        match (user, group) {
            (None, None) => None,
            (Some(u), None) => Some(u.to_string()),
            (None, Some(g)) => Some(format!(":{g}")),
            (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        }
    };
    match remote {
        Remote::Absent | Remote::Link | Remote::Other => Plan {
            change: if *remote == Remote::Absent {
                Change::Created
            } else {
                Change::Updated
            },
            write: true,
            chown: chown_spec(None, None),
        },
        Remote::File {
            sha256,
            mode: have_mode,
            uid,
            gid,
            user,
            group,
        } => {
            let same_content = *sha256 == sha256_hex(&f.contents);
            let same_meta = *have_mode == mode
                && id_matches(&f.owner, uid, user)
                && id_matches(&f.group, gid, group);
            Plan {
                change: if same_content && same_meta {
                    Change::Unchanged
                } else {
                    Change::Updated
                },
                write: !same_content,
                chown: chown_spec(Some(uid), Some(gid)),
            }
        }
    }
}

/// The longest generated script sent in one command.
const MAX_SCRIPT: usize = 96 * 1024;

/// An upper bound of the size of the scripts `upload` generates for `files`.
fn script_estimate(files: &[UploadFile]) -> usize {
    files
        .iter()
        .map(|f| 6 * (shell_quote(&f.remote_path).len() + 32) + 100)
        .sum()
}

fn random_suffix() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(10)
        .map(char::from)
        .collect()
}

/// Where [`place`] runs its two scripts, as root: over SSH a [`Session`], over LXD exec
/// [`crate::host::lxd::LxdHost`].
pub(crate) trait RootShell: Sync {
    type Error: From<SshError> + Send;

    /// The host, for messages.
    fn host_name(&self) -> String;

    /// Runs `script` as root.
    fn root(&self, script: &str) -> impl Future<Output = Result<ExecOutput, Self::Error>> + Send;

    /// Runs `script` as root with `input` on its standard input.
    fn root_with_input(
        &self,
        script: &str,
        input: Vec<u8>,
    ) -> impl Future<Output = Result<ExecOutput, Self::Error>> + Send;

    /// The error for a failed upload (a bad path, a probe or a placement that failed).
    fn upload_failed(&self, detail: String) -> Self::Error {
        SshError::Upload {
            host: self.host_name(),
            detail,
        }
        .into()
    }
}

impl RootShell for Session {
    type Error = SshError;

    fn host_name(&self) -> String {
        self.target().host.clone()
    }

    async fn root(&self, script: &str) -> Result<ExecOutput, SshError> {
        self.sudo(script).await
    }

    async fn root_with_input(&self, script: &str, input: Vec<u8>) -> Result<ExecOutput, SshError> {
        self.sudo_with(script, ExecOptions::new().stdin_bytes(input))
            .await
    }
}

impl Session {
    /// Places `files` on the host, each atomically and with its mode, owner and group, and
    /// reports which changed. Unchanged files are not touched. Parent directories are created
    /// (mode 0755) when missing.
    pub async fn upload(&self, files: &[UploadFile]) -> Result<Vec<FileChange>, SshError> {
        place(self, files, true).await
    }

    /// What [`upload`](Self::upload) would do to each file, from the same one-round-trip
    /// inspection (hash, mode, owner), without changing anything on the host.
    pub async fn compare(&self, files: &[UploadFile]) -> Result<Vec<FileChange>, SshError> {
        place(self, files, false).await
    }
}

/// Inspects the files on the host and, when `apply` is set, places those that differ.
pub(crate) async fn place<S: RootShell>(
    shell: &S,
    files: &[UploadFile],
    apply: bool,
) -> Result<Vec<FileChange>, S::Error> {
    let mut seen = HashSet::new();
    for f in files {
        validate_path(&f.remote_path).map_err(|e| shell.upload_failed(e))?;
        if !seen.insert(f.remote_path.as_str()) {
            return Err(shell.upload_failed(format!("{} is listed twice", f.remote_path)));
        }
    }
    let mut changes = Vec::with_capacity(files.len());
    for batch in batches(files) {
        changes.extend(place_batch(shell, batch, apply).await?);
    }
    Ok(changes)
}

/// `files` cut into runs whose scripts fit one command line (an argument of `sh -c`, at most
/// 128 KiB on Linux).
fn batches(files: &[UploadFile]) -> Vec<&[UploadFile]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        let cost = script_estimate(std::slice::from_ref(f));
        if i > start && size + cost > MAX_SCRIPT {
            out.push(&files[start..i]);
            (start, size) = (i, 0);
        }
        size += cost;
    }
    if start < files.len() {
        out.push(&files[start..]);
    }
    out
}

/// [`place`] for files whose scripts fit one command.
async fn place_batch<S: RootShell>(
    shell: &S,
    files: &[UploadFile],
    apply: bool,
) -> Result<Vec<FileChange>, S::Error> {
    // Round trip 1: what is there now.
    let probe = shell.root(&probe_script(files)).await?;
    if !probe.success() {
        return Err(shell.upload_failed(format!(
            "cannot inspect the current files ({}): {}",
            probe.status,
            tail(&probe.stderr, 2000)
        )));
    }
    let remote =
        parse_probe(&probe.stdout_str(), files.len()).map_err(|e| shell.upload_failed(e))?;
    if let Some((f, _)) = files
        .iter()
        .zip(&remote)
        .find(|(_, r)| **r == Remote::Other)
    {
        return Err(shell.upload_failed(format!(
            "{} exists and is not a regular file",
            f.remote_path
        )));
    }
    let plans: Vec<Plan> = files.iter().zip(&remote).map(|(f, r)| plan(f, r)).collect();
    let result: Vec<FileChange> = files
        .iter()
        .zip(&plans)
        .map(|(f, p)| FileChange {
            remote_path: f.remote_path.clone(),
            change: p.change,
        })
        .collect();
    if !apply || plans.iter().all(|p| p.change == Change::Unchanged) {
        return Ok(result);
    }

    // Round trip 2: the archive and the script that places its files.
    let (script, archive) = placement(files, &plans).map_err(|e| shell.upload_failed(e))?;
    let out = shell.root_with_input(&script, archive).await?;
    if !out.success() {
        return Err(shell.upload_failed(format!(
            "placing the files failed ({}): {}",
            out.status,
            tail(&out.stderr, 2000)
        )));
    }
    let host = shell.host_name();
    for c in &result {
        if c.change != Change::Unchanged {
            tracing::debug!(target: "ssh", host = %host, "upload: {:?} {}", c.change, c.remote_path);
        }
    }
    Ok(result)
}

/// The script that places the changed files, and the tar archive it reads on stdin: the new
/// contents under temporary names beside their targets.
fn placement(files: &[UploadFile], plans: &[Plan]) -> Result<(String, Vec<u8>), String> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut dirs: Vec<&str> = Vec::new();
    let mut temps: Vec<String> = Vec::new();
    let mut chowns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut chmods: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut moves = String::new();
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for (f, p) in files.iter().zip(plans) {
        if p.change == Change::Unchanged {
            continue;
        }
        let mode = format!("{:o}", f.mode & 0o7777);
        let dest = shell_quote(&f.remote_path);
        if !p.write {
            if let Some(c) = &p.chown {
                chowns.entry(c.clone()).or_default().push(dest.clone());
            }
            chmods.entry(mode).or_default().push(dest);
            continue;
        }
        let (dir, name) = split_dir(&f.remote_path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
        let tmp = format!(
            "{}/.{name}.tmp-{}",
            dir.trim_end_matches('/'),
            random_suffix()
        );
        let mut header = tar::Header::new_gnu();
        header.set_size(f.contents.len() as u64);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(
                &mut header,
                tmp.trim_start_matches('/'),
                f.contents.as_slice(),
            )
            .map_err(|e| format!("cannot build the archive: {e}"))?;
        let t = shell_quote(&tmp);
        if let Some(c) = &p.chown {
            chowns.entry(c.clone()).or_default().push(t.clone());
        }
        chmods.entry(mode).or_default().push(t.clone());
        let _ = writeln!(moves, "mv -f {t} {dest}");
        temps.push(t);
    }
    // Owner before mode (chown may clear setuid bits), both before the renames; one process
    // per distinct owner or mode rather than per file.
    let mut body = String::new();
    for (spec, paths) in &chowns {
        let _ = writeln!(body, "chown {} {}", shell_quote(spec), paths.join(" "));
    }
    for (mode, paths) in &chmods {
        let _ = writeln!(body, "chmod {mode} {}", paths.join(" "));
    }
    body.push_str(&moves);
    let archive = archive
        .into_inner()
        .map_err(|e| format!("cannot build the archive: {e}"))?;

    let mut script = String::from("set -e\n");
    if !temps.is_empty() {
        let cleanup = format!("rm -f -- {}", temps.join(" "));
        let _ = writeln!(script, "trap {} EXIT", shell_quote(&cleanup));
        let quoted_dirs: Vec<String> = dirs.iter().map(|d| shell_quote(d)).collect();
        let _ = writeln!(script, "umask 022\nmkdir -p {}", quoted_dirs.join(" "));
        let _ = writeln!(script, "umask 077\ntar -x -f - -C /");
    }
    script.push_str(&body);
    Ok((script, archive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn paths_are_validated() {
        assert!(validate_path("/etc/x.conf").is_ok());
        assert!(validate_path("etc/x").is_err());
        assert!(validate_path("/etc/").is_err());
        assert!(validate_path("/etc/../x").is_err());
        assert_eq!(split_dir("/etc/x"), ("/etc", "x"));
        assert_eq!(split_dir("/x"), ("/", "x"));
    }

    #[test]
    fn probe_output_is_parsed() {
        let sha = "a".repeat(64);
        let sha2 = "b".repeat(64);
        let out = format!(
            "1 absent\n0 file\n2 link\n3 file\n--sha\n{sha}  /x\n\\{sha2}  /y\\\\z\n\
             --stat\n644 0 0 root root\n4755 65534 65534 nobody nogroup\n"
        );
        let r = parse_probe(&out, 4).unwrap();
        assert_eq!(r[1], Remote::Absent);
        assert_eq!(r[2], Remote::Link);
        assert!(
            matches!(&r[0], Remote::File { mode: 0o644, user, sha256, .. }
            if user == "root" && *sha256 == sha)
        );
        assert!(
            matches!(&r[3], Remote::File { mode: 0o4755, group, sha256, .. }
            if group == "nogroup" && *sha256 == sha2)
        );
        assert!(parse_probe("0 absent\n", 2).is_err());
        assert!(parse_probe("7 absent\n", 2).is_err());
        assert!(parse_probe("0 file\n--sha\n--stat\n", 1).is_err());
    }

    #[test]
    fn probe_script_runs_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("it's a file");
        std::fs::write(&file, "abc").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
        let files = [
            UploadFile::new(p(&file), "", 0o644),
            UploadFile::new(p(&dir.path().join("none")), "", 0o644),
            UploadFile::new(p(&link), "", 0o644),
            UploadFile::new(p(dir.path()), "", 0o644),
        ];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(probe_script(&files))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = parse_probe(&String::from_utf8(out.stdout).unwrap(), 4).unwrap();
        assert!(matches!(&r[0], Remote::File { sha256, .. } if *sha256 == sha256_hex(b"abc")));
        assert_eq!(r[1], Remote::Absent);
        assert_eq!(r[2], Remote::Link);
        assert_eq!(r[3], Remote::Other);
    }

    #[test]
    fn plans_detect_content_and_metadata_changes() {
        let f = UploadFile::new("/x", "hi", 0o640).owned_by("nobody", "0");
        let file = |sha: String, mode, user: &str| Remote::File {
            sha256: sha,
            mode,
            uid: "65534".into(),
            gid: "0".into(),
            user: user.into(),
            group: "root".into(),
        };
        let same = sha256_hex(b"hi");
        assert_eq!(
            plan(&f, &file(same.clone(), 0o640, "nobody")).change,
            Change::Unchanged
        );
        let p = plan(&f, &file(same.clone(), 0o644, "nobody"));
        assert_eq!((p.change, p.write), (Change::Updated, false));
        let p = plan(&f, &file(same, 0o640, "other"));
        assert_eq!((p.change, p.write), (Change::Updated, false));
        let p = plan(&f, &file("b".repeat(64), 0o640, "nobody"));
        assert_eq!((p.change, p.write), (Change::Updated, true));
        let p = plan(&f, &Remote::Absent);
        assert_eq!(
            (p.change, p.write, p.chown.as_deref()),
            (Change::Created, true, Some("nobody:0"))
        );
        // No owner given: an existing file keeps its owner and group.
        let g = UploadFile::new("/x", "new", 0o600);
        let p = plan(&g, &file(same_sha(), 0o600, "nobody"));
        assert_eq!(p.chown.as_deref(), Some("65534:0"));
        assert_eq!(plan(&g, &Remote::Absent).chown, None);
    }

    #[test]
    fn long_lists_are_cut_into_batches_that_fit_one_command() {
        let file = |i: usize| UploadFile::new(format!("/srv/{}/{i}", "d".repeat(200)), "", 0o644);
        let few: Vec<UploadFile> = (0..3).map(file).collect();
        assert_eq!(batches(&few), [&few[..]]);
        let many: Vec<UploadFile> = (0..200).map(file).collect();
        let cut = batches(&many);
        assert!(cut.len() > 1);
        assert!(cut.iter().all(|b| script_estimate(b) <= MAX_SCRIPT));
        assert_eq!(cut.iter().map(|b| b.len()).sum::<usize>(), many.len());
        assert!(batches(&[]).is_empty());
    }

    fn same_sha() -> String {
        sha256_hex(b"old")
    }
}
