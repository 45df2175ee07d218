//! `render`: writes the files `release` would upload, under a local directory that mirrors the
//! host's paths, with the same modes. Offline: no host, no network.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::OpsError;
use crate::config::{self, EnvironmentConfig};
use crate::stack::{self, Endpoints, FileRole, ServiceInfo};
use crate::state::{DataDir, fsutil};

/// Where the configuration comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A stored environment (its validated configuration, generated secrets included).
    Environment(&'a str),
    /// An environment file, validated as `create environment` would.
    File(&'a Path),
}

/// What `render` wrote. Holds no secret.
#[derive(Debug, Serialize)]
pub struct Rendered {
    pub environment: String,
    pub instance_ip: IpAddr,
    pub output_dir: PathBuf,
    pub files: Vec<RenderedFile>,
    pub dirs: Vec<RenderedDir>,
    /// The images the compose file uses.
    pub images: Vec<String>,
    pub services: Vec<ServiceInfo>,
    pub endpoints: Endpoints,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RenderedFile {
    /// The path on the host.
    pub host_path: PathBuf,
    /// Where it was written.
    pub path: PathBuf,
    /// Octal, e.g. `0600`.
    pub mode: String,
    /// The owner it gets on the host (not applied locally); absent: the uploading user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub secret: bool,
    pub bytes: usize,
    pub role: FileRole,
}

#[derive(Debug, Serialize)]
pub struct RenderedDir {
    pub host_path: PathBuf,
    pub path: PathBuf,
    pub mode: String,
    pub owner: Owner,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

pub(crate) fn load(
    data: &DataDir,
    source: Source<'_>,
) -> Result<(EnvironmentConfig, Vec<String>), OpsError> {
    match source {
        Source::Environment(name) => Ok((data.load(name)?.config, Vec::new())),
        Source::File(path) => {
            let loaded = config::load(path)?;
            let mut warnings = loaded.warnings;
            let mut config = loaded.config;
            if config.fill_generated_secrets() {
                warnings.push(
                    "tracker.core.database.root_password is not set: this render uses a random \
                     one (`create environment` generates one and keeps it; render with \
                     --env-name to see the stored one)"
                        .to_string(),
                );
            }
            Ok((config, warnings))
        }
    }
}

/// `host_path` (absolute) under `root`.
fn local_path(root: &Path, host_path: &Path) -> PathBuf {
    let rel: PathBuf = host_path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    root.join(rel)
}

/// Refuses to write through a symbolic link below `root`: the output must stay in it.
fn check_no_symlink(root: &Path, target: &Path) -> Result<(), OpsError> {
    let rel = target.strip_prefix(root).unwrap_or(target);
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(OpsError::Refused(format!(
                    "{} is a symbolic link; render writes only real files and directories \
                     under the output directory",
                    p.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => {
                return Err(OpsError::Io {
                    context: format!("cannot inspect {}", p.display()),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

fn check_output_dir(dir: &Path, force: bool) -> Result<(), OpsError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => Err(OpsError::Refused(format!(
            "{} exists and is not a directory; choose a directory for --output-dir",
            dir.display()
        ))),
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(OpsError::io(format!(
                "cannot read the output directory {}",
                dir.display()
            )))?;
            if entries.next().is_some() && !force {
                return Err(OpsError::Refused(format!(
                    "the output directory {} is not empty; pass --force to write into it (the \
                     stack's files are overwritten, other files are left alone), or choose an \
                     empty or new directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OpsError::Io {
            context: format!("cannot inspect the output directory {}", dir.display()),
            source: e,
        }),
    }
}

/// Renders the stack of `source` for the host at `instance_ip` into `output_dir`.
pub fn render(
    data: &DataDir,
    source: Source<'_>,
    instance_ip: IpAddr,
    output_dir: &Path,
    force: bool,
) -> Result<Rendered, OpsError> {
    let (config, warnings) = load(data, source)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let stack = stack::render(&config)
        .map_err(|e| OpsError::Refused(format!("cannot render the stack: {e}")))?;
    check_output_dir(output_dir, force)?;
    fs::create_dir_all(output_dir).map_err(OpsError::io(format!(
        "cannot create the output directory {}",
        output_dir.display()
    )))?;

    let mut dirs = Vec::new();
    for d in &stack.dirs {
        let path = local_path(output_dir, &d.path);
        check_no_symlink(output_dir, &path)?;
        fs::create_dir_all(&path)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(d.mode)))
            .map_err(OpsError::io(format!("cannot create {}", path.display())))?;
        dirs.push(RenderedDir {
            host_path: d.path.clone(),
            path,
            mode: format!("{:04o}", d.mode),
            owner: Owner {
                uid: d.uid,
                gid: d.gid,
            },
        });
    }
    let mut files = Vec::new();
    for f in &stack.files {
        let path = local_path(output_dir, &f.path);
        check_no_symlink(output_dir, &path)?;
        fsutil::write_atomic(&path, &f.contents, f.mode)
            .map_err(OpsError::io(format!("cannot write {}", path.display())))?;
        tracing::debug!("wrote {} ({:04o})", path.display(), f.mode);
        files.push(RenderedFile {
            host_path: f.path.clone(),
            path,
            mode: format!("{:04o}", f.mode),
            owner: f.owner.map(|(uid, gid)| Owner { uid, gid }),
            secret: f.secret,
            bytes: f.contents.len(),
            role: f.role.clone(),
        });
    }
    Ok(Rendered {
        environment: config.name().to_string(),
        instance_ip,
        output_dir: output_dir.to_path_buf(),
        files,
        dirs,
        images: stack.images,
        endpoints: stack::endpoints(&config, instance_ip),
        services: stack.services,
        warnings,
    })
}
