//! Packages without egress (ADR 39): a directory of `.deb` files with its `Packages` index
//! (`host.offline_packages`) is uploaded to the host as one tar stream and used as the only apt
//! source of configure's install (`deb [trusted=yes] file:... ./`), so a host that reaches
//! nothing but the operator's SSH gets Docker and Compose. The host's own sources are left as
//! they are (and their package lists too), for when it has a mirror again.

use std::path::{Path, PathBuf};

use super::TaskError;
use super::host::{AptRun, apt_install, last_lines};
use crate::host::Host;
use crate::ssh::Stdin;

/// Where the packages go on the host.
pub const REMOTE_DIR: &str = "/var/lib/torrust-deployer/offline-packages";
/// The apt source list naming only that directory (used with `Dir::Etc::sourcelist`).
pub const SOURCE_LIST: &str = "/etc/apt/torrust-offline-packages.list";

const TASK: &str = "packages";

/// The files of a package directory to upload: its `.deb` files and its index. Says why the
/// directory cannot be used.
pub fn check_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot be read: {e}"))?;
    let mut files = Vec::new();
    let mut index = false;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if !path.is_file() {
            continue;
        }
        if name == "Packages" || name == "Packages.gz" {
            index = true;
            files.push(path);
        } else if name.ends_with(".deb") {
            files.push(path);
        }
    }
    files.sort();
    let debs = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".deb"))
        .count();
    if debs == 0 {
        return Err("holds no `.deb` files".into());
    }
    if !index {
        return Err(
            "has no `Packages` or `Packages.gz` index (`dpkg-scanpackages --multiversion . > \
             Packages` in it makes one)"
                .into(),
        );
    }
    Ok(files)
}

/// Uploads the directory's packages to [`REMOTE_DIR`] (replacing what was there) as one tar
/// stream. Returns a note for the report.
pub async fn upload(host: &dyn Host, dir: &Path) -> Result<String, TaskError> {
    let failed = |why: String| {
        TaskError::apt(
            TASK,
            why,
            "check `host.offline_packages` (see docs/user-guide/air-gapped.md)",
        )
    };
    let files = check_dir(dir).map_err(|why| failed(format!("{} {why}", dir.display())))?;
    let scratch = tempfile::NamedTempFile::new().map_err(|e| failed(e.to_string()))?;
    let mut size = 0;
    {
        let mut tar = tar::Builder::new(std::io::BufWriter::new(scratch.as_file()));
        for f in &files {
            let name = f.file_name().expect("a file name");
            tar.append_path_with_name(f, name)
                .map_err(|e| failed(format!("cannot pack {}: {e}", f.display())))?;
            size += std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        }
        tar.into_inner()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(|e| failed(format!("cannot pack {}: {e}", dir.display())))?;
    }
    let file = tokio::fs::File::open(scratch.path())
        .await
        .map_err(|e| failed(e.to_string()))?;
    let total = file.metadata().await.map(|m| m.len()).ok();
    let debs = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".deb"))
        .count();
    crate::events::note(format!(
        "uploading {debs} packages ({:.1} MB) from {}",
        size as f64 / 1e6,
        dir.display()
    ));
    let script = format!(
        "set -e\nrm -rf {REMOTE_DIR}.new\nmkdir -p {REMOTE_DIR}.new\n\
         tar -x --no-same-owner -C {REMOTE_DIR}.new\nrm -rf {REMOTE_DIR}\n\
         mv {REMOTE_DIR}.new {REMOTE_DIR}\nchmod -R a+rX {REMOTE_DIR}\n\
         echo 'deb [trusted=yes] file:{REMOTE_DIR} ./' > {SOURCE_LIST}\n"
    );
    let out = host
        .sudo_stdin(&script, Stdin::Reader(Box::new(file)), total)
        .await?;
    if !out.success() {
        return Err(failed(format!(
            "unpacking the packages on the host failed ({}): {}",
            out.status,
            last_lines(&out.stderr_str(), 8)
        )));
    }
    Ok(format!("{} files uploaded to {REMOTE_DIR}", files.len()))
}

/// apt options that make [`SOURCE_LIST`] the only source, keeping the other sources' lists.
pub fn apt_options() -> String {
    format!(
        "-o Dir::Etc::sourcelist={SOURCE_LIST} -o Dir::Etc::sourceparts=- \
         -o APT::Get::List-Cleanup=0"
    )
}

/// apt options for a proxy on the host's loopback `port` (a remote forward over SSH). Only
/// plain HTTP sources go through it; an `https` source would need `Acquire::https::Proxy` and a
/// proxy that speaks CONNECT.
pub fn proxy_options(port: u16) -> String {
    format!("-o Acquire::http::Proxy=http://127.0.0.1:{port}/")
}

/// One `apt-get update` and one `apt-get install` of `packages` from the uploaded directory
/// only. `--error-on=any`: an unreadable index fails here, not later as a missing package.
pub async fn install(host: &dyn Host, packages: &[String]) -> Result<(), TaskError> {
    let options = apt_options();
    let run = AptRun {
        options: &options,
        update_flags: "--error-on=any",
        what: "apt-get from the offline packages",
        fix: offline_fix,
    };
    apt_install(host, packages, &run).await
}

/// The advice for a failed apt run against the uploaded directory.
fn offline_fix(stderr: &str) -> &'static str {
    if stderr.contains("Unable to locate package")
        || stderr.contains("has no installation candidate")
        || stderr.contains("Depends:")
    {
        "the package directory lacks a package or one of its dependencies: build it again \
         with provisioning/offline/build-deb-dir.sh for the host's release (Debian 12)"
    } else {
        "see the apt output above; fix the cause on the host, then run configure again"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_directory_needs_debs_and_an_index() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            check_dir(&dir.path().join("absent"))
                .unwrap_err()
                .contains("cannot be read")
        );
        assert!(check_dir(dir.path()).unwrap_err().contains("no `.deb`"));
        std::fs::write(dir.path().join("docker.io_20.10.24_amd64.deb"), "x").unwrap();
        std::fs::write(dir.path().join("README"), "x").unwrap();
        assert!(check_dir(dir.path()).unwrap_err().contains("Packages"));
        std::fs::write(dir.path().join("Packages.gz"), "x").unwrap();
        let files = check_dir(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
    }
}
