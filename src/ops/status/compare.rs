//! The host's files and containers against the model: [`file_status`] and
//! [`service_statuses`], pure functions of the probe's answer and the rendered stack.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::stack::{ServiceInfo, StackFile};
use crate::tasks::status_probe::{Container, DockerProbe, RemoteFile};

/// One container of the project, or a service of the model without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// The Compose service (`com.docker.compose.service` label).
    pub service: String,
    /// Whether the model (the environment's compose file) has this service.
    pub expected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Docker's state (`running`, `exited`, `restarting`, `created`, `paused`, `dead`,
    /// `removing`); `missing` when no container exists, `unknown` when Docker is not available.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, `none` (no health check), or `unknown`.
    pub health: String,
    /// Published ports, e.g. `6969/udp`, `127.0.0.1:9090/tcp`, `3100->3000/tcp`.
    pub ports: Vec<String>,
    /// The image the container runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image the model names (absent for a container the model does not have).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_image: Option<String>,
    /// Running, and healthy or without health check; and in the model.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl ServiceStatus {
    /// The container runs another image than the model's.
    pub fn image_differs(&self) -> bool {
        matches!((&self.image, &self.expected_image), (Some(a), Some(b)) if a != b)
    }
}

/// How a file on the host compares with the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Drift {
    Same,
    Differs,
    Missing,
}

impl Drift {
    pub fn as_str(self) -> &'static str {
        match self {
            Drift::Same => "same",
            Drift::Differs => "differs",
            Drift::Missing => "missing",
        }
    }
}

/// What differs in a file that is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    Content,
    Mode,
    Owner,
    /// A symbolic link, a directory or anything else but a regular file.
    NotAFile,
    /// Root could not read it.
    Unreadable,
}

impl Difference {
    pub fn as_str(self) -> &'static str {
        match self {
            Difference::Content => "content",
            Difference::Mode => "mode",
            Difference::Owner => "owner",
            Difference::NotAFile => "not a regular file",
            Difference::Unreadable => "unreadable",
        }
    }
}

/// One file of the model, compared with the host's. Holds no content; a secret file's hashes
/// are left out too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    /// The path on the host.
    pub path: PathBuf,
    pub status: Drift,
    pub differences: Vec<Difference>,
    pub secret: bool,
    /// Octal, e.g. `0644`.
    pub expected_mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `uid:gid`, when the model sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What is there instead of a file (`a symbolic link`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Where the script looks for the file at `host_path`: the path itself, or under the test root.
pub(super) fn probe_path(root: Option<&Path>, host_path: &Path) -> String {
    match root {
        None => host_path.to_string_lossy().into_owned(),
        Some(root) => root
            .join(host_path.strip_prefix("/").unwrap_or(host_path))
            .to_string_lossy()
            .into_owned(),
    }
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(64);
    for b in Sha256::digest(data) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Compares a file of the model with what the host has. A secret file's hashes are not
/// reported (only that its content differs).
pub fn file_status(f: &StackFile, remote: &RemoteFile) -> FileStatus {
    let expected_sha = sha256_hex(&f.contents);
    let want_mode = f.mode & 0o7777;
    let mut s = FileStatus {
        path: f.path.clone(),
        status: Drift::Same,
        differences: Vec::new(),
        secret: f.secret,
        expected_mode: format!("{want_mode:04o}"),
        mode: None,
        expected_owner: f.owner.map(|(u, g)| format!("{u}:{g}")),
        owner: None,
        expected_sha256: (!f.secret).then(|| expected_sha.clone()),
        sha256: None,
        detail: None,
    };
    match remote {
        RemoteFile::Absent => s.status = Drift::Missing,
        RemoteFile::Link | RemoteFile::Other => {
            s.status = Drift::Differs;
            s.differences.push(Difference::NotAFile);
            s.detail = Some(
                if *remote == RemoteFile::Link {
                    "a symbolic link"
                } else {
                    "not a regular file (a directory?)"
                }
                .to_string(),
            );
        }
        RemoteFile::Unreadable => {
            s.status = Drift::Differs;
            s.differences.push(Difference::Unreadable);
        }
        RemoteFile::File {
            sha256,
            mode,
            uid,
            gid,
        } => {
            s.mode = Some(format!("{:04o}", mode & 0o7777));
            s.owner = Some(format!("{uid}:{gid}"));
            if !f.secret {
                s.sha256 = Some(sha256.clone());
            }
            if *sha256 != expected_sha {
                s.differences.push(Difference::Content);
            }
            if mode & 0o7777 != want_mode {
                s.differences.push(Difference::Mode);
            }
            if f.owner.is_some_and(|o| o != (*uid, *gid)) {
                s.differences.push(Difference::Owner);
            }
            if !s.differences.is_empty() {
                s.status = Drift::Differs;
            }
        }
    }
    s
}

/// The model's services against the project's containers: one row per container of a model
/// service (a row saying `missing` when it has none), then the containers of services the model
/// does not have. One-off containers (`compose run`) are not part of the stack and are left out.
pub fn service_statuses(model: &[ServiceInfo], docker: &DockerProbe) -> Vec<ServiceStatus> {
    let containers = match docker {
        DockerProbe::Listed { containers, .. } => containers,
        _ => {
            return model
                .iter()
                .map(|m| ServiceStatus {
                    service: m.name.as_str().to_string(),
                    expected: true,
                    container: None,
                    state: "unknown".to_string(),
                    health: "unknown".to_string(),
                    ports: Vec::new(),
                    image: None,
                    expected_image: Some(m.image.clone()),
                    ok: false,
                    problem: Some("Docker is not available".to_string()),
                })
                .collect();
        }
    };
    let stack: Vec<&Container> = containers.iter().filter(|c| !c.oneoff).collect();
    let mut rows = Vec::new();
    for m in model {
        let name = m.name.as_str();
        let mut found = stack
            .iter()
            .filter(|c| c.service.as_deref() == Some(name))
            .peekable();
        if found.peek().is_none() {
            rows.push(ServiceStatus {
                service: name.to_string(),
                expected: true,
                container: None,
                state: "missing".to_string(),
                health: "none".to_string(),
                ports: Vec::new(),
                image: None,
                expected_image: Some(m.image.clone()),
                ok: false,
                problem: Some("no container: the stack is not started".to_string()),
            });
        }
        for c in found {
            rows.push(container_row(c, Some(&m.image)));
        }
    }
    let mut foreign: Vec<&Container> = stack
        .iter()
        .copied()
        .filter(|c| {
            c.service
                .as_deref()
                .is_none_or(|s| !model.iter().any(|m| m.name.as_str() == s))
        })
        .collect();
    foreign.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    rows.extend(foreign.into_iter().map(|c| container_row(c, None)));
    rows
}

fn container_row(c: &Container, expected_image: Option<&String>) -> ServiceStatus {
    let running = c.state == "running";
    let healthy = matches!(c.health.as_str(), "healthy" | "none");
    let problem = if expected_image.is_none() {
        Some("not in the model (the environment's compose file has no such service)".to_string())
    } else if !running {
        Some(format!("{}, not running", c.state))
    } else if c.health == "starting" {
        Some("running; its health check has not passed yet".to_string())
    } else if !healthy {
        Some(format!("running but {}", c.health))
    } else {
        None
    };
    ServiceStatus {
        service: c.service.clone().unwrap_or_else(|| c.name.clone()),
        expected: expected_image.is_some(),
        container: Some(c.name.clone()),
        state: c.state.clone(),
        health: c.health.clone(),
        ports: c.ports.clone(),
        image: Some(c.image.clone()),
        expected_image: expected_image.cloned(),
        ok: problem.is_none(),
        problem,
    }
}
