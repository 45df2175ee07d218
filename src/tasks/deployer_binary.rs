//! This deployer binary on the host, for the stack's `stats-exporter` service (which runs it in
//! the tracker's image, mounted read-only from [`layout::DEPLOYER_BIN_DIR`]).
//!
//! Facts: the host's `uname -m`, and the sha256 and size recorded beside the binary when it was
//! placed (reading 200 MB again on every release would cost a second). Plan: upload when they
//! differ from this binary's. Apply: stream the binary into a temporary file, check its sha256
//! on the host, rename it over the old one and record the digest. A binary that cannot run on
//! the host (not Linux, or another CPU architecture) is refused before anything is sent.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Plan, TaskError};
use crate::host::Host;
use crate::ssh::{Stdin, shell_quote};
use crate::stack::layout;

pub const TASK: &str = "deployer binary";

/// The file beside the binary that records its sha256 and size.
fn recorded_path() -> String {
    format!("{}.sha256", layout::DEPLOYER_BIN)
}

/// This binary: where it is, what it is, and what it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBinary {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// The OS it was built for (`std::env::consts::OS`).
    pub os: &'static str,
    /// The CPU architecture it was built for (`std::env::consts::ARCH`).
    pub arch: &'static str,
}

#[derive(Debug, Serialize, Deserialize)]
struct DigestCache {
    path: PathBuf,
    size: u64,
    modified_ns: u128,
    sha256: String,
}

fn io_failed(what: &str, path: &Path, e: std::io::Error) -> TaskError {
    TaskError::failed(
        TASK,
        format!("cannot {what} {}: {e}", path.display()),
        "check that the deployer's own binary is readable",
    )
}

impl LocalBinary {
    /// The running binary. Its sha256 is kept in `cache_dir` under its path, size and mtime, so
    /// it is computed once per build.
    pub fn current(cache_dir: &Path) -> Result<Self, TaskError> {
        let path = std::env::current_exe()
            .map_err(|e| io_failed("find", Path::new("the running binary"), e))?;
        let meta = std::fs::metadata(&path).map_err(|e| io_failed("read", &path, e))?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let cache_file = cache_dir.join("deployer-binary.json");
        let cached = std::fs::read(&cache_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<DigestCache>(&b).ok())
            .filter(|c| c.path == path && c.size == meta.len() && c.modified_ns == modified_ns);
        let sha256 = match cached {
            Some(c) => c.sha256,
            None => {
                let sha256 = sha256_file(&path)?;
                let entry = DigestCache {
                    path: path.clone(),
                    size: meta.len(),
                    modified_ns,
                    sha256: sha256.clone(),
                };
                // A cache that cannot be written only costs the digest next time.
                let _ = std::fs::create_dir_all(cache_dir).and_then(|()| {
                    crate::state::fsutil::write_atomic(
                        &cache_file,
                        &serde_json::to_vec(&entry).expect("the cache entry serializes"),
                        0o644,
                    )
                });
                sha256
            }
        };
        Ok(Self {
            path,
            size: meta.len(),
            sha256,
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        })
    }
}

fn sha256_file(path: &Path) -> Result<String, TaskError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| io_failed("read", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| io_failed("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// What the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBinary {
    /// `uname -m`.
    pub machine: String,
    /// The sha256 and size recorded when the binary was placed, if it is there.
    pub recorded: Option<(String, u64)>,
    /// The binary's size now, if it is there.
    pub size: Option<u64>,
}

/// Reads the host's machine type and what binary it has, in one command.
pub async fn read(host: &dyn Host) -> Result<RemoteBinary, TaskError> {
    let script = format!(
        "printf 'machine=%s\\n' \"$(uname -m)\"; \
         printf 'recorded=%s\\n' \"$(head -c 200 {rec} 2>/dev/null)\"; \
         printf 'size=%s\\n' \"$(stat -c %s {bin} 2>/dev/null)\"",
        rec = shell_quote(&recorded_path()),
        bin = shell_quote(layout::DEPLOYER_BIN),
    );
    let out = host.exec(&script).await?.check()?;
    Ok(parse_facts(&out.stdout_str()))
}

fn parse_facts(text: &str) -> RemoteBinary {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    let recorded = field("recorded");
    let mut parts = recorded.split_whitespace();
    let recorded = match (parts.next(), parts.next().and_then(|s| s.parse().ok())) {
        (Some(sha), Some(size)) if sha.len() == 64 => Some((sha.to_string(), size)),
        _ => None,
    };
    RemoteBinary {
        machine: field("machine"),
        recorded,
        size: field("size").parse().ok(),
    }
}

/// The Rust architecture name (`std::env::consts::ARCH`) of a `uname -m`.
pub fn arch_of_machine(machine: &str) -> &str {
    match machine {
        "x86_64" | "amd64" => "x86_64",
        "aarch64" | "arm64" | "aarch64_be" | "armv8l" => "aarch64",
        "armv7l" | "armv6l" | "armhf" | "arm" => "arm",
        "i386" | "i486" | "i586" | "i686" => "x86",
        "ppc64le" | "ppc64" => "powerpc64",
        other => other,
    }
}

/// Refuses a binary that cannot run on the host, with what to do instead.
pub fn check_compatible(local: &LocalBinary, remote: &RemoteBinary) -> Result<(), TaskError> {
    let fix = "the stack's stats-exporter runs this deployer's binary on the host: run a \
               deployer built for the host (Linux and its CPU architecture), e.g. the static \
               build `cargo build --release --target <arch>-unknown-linux-musl`, or disable \
               Prometheus (remove `prometheus` from the environment file)";
    if local.os != "linux" {
        return Err(TaskError::BinaryIncompatible {
            task: TASK.into(),
            message: format!(
                "this deployer is a {} binary; the host runs Linux",
                local.os
            ),
            fix: fix.into(),
        });
    }
    let host_arch = arch_of_machine(&remote.machine);
    if host_arch != local.arch {
        return Err(TaskError::BinaryIncompatible {
            task: TASK.into(),
            message: format!(
                "this deployer is built for {}, the host is {} (`uname -m`: {:?})",
                local.arch, host_arch, remote.machine
            ),
            fix: fix.into(),
        });
    }
    Ok(())
}

/// Upload when the host's recorded digest or the binary's size differ from this binary's.
pub fn plan(local: &LocalBinary, remote: &RemoteBinary) -> Plan<()> {
    let same = remote.recorded.as_ref() == Some(&(local.sha256.clone(), local.size))
        && remote.size == Some(local.size);
    if same {
        Plan::Nothing(format!(
            "{} is this binary (sha256 {})",
            layout::DEPLOYER_BIN,
            &local.sha256[..12]
        ))
    } else {
        Plan::Apply(
            (),
            format!(
                "upload this binary ({:.1} MB) to {}",
                local.size as f64 / 1e6,
                layout::DEPLOYER_BIN
            ),
        )
    }
}

/// Streams the binary to the host, checks its sha256 there and puts it in place. Returns what
/// it did, with the time the upload took.
pub async fn apply(host: &dyn Host, local: &LocalBinary) -> Result<String, TaskError> {
    let started = Instant::now();
    let dir = shell_quote(layout::DEPLOYER_BIN_DIR);
    let bin = shell_quote(layout::DEPLOYER_BIN);
    let tmp = shell_quote(&format!("{}.part", layout::DEPLOYER_BIN));
    let rec = shell_quote(&recorded_path());
    let script = format!(
        "set -e; umask 022; mkdir -p {dir}; cat > {tmp}; \
         if [ \"$(sha256sum < {tmp} | cut -d' ' -f1)\" != {sha} ]; then rm -f {tmp}; \
         echo 'the uploaded binary has another sha256' >&2; exit 4; fi; \
         chmod 0755 {tmp}; mv -f {tmp} {bin}; printf '%s %s\\n' {sha} {size} > {rec}",
        sha = shell_quote(&local.sha256),
        size = local.size,
    );
    let file = tokio::fs::File::open(&local.path)
        .await
        .map_err(|e| io_failed("read", &local.path, e))?;
    let out = host
        .sudo_stdin(&script, Stdin::Reader(Box::new(file)), Some(local.size))
        .await?;
    if !out.success() {
        return Err(TaskError::failed(
            TASK,
            format!(
                "placing the binary at {} failed: {}",
                layout::DEPLOYER_BIN,
                out.stderr_str().trim()
            ),
            "check the host's free disk space (`df -h /opt`), then run `release` again",
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "uploaded this binary ({:.1} MB) to {} in {secs:.1} s",
        local.size as f64 / 1e6,
        layout::DEPLOYER_BIN
    ))
}

/// Checks that the host now has this binary.
pub async fn verify(host: &dyn Host, local: &LocalBinary) -> Result<(), TaskError> {
    let now = read(host).await?;
    if plan(local, &now).is_apply() {
        return Err(TaskError::NotVerified {
            task: TASK.into(),
            found: format!(
                "{} records {:?}, size {:?}",
                layout::DEPLOYER_BIN,
                now.recorded,
                now.size
            ),
            fix: "run `release` again".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    fn local() -> LocalBinary {
        LocalBinary {
            path: PathBuf::from("/nonexistent"),
            size: 10,
            sha256: "a".repeat(64),
            os: "linux",
            arch: "x86_64",
        }
    }

    #[test]
    fn a_binary_for_another_os_or_architecture_is_refused_with_the_fix() {
        let remote = parse_facts("machine=aarch64\nrecorded=\nsize=\n");
        let e = check_compatible(&local(), &remote).unwrap_err();
        assert!(matches!(e, TaskError::BinaryIncompatible { .. }));
        assert!(
            e.to_string()
                .contains("built for x86_64, the host is aarch64"),
            "{e}"
        );
        assert!(e.to_string().contains("linux-musl"), "{e}");
        let mac = LocalBinary {
            os: "macos",
            ..local()
        };
        let remote = parse_facts("machine=x86_64\n");
        assert!(check_compatible(&mac, &remote).is_err());
        assert!(check_compatible(&local(), &remote).is_ok());
        assert_eq!(arch_of_machine("arm64"), "aarch64");
    }

    #[test]
    fn only_a_different_digest_or_size_is_uploaded() {
        let sha = "a".repeat(64);
        let same = parse_facts(&format!("machine=x86_64\nrecorded={sha} 10\nsize=10\n"));
        assert!(!plan(&local(), &same).is_apply());
        let other = parse_facts(&format!(
            "machine=x86_64\nrecorded={} 10\nsize=10\n",
            "b".repeat(64)
        ));
        assert!(plan(&local(), &other).is_apply());
        // Replaced behind our back: the size no longer matches the record.
        let changed = parse_facts(&format!("machine=x86_64\nrecorded={sha} 10\nsize=11\n"));
        assert!(plan(&local(), &changed).is_apply());
        let none = parse_facts("machine=x86_64\nrecorded=\nsize=\n");
        assert!(plan(&local(), &none).is_apply());
    }

    #[tokio::test]
    async fn the_upload_streams_the_file_and_checks_its_digest_on_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let local = LocalBinary {
            path: path.clone(),
            size: 10,
            sha256: sha256_file(&path).unwrap(),
            os: "linux",
            arch: "x86_64",
        };
        let host = FakeHost::new();
        host.reply("sha256sum", [Reply::ok("")]);
        let done = apply(&host, &local).await.unwrap();
        assert!(done.contains("uploaded this binary"), "{done}");
        let calls = host.calls();
        let Some(Call::SudoStdin(script, bytes)) = calls.last() else {
            panic!("{calls:?}")
        };
        assert_eq!(bytes, b"0123456789");
        assert!(script.contains(&local.sha256));
        assert!(script.contains(layout::DEPLOYER_BIN));
    }
}
