//! `status ENV`: a live, read-only view of the deployed stack, compared with the model.
//!
//! One SSH connection, one round trip: a script run as root (through `sudo -n` unless the SSH
//! user is root) prints, for every file [`stack::render`] would upload, its sha256, mode and
//! owner (or that it is absent, a link, something else), then the containers of the Compose
//! project as `docker ps -a --filter label=com.docker.compose.project=torrust --format
//! '{{json .}}'` lists them. Only `docker` and the labels Compose puts on its containers are
//! used, so Compose v1 (`docker-compose` 1.29) and v2 (`docker compose`) look the same. Without
//! a working Docker the files are still compared.
//!
//! Everything after the round trip is pure: [`parse_probe`] reads the script's output,
//! [`file_status`] and [`service_statuses`] (in `compare.rs`) compare it with the model,
//! [`assemble`] adds the
//! summary and the hints. Nothing changes on the host or in the state; no secret is read back
//! (only hashes are compared, and those of secret files are never reported).
//!
//! For tests only, [`StatusOptions::files_root`] (the CLI reads it from [`ROOT_ENV`]) reads
//! the host's files under another directory, and prefers a `docker` in its `usr/bin`: the
//! tests run a real sshd on this machine, whose `/opt/torrust` and `/etc/cron.d` must not be
//! touched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

mod compare;

use compare::probe_path;
pub use compare::{Difference, Drift, FileStatus, ServiceStatus, file_status, service_statuses};

use super::OpsError;
use super::host::ssh_target;
use crate::ssh::{ConnectOptions, PassphraseSource, Session};
use crate::stack::{self, Service, layout};
use crate::state::{DataDir, EnvironmentState, HostRecord, Lifecycle};
use crate::tasks::status_probe;
pub use crate::tasks::status_probe::{
    Container, DockerProbe, Probe, RemoteFile, parse_container, parse_probe,
};

/// The environment variable that moves the host's files under a directory, for tests (see the
/// module documentation). Read by the CLI of `status` only.
pub const ROOT_ENV: &str = "TORRUST_DEPLOYER_STATUS_ROOT";

pub use crate::tasks::status_probe::{DOCKER_TIMEOUT_SECS, script as probe_script};

#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// How long to keep trying to reach the host over SSH.
    pub ssh_timeout: Duration,
    /// Tests only: read the host's files under this directory (`DIR/opt/torrust/...`), and use
    /// `DIR/usr/bin/docker` when there is one. `None`: the real paths.
    pub files_root: Option<PathBuf>,
}

/// The view `status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    /// `user@ip:port`.
    pub host: String,
    pub lifecycle: Lifecycle,
    /// Set only when the files were read under a test directory ([`ROOT_ENV`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_root: Option<PathBuf>,
    pub docker: Docker,
    /// The model's services in its order (one row per container), then containers of the
    /// project that the model does not have.
    pub services: Vec<ServiceStatus>,
    /// Every file of the model, in its order.
    pub files: Vec<FileStatus>,
    pub summary: Summary,
    /// Docker answers, every service runs (and is healthy where it has a health check), no
    /// container is foreign to the model, and every file matches: what `--check` tests.
    pub ok: bool,
    /// What to run about what differs.
    pub hints: Vec<String>,
    /// Services whose mounted files a release changed and that `run` has not restarted yet:
    /// they still run the old configuration (`--check` counts it as a problem).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_restarts: Vec<String>,
    /// The maintenance lock, while one is held (`lock ENV acquire`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<super::maintenance::MaintenanceView>,
    /// Prometheus's scrape targets and their health, when the stack has Prometheus and it runs
    /// (a target not up, or an exporter without statistics, is a problem for `--check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<super::monitoring::MonitoringStatus>,
    pub ssh_connections: u32,
    pub elapsed_ms: u64,
}

/// Whether Docker answered on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Docker {
    Available,
    /// No `docker` command.
    NotInstalled,
    /// `docker ps` failed: the daemon is stopped, or did not answer.
    Unavailable {
        detail: String,
    },
}

impl Docker {
    pub fn is_available(&self) -> bool {
        *self == Docker::Available
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Docker::Available => "available".to_string(),
            Docker::NotInstalled => "not installed (no `docker` command on the host)".to_string(),
            Docker::Unavailable { detail } => format!("not available: {detail}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Services of the model.
    pub services: usize,
    /// Services of the model whose containers are all ok.
    pub services_ok: usize,
    /// Containers of the project whose service the model does not have.
    pub unexpected_containers: usize,
    pub files: usize,
    pub files_same: usize,
    /// Files that are there but differ.
    pub files_differ: usize,
    pub files_missing: usize,
}

impl Summary {
    /// How many things `--check` counts as wrong.
    pub fn problems(&self) -> usize {
        (self.services - self.services_ok)
            + self.unexpected_containers
            + self.files_differ
            + self.files_missing
    }
}

impl DockerProbe {
    pub fn docker(&self) -> Docker {
        match self {
            DockerProbe::NotInstalled => Docker::NotInstalled,
            DockerProbe::Listed { .. } => Docker::Available,
            DockerProbe::Failed { code: 124, .. } => Docker::Unavailable {
                detail: format!("`docker ps` did not answer within {DOCKER_TIMEOUT_SECS} s"),
            },
            DockerProbe::Failed { code, output } => {
                let last = output
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty())
                    .unwrap_or("");
                Docker::Unavailable {
                    detail: if last.is_empty() {
                        format!("`docker ps` failed (exit code {code})")
                    } else {
                        last.to_string()
                    },
                }
            }
        }
    }
}

/// Shows the environment's stack as it runs on its host, compared with the model.
pub async fn status(
    data: &DataDir,
    env: &str,
    options: &StatusOptions,
) -> Result<Status, OpsError> {
    let started = Instant::now();
    // No lock: status reads the state (written atomically) and changes nothing, so it may run
    // while another command works on the environment.
    let state = data.load(env)?;
    let host = host_to_look_at(&state)?;
    let rendered = stack::render(&state.config).map_err(|e| {
        OpsError::Failed(format!(
            "cannot build the stack from the environment's configuration: {e}"
        ))
    })?;
    let root = options.files_root.as_deref();
    let paths: Vec<String> = rendered
        .files
        .iter()
        .map(|f| probe_path(root, &f.path))
        .collect();
    let docker_dir = root.map(|r| r.join("usr/bin").to_string_lossy().into_owned());
    let script = probe_script(&paths, layout::COMPOSE_PROJECT_NAME, docker_dir.as_deref());

    let target = ssh_target(data, &state, &host.ip, host.ssh_port);
    let connect_options = ConnectOptions {
        retry_deadline: options.ssh_timeout,
        passphrase: PassphraseSource::default(),
        // The state's record is the pin when known_hosts was lost.
        expected_host_key: host.host_key.clone(),
        ..ConnectOptions::default()
    };
    let session = Session::connect(&target, &connect_options)
        .await
        .map_err(|e| {
            OpsError::Failed(format!(
                "status: cannot reach the host of environment '{env}': {e}"
            ))
        })?;
    let out = status_probe::run(&session, &script).await;
    // Under a test root the host is a stand-in without Prometheus: its targets are not asked.
    let monitoring = match &out {
        Ok(_) if root.is_none() => super::monitoring::targets_status(&session, &state).await,
        _ => None,
    };
    session.close().await;
    let out = out.map_err(|e| OpsError::Failed(format!("status: {e}")))?;
    let probe = parse_probe(&out.stdout_str(), paths.len()).map_err(|why| {
        let stderr = out.stderr_str();
        OpsError::Failed(format!(
            "status: the status script did not complete on {} ({}): {why}{}. It runs as root \
             (through `sudo -n` unless the SSH user is root); `torrust-tracker-deployer \
             configure {env}` sets the host up for that",
            target.display(),
            out.status,
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", stderr.trim())
            }
        ))
    })?;
    tracing::debug!("status of '{env}': {probe:?}");

    let files = rendered
        .files
        .iter()
        .zip(&probe.files)
        .map(|(f, r)| file_status(f, r))
        .collect();
    let services = service_statuses(&rendered.services, &probe.docker);
    let mut status = assemble(
        env,
        probe.docker.docker(),
        services,
        files,
        started.elapsed(),
    );
    status.host = target.display();
    add_state_notes(&mut status, &state);
    status.files_root = options.files_root.clone();
    status.maintenance = super::maintenance::view(data, env);
    add_monitoring(&mut status, monitoring);
    Ok(status)
}

/// Prometheus's targets: one not up (or an exporter without statistics) makes `ok` false and
/// says so; a Prometheus that is not running is already reported as a service.
fn add_monitoring(status: &mut Status, monitoring: Option<super::monitoring::MonitoringStatus>) {
    let prometheus_runs = status
        .services
        .iter()
        .any(|s| s.service == Service::Prometheus.as_str() && s.ok);
    if let Some(m) = &monitoring
        && let Some(problem) = &m.problem
        && prometheus_runs
    {
        status.ok = false;
        status
            .hints
            .push(format!("monitoring collects nothing: {problem}"));
    }
    status.monitoring = monitoring;
}

/// The host `status` looks at, or why there is none.
fn host_to_look_at(state: &EnvironmentState) -> Result<HostRecord, OpsError> {
    let env = &state.name;
    match (&state.host, state.lifecycle) {
        (_, Lifecycle::Destroyed) => Err(OpsError::Refused(format!(
            "environment '{env}' is destroyed, so it has no host to look at; create one with \
             `torrust-tracker-deployer provision {env}` (or `deploy {env}`)"
        ))),
        (Some(h), _) if !h.ip.is_empty() && h.host_key.is_some() => Ok(h.clone()),
        _ => Err(OpsError::Refused(format!(
            "environment '{env}' has no host yet (state '{}'); create one with \
             `torrust-tracker-deployer provision {env}` (or `deploy {env}`), or adopt one with \
             `register`",
            state.lifecycle
        ))),
    }
}

/// What the state adds to the view: the lifecycle, a stopped stack, restarts still owed.
fn add_state_notes(status: &mut Status, state: &EnvironmentState) {
    let env = &state.name;
    status.lifecycle = state.lifecycle;
    if state.lifecycle == Lifecycle::Stopped {
        status.hints.insert(
            0,
            format!("the stack was stopped with `stop`: `torrust-tracker-deployer start {env}` starts it"),
        );
    }
    if !state.pending_restarts.is_empty() {
        status.ok = false;
        status.hints.push(format!(
            "files a release changed are not applied yet: `torrust-tracker-deployer run {env}` \
             restarts {}",
            state.pending_restarts.join(", ")
        ));
        status.pending_restarts = state.pending_restarts.clone();
    }
}

/// Puts the view together: summary, `ok` and hints. `host` and `lifecycle` are left for the
/// caller (`""`, `created`).
pub fn assemble(
    env: &str,
    docker: Docker,
    services: Vec<ServiceStatus>,
    files: Vec<FileStatus>,
    elapsed: Duration,
) -> Status {
    let expected: BTreeMap<&str, bool> =
        services
            .iter()
            .filter(|s| s.expected)
            .fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s.service.as_str()).or_insert(true) &= s.ok;
                m
            });
    let summary = Summary {
        services: expected.len(),
        services_ok: expected.values().filter(|ok| **ok).count(),
        unexpected_containers: services.iter().filter(|s| !s.expected).count(),
        files: files.len(),
        files_same: files.iter().filter(|f| f.status == Drift::Same).count(),
        files_differ: files.iter().filter(|f| f.status == Drift::Differs).count(),
        files_missing: files.iter().filter(|f| f.status == Drift::Missing).count(),
    };
    let ok = docker.is_available() && summary.problems() == 0;

    let hints = hints(env, &docker, &services, &summary);
    Status {
        name: env.to_string(),
        host: String::new(),
        lifecycle: Lifecycle::Created,
        files_root: None,
        docker,
        services,
        files,
        summary,
        ok,
        hints,
        pending_restarts: Vec::new(),
        maintenance: None,
        monitoring: None,
        ssh_connections: 1,
        elapsed_ms: elapsed.as_millis() as u64,
    }
}

/// What to run about what differs.
fn hints(env: &str, docker: &Docker, services: &[ServiceStatus], summary: &Summary) -> Vec<String> {
    let cmd = |c: &str| format!("`torrust-tracker-deployer {c} {env}`");
    let mut hints = Vec::new();
    match docker {
        Docker::Available => {}
        Docker::NotInstalled => hints.push(format!(
            "Docker is not installed on the host: {} installs it",
            cmd("configure")
        )),
        Docker::Unavailable { .. } => hints.push(format!(
            "Docker is not available on the host: {} installs and starts it",
            cmd("configure")
        )),
    }
    if summary.files_differ + summary.files_missing > 0 {
        hints.push(format!(
            "the host's files differ from the model: {} applies the files",
            cmd("release")
        ));
    }
    if docker.is_available() {
        let mut down: Vec<&str> = services
            .iter()
            .filter(|s| s.expected && !s.ok)
            .map(|s| s.service.as_str())
            .collect();
        down.dedup();
        let unhealthy = services
            .iter()
            .any(|s| s.expected && s.health == "unhealthy");
        if !down.is_empty() {
            hints.push(format!(
                "not running or not healthy: {}; {} starts the stack{}",
                down.join(", "),
                cmd("run"),
                if unhealthy {
                    " (for an unhealthy one, read `docker logs CONTAINER` on the host first)"
                } else {
                    ""
                }
            ));
        } else if services.iter().any(ServiceStatus::image_differs) {
            hints.push(format!(
                "containers run other images than the model's: {} recreates them",
                cmd("run")
            ));
        }
        let foreign: Vec<&str> = services
            .iter()
            .filter(|s| !s.expected)
            .map(|s| s.container.as_deref().unwrap_or(&s.service))
            .collect();
        if !foreign.is_empty() {
            hints.push(format!(
                "containers of the project that the model does not have ({}): left from an \
                 earlier configuration? Remove them on the host with `docker rm -f NAME`",
                foreign.join(", ")
            ));
        }
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::compare::sha256_hex;
    use super::*;
    use crate::stack::{FileRole, HealthProbe, PublishedPort, Service};
    use crate::stack::{ServiceInfo, StackFile};
    use crate::tasks::status_probe::{parse_labels, parse_ports, state_from_status};
    use std::path::Path;

    // Real `docker ps -a --format '{{json .}}'` lines, Docker 20.10 (keys Command, CreatedAt,
    // ID, Image, Labels, LocalVolumes, Mounts, Names, Networks, Ports, RunningFor, Size, State,
    // Status; Go's JSON escapes `>` as \u003e), from a stack started by docker-compose 1.29.
    const PS_TRACKER_V1: &str = r#"{"Command":"\"/usr/local/bin/entr…\"","CreatedAt":"2024-03-12 10:41:07 +0000 UTC","ID":"4f2a9c1d7e3b","Image":"torrust/tracker:develop","Labels":"com.docker.compose.config-hash=0b9e8f1c2d3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678,com.docker.compose.container-number=1,com.docker.compose.oneoff=False,com.docker.compose.project=torrust,com.docker.compose.project.config_files=/opt/torrust/docker-compose.yml,com.docker.compose.project.working_dir=/opt/torrust,com.docker.compose.service=tracker,com.docker.compose.version=1.29.2","LocalVolumes":"0","Mounts":"/opt/torrust/s…,/opt/torrust/s…,/opt/torrust/s…","Names":"torrust_tracker_1","Networks":"torrust_backend_network","Ports":"0.0.0.0:1212-\u003e1212/tcp, :::1212-\u003e1212/tcp, 0.0.0.0:7070-\u003e7070/tcp, :::7070-\u003e7070/tcp, 1313/tcp, 0.0.0.0:6969-\u003e6969/udp, :::6969-\u003e6969/udp","RunningFor":"2 minutes ago","Size":"0B","State":"running","Status":"Up 2 minutes (healthy)"}"#;
    const PS_PROMETHEUS_V1: &str = r#"{"Command":"\"/bin/prometheus --c…\"","CreatedAt":"2024-03-12 10:41:06 +0000 UTC","ID":"9b8c7d6e5f4a","Image":"prom/prometheus:v3.0.1","Labels":"com.docker.compose.config-hash=5c3e1a9f7b2d4e6a8c0e2f4a6b8d0f2a4c6e8a0b2d4f6a8c0e2b4d6f8a0c2e4f,com.docker.compose.container-number=1,com.docker.compose.oneoff=False,com.docker.compose.project=torrust,com.docker.compose.project.config_files=/opt/torrust/docker-compose.yml,com.docker.compose.project.working_dir=/opt/torrust,com.docker.compose.service=prometheus,com.docker.compose.version=1.29.2,maintainer=The Prometheus Authors <prometheus-developers@googlegroups.com>,org.opencontainers.image.source=https://github.com/prometheus/prometheus","LocalVolumes":"0","Mounts":"/opt/torrust/s…,/opt/torrust/s…","Names":"torrust_prometheus_1","Networks":"torrust_metrics_network","Ports":"127.0.0.1:9090-\u003e9090/tcp","RunningFor":"2 minutes ago","Size":"0B","State":"exited","Status":"Exited (2) 40 seconds ago"}"#;
    // Compose v2 (`docker compose`), Docker 24: names with `-`, IPv6 as `[::]`, `depends_on`
    // values holding commas.
    const PS_MYSQL_V2: &str = r#"{"Command":"\"docker-entrypoint.s…\"","CreatedAt":"2024-05-02 08:12:44 +0000 UTC","ID":"c0ffee123456","Image":"mysql:8.4","Labels":"com.docker.compose.config-hash=aa11bb22cc33dd44ee55ff6677889900aabbccddeeff00112233445566778899,com.docker.compose.container-number=1,com.docker.compose.depends_on=,com.docker.compose.image=sha256:5f2b1c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c,com.docker.compose.oneoff=False,com.docker.compose.project=torrust,com.docker.compose.project.config_files=/opt/torrust/docker-compose.yml,com.docker.compose.project.working_dir=/opt/torrust,com.docker.compose.service=mysql,com.docker.compose.version=2.24.6","LocalVolumes":"0","Mounts":"/opt/torrust/s…","Names":"torrust-mysql-1","Networks":"torrust_database_network","Ports":"3306/tcp, 33060/tcp","RunningFor":"15 seconds ago","Size":"0B","State":"running","Status":"Up 14 seconds (health: starting)"}"#;
    const PS_GRAFANA_V2: &str = r#"{"Command":"\"/run.sh\"","CreatedAt":"2024-05-02 08:12:44 +0000 UTC","ID":"0a1b2c3d4e5f","Image":"grafana/grafana:11.4.0","Labels":"com.docker.compose.config-hash=0011,com.docker.compose.container-number=1,com.docker.compose.depends_on=prometheus:service_started:false,tracker:service_healthy:false,com.docker.compose.oneoff=False,com.docker.compose.project=torrust,com.docker.compose.service=grafana,com.docker.compose.version=2.24.6","LocalVolumes":"0","Mounts":"/opt/torrust/s…","Names":"torrust-grafana-1","Networks":"torrust_metrics_network","Ports":"0.0.0.0:3100-\u003e3000/tcp, [::]:3100-\u003e3000/tcp","RunningFor":"15 seconds ago","Size":"0B","State":"restarting","Status":"Restarting (1) 3 seconds ago"}"#;

    #[test]
    fn parses_a_compose_v1_container_of_docker_20_10() {
        let c = parse_container(PS_TRACKER_V1).unwrap();
        assert_eq!(c.id, "4f2a9c1d7e3b");
        assert_eq!(c.name, "torrust_tracker_1");
        assert_eq!(c.image, "torrust/tracker:develop");
        assert_eq!(c.service.as_deref(), Some("tracker"));
        assert!(!c.oneoff);
        assert_eq!(c.state, "running");
        assert_eq!(c.health, "healthy");
        assert_eq!(c.ports, ["1212/tcp", "7070/tcp", "6969/udp"]);

        let p = parse_container(PS_PROMETHEUS_V1).unwrap();
        assert_eq!(p.state, "exited");
        assert_eq!(p.health, "none");
        assert_eq!(p.ports, ["127.0.0.1:9090/tcp"]);
    }

    #[test]
    fn parses_compose_v2_containers() {
        let m = parse_container(PS_MYSQL_V2).unwrap();
        assert_eq!(m.service.as_deref(), Some("mysql"));
        assert_eq!(m.name, "torrust-mysql-1");
        assert_eq!(m.health, "starting");
        assert!(m.ports.is_empty(), "{:?}", m.ports);
        let g = parse_container(PS_GRAFANA_V2).unwrap();
        assert_eq!(g.service.as_deref(), Some("grafana"), "depends_on commas");
        assert_eq!(g.state, "restarting");
        assert_eq!(g.ports, ["3100->3000/tcp"]);
    }

    #[test]
    fn state_and_health_come_from_status_without_state() {
        let line = r#"{"ID":"1","Image":"i","Names":"n","Status":"Up 5 minutes (unhealthy)","Labels":"com.docker.compose.service=tracker"}"#;
        let c = parse_container(line).unwrap();
        assert_eq!(
            (c.state.as_str(), c.health.as_str()),
            ("running", "unhealthy")
        );
        assert_eq!(state_from_status("Up 2 hours (Paused)"), "paused");
        assert_eq!(state_from_status("Exited (0) 2 days ago"), "exited");
        assert_eq!(state_from_status("Created"), "created");
        assert_eq!(
            state_from_status("Restarting (1) 2 seconds ago"),
            "restarting"
        );
        // Newer Docker's HealthStatus wins over the Status text.
        let line = r#"{"ID":"1","Image":"i","Names":"n","State":"running","Status":"Up 1 second","HealthStatus":"starting","Labels":""}"#;
        assert_eq!(parse_container(line).unwrap().health, "starting");
        assert!(parse_container("WARNING: something").is_err());
        assert!(parse_container(r#"{"ID":"1"}"#).is_err());
    }

    #[test]
    fn labels_keep_commas_inside_values() {
        let l = parse_labels("a=1,b=/x.yml,/y.yml,c=d:e:f,g:h:i,com.docker.compose.oneoff=True");
        assert_eq!(l["b"], "/x.yml,/y.yml");
        assert_eq!(l["c"], "d:e:f,g:h:i");
        assert_eq!(l["com.docker.compose.oneoff"], "True");
        assert!(parse_labels("").is_empty());
    }

    #[test]
    fn ports_are_deduplicated_and_compact() {
        assert_eq!(
            parse_ports(
                "0.0.0.0:80->80/tcp, :::80->80/tcp, 0.0.0.0:443->443/udp, [::1]:8080->80/tcp, 9000/tcp"
            ),
            ["80/tcp", "443/udp", "[::1]:8080->80/tcp"]
        );
        assert!(parse_ports("").is_empty());
    }

    fn script_output(files: &[&str], docker: &str) -> String {
        let mut s = String::new();
        for (i, f) in files.iter().enumerate() {
            s.push_str(&format!("F {i} {f}\n"));
        }
        s.push_str(docker);
        s.push_str("E end\n");
        s
    }

    #[test]
    fn probe_output_is_parsed() {
        let sha = "ab".repeat(32);
        let out = script_output(
            &[&format!("file {sha} 644 0 0"), "absent", "link"],
            &format!("D exit 0\nC {PS_TRACKER_V1}\nC WARNING: No swap limit support\nC \n"),
        );
        let p = parse_probe(&out, 3).unwrap();
        assert_eq!(
            p.files,
            [
                RemoteFile::File {
                    sha256: sha,
                    mode: 0o644,
                    uid: 0,
                    gid: 0
                },
                RemoteFile::Absent,
                RemoteFile::Link
            ]
        );
        let DockerProbe::Listed {
            containers,
            warnings,
        } = p.docker
        else {
            panic!("{:?}", p.docker)
        };
        assert_eq!(containers.len(), 1);
        assert_eq!(warnings, ["WARNING: No swap limit support"]);
    }

    #[test]
    fn docker_failures_are_told_apart() {
        let out = script_output(&[], "D missing\n");
        assert_eq!(
            parse_probe(&out, 0).unwrap().docker.docker(),
            Docker::NotInstalled
        );
        let out = script_output(
            &[],
            "D exit 1\nC Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
        );
        assert_eq!(
            parse_probe(&out, 0).unwrap().docker.docker(),
            Docker::Unavailable {
                detail: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?".into()
            }
        );
        let out = script_output(&[], "D exit 124\nC \n");
        assert!(matches!(
            parse_probe(&out, 0).unwrap().docker.docker(),
            Docker::Unavailable { detail } if detail.contains("did not answer")
        ));
    }

    #[test]
    fn incomplete_or_foreign_output_is_refused() {
        // sudo refused: nothing of ours.
        assert!(parse_probe("sudo: a password is required\n", 1).is_err());
        // A file without a finding.
        assert!(parse_probe(&script_output(&[], "D missing\n"), 1).is_err());
        // Cut short.
        assert!(parse_probe("F 0 absent\nD missing\n", 1).is_err());
        // Index out of range, bad checksum.
        assert!(parse_probe(&script_output(&["absent", "absent"], "D missing\n"), 1).is_err());
        assert!(parse_probe(&script_output(&["file xyz 644 0 0"], "D missing\n"), 1).is_err());
    }

    /// The script as `sh` runs it, against real files (and without Docker on PATH).
    #[test]
    fn the_script_runs_under_sh() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("it's here.yml");
        std::fs::write(&present, b"hello\n").unwrap();
        std::os::unix::fs::symlink(&present, dir.path().join("link")).unwrap();
        let paths: Vec<String> = [
            present.clone(),
            dir.path().join("absent"),
            dir.path().join("link"),
            dir.path().to_path_buf(),
        ]
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
        // An empty directory first on PATH, and the rest without docker: only sh builtins and
        // coreutils are needed for the files.
        let script = probe_script(&paths, "torrust", Some(&dir.path().to_string_lossy()));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let p = parse_probe(&stdout, 4).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
        let RemoteFile::File { sha256, mode, .. } = &p.files[0] else {
            panic!("{:?}", p.files)
        };
        assert_eq!(*sha256, sha256_hex(b"hello\n"));
        use std::os::unix::fs::PermissionsExt;
        let want = std::fs::metadata(&present).unwrap().permissions().mode() & 0o7777;
        assert_eq!(*mode, want);
        assert_eq!(
            p.files[1..],
            [RemoteFile::Absent, RemoteFile::Link, RemoteFile::Other]
        );
    }

    fn stack_file(path: &str, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> StackFile {
        StackFile {
            path: PathBuf::from(path),
            contents: contents.to_vec(),
            mode,
            owner,
            secret: false,
            role: FileRole::Compose,
        }
    }

    #[test]
    fn drift_of_content_mode_and_owner() {
        let f = stack_file("/opt/torrust/x", b"abc", 0o640, Some((1000, 1000)));
        let same = RemoteFile::File {
            sha256: sha256_hex(b"abc"),
            mode: 0o640,
            uid: 1000,
            gid: 1000,
        };
        let s = file_status(&f, &same);
        assert_eq!(s.status, Drift::Same);
        assert!(s.differences.is_empty());
        assert_eq!(s.expected_mode, "0640");
        assert_eq!(s.owner.as_deref(), Some("1000:1000"));

        let all = RemoteFile::File {
            sha256: sha256_hex(b"abd"),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let s = file_status(&f, &all);
        assert_eq!(s.status, Drift::Differs);
        assert_eq!(
            s.differences,
            [Difference::Content, Difference::Mode, Difference::Owner]
        );
        assert_eq!(file_status(&f, &RemoteFile::Absent).status, Drift::Missing);
        assert_eq!(
            file_status(&f, &RemoteFile::Link).differences,
            [Difference::NotAFile]
        );

        // No owner in the model: whoever owns it is fine.
        let f = stack_file("/opt/torrust/y", b"abc", 0o644, None);
        let s = file_status(
            &f,
            &RemoteFile::File {
                sha256: sha256_hex(b"abc"),
                mode: 0o100644,
                uid: 1001,
                gid: 1001,
            },
        );
        assert_eq!(s.status, Drift::Same, "{s:?}");
    }

    #[test]
    fn secret_files_report_no_hash() {
        let mut f = stack_file("/opt/torrust/.env", b"TOKEN=s3cr3t\n", 0o600, None);
        f.secret = true;
        let s = file_status(
            &f,
            &RemoteFile::File {
                sha256: sha256_hex(b"TOKEN=other\n"),
                mode: 0o600,
                uid: 0,
                gid: 0,
            },
        );
        assert_eq!(s.differences, [Difference::Content]);
        assert_eq!((s.sha256, s.expected_sha256), (None, None));
        let json = serde_json::to_string(&file_status(&f, &RemoteFile::Absent)).unwrap();
        assert!(
            !json.contains("s3cr3t") && !json.contains("sha256"),
            "{json}"
        );
    }

    fn model() -> Vec<ServiceInfo> {
        let svc = |name, image: &str| ServiceInfo {
            name,
            image: image.to_string(),
            ports: Vec::<PublishedPort>::new(),
            health: HealthProbe::Running,
        };
        vec![
            svc(Service::Tracker, "torrust/tracker:develop"),
            svc(Service::Mysql, "mysql:8.4"),
            svc(Service::Prometheus, "prom/prometheus:v3.0.1"),
        ]
    }

    fn listed(lines: &[&str]) -> DockerProbe {
        DockerProbe::Listed {
            containers: lines.iter().map(|l| parse_container(l).unwrap()).collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn services_against_containers() {
        let rows = service_statuses(
            &model(),
            &listed(&[PS_GRAFANA_V2, PS_PROMETHEUS_V1, PS_TRACKER_V1]),
        );
        let view: Vec<(&str, bool, &str, bool)> = rows
            .iter()
            .map(|r| (r.service.as_str(), r.expected, r.state.as_str(), r.ok))
            .collect();
        assert_eq!(
            view,
            [
                ("tracker", true, "running", true),
                ("mysql", true, "missing", false),
                ("prometheus", true, "exited", false),
                ("grafana", false, "restarting", false),
            ]
        );
        assert!(rows[1].problem.as_deref().unwrap().contains("no container"));
        assert!(
            rows[3]
                .problem
                .as_deref()
                .unwrap()
                .contains("not in the model")
        );

        let status = assemble("e", Docker::Available, rows, Vec::new(), Duration::ZERO);
        assert_eq!(status.summary.services, 3);
        assert_eq!(status.summary.services_ok, 1);
        assert_eq!(status.summary.unexpected_containers, 1);
        assert_eq!(status.summary.problems(), 3);
        assert!(!status.ok);
        let hints = status.hints.join("\n");
        assert!(hints.contains("torrust-tracker-deployer run e"), "{hints}");
        assert!(hints.contains("not healthy: mysql, prometheus;"), "{hints}");
        assert!(
            !hints.contains("docker logs"),
            "nothing is unhealthy: {hints}"
        );
        assert!(hints.contains("torrust-grafana-1"), "{hints}");
        assert!(!hints.contains("release"), "{hints}");
    }

    #[test]
    fn unhealthy_starting_and_oneoff_containers() {
        let mut starting = parse_container(PS_MYSQL_V2).unwrap();
        let mut oneoff = parse_container(PS_TRACKER_V1).unwrap();
        oneoff.oneoff = true;
        oneoff.state = "exited".into();
        let mut tracker = parse_container(PS_TRACKER_V1).unwrap();
        tracker.health = "unhealthy".into();
        starting.image = "mysql:8.0".into();
        let rows = service_statuses(
            &model()[..2],
            &DockerProbe::Listed {
                containers: vec![oneoff, tracker, starting],
                warnings: Vec::new(),
            },
        );
        assert_eq!(rows.len(), 2, "the one-off container is left out: {rows:?}");
        assert!(!rows[0].ok && rows[0].problem.as_deref() == Some("running but unhealthy"));
        assert!(!rows[1].ok && rows[1].problem.as_deref().unwrap().contains("health check"));
        assert!(rows[1].image_differs());
    }

    #[test]
    fn without_docker_services_are_unknown_and_files_still_count() {
        let rows = service_statuses(&model(), &DockerProbe::NotInstalled);
        assert!(rows.iter().all(|r| r.state == "unknown" && !r.ok));
        let f = stack_file("/opt/torrust/x", b"abc", 0o644, None);
        let files = vec![file_status(&f, &RemoteFile::Absent)];
        let status = assemble("e", Docker::NotInstalled, rows, files, Duration::ZERO);
        assert!(!status.ok);
        assert_eq!(status.summary.files_missing, 1);
        let hints = status.hints.join("\n");
        assert!(
            hints.contains("configure e") && hints.contains("release e"),
            "{hints}"
        );
        assert!(!hints.contains("run e"), "{hints}");
    }

    #[test]
    fn all_well_is_ok_without_hints() {
        let rows = service_statuses(&model()[..1], &listed(&[PS_TRACKER_V1]));
        let f = stack_file("/opt/torrust/x", b"abc", 0o644, None);
        let same = RemoteFile::File {
            sha256: sha256_hex(b"abc"),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let status = assemble(
            "e",
            Docker::Available,
            rows,
            vec![file_status(&f, &same)],
            Duration::ZERO,
        );
        assert!(status.ok, "{status:?}");
        assert!(status.hints.is_empty());
        assert_eq!(status.summary.problems(), 0);
    }

    #[test]
    fn probe_paths_move_under_the_test_root() {
        let p = Path::new("/opt/torrust/.env");
        assert_eq!(probe_path(None, p), "/opt/torrust/.env");
        assert_eq!(
            probe_path(Some(Path::new("/tmp/r")), p),
            "/tmp/r/opt/torrust/.env"
        );
    }
}
