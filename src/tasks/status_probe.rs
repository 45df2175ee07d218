//! The status probe: one read-only script, run as root in one round trip, that reports every
//! file of the stack model (hash, mode, owner) and the containers of the Compose project. It is
//! the facts half of a task: `status` ([`crate::ops::status`]) parses and judges the output,
//! and changes nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::host::Host;
use crate::ssh::{ExecOutput, shell_quote};

use super::TaskError;

/// How long the script waits for `docker ps` (a hung daemon must not hang `status`).
pub const DOCKER_TIMEOUT_SECS: u32 = 30;

/// The one script `status` runs as root. Output, one finding per line:
///
/// ```text
/// F <index> absent|link|other|unreadable
/// F <index> file <sha256> <octal mode> <uid> <gid>
/// D missing                  no docker command
/// D exit <code>              docker ps exited so; then its output (stdout and stderr):
/// C <line>
/// E end                      the script ran to its end
/// ```
///
/// `docker_dir` (tests only) goes first on `PATH`.
pub fn script(paths: &[String], project: &str, docker_dir: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(dir) = docker_dir {
        let _ = writeln!(s, "PATH={}:\"$PATH\"; export PATH", shell_quote(dir));
    }
    // One function per file: a missing or odd file never shifts the lines of the others.
    s.push_str(
        "f() {\n\
         \x20 if [ -L \"$2\" ]; then echo \"F $1 link\"\n\
         \x20 elif [ -f \"$2\" ]; then\n\
         \x20   if h=$(sha256sum < \"$2\") && m=$(stat -c '%a %u %g' \"$2\"); then\n\
         \x20     echo \"F $1 file ${h%% *} $m\"\n\
         \x20   else echo \"F $1 unreadable\"; fi\n\
         \x20 elif [ -e \"$2\" ]; then echo \"F $1 other\"\n\
         \x20 else echo \"F $1 absent\"; fi\n\
         }\n",
    );
    for (i, p) in paths.iter().enumerate() {
        let _ = writeln!(s, "f {i} {}", shell_quote(p));
    }
    let filter = shell_quote(&format!("label=com.docker.compose.project={project}"));
    let _ = write!(
        s,
        "if ! command -v docker >/dev/null 2>&1; then echo 'D missing'\n\
         else\n\
         \x20 if command -v timeout >/dev/null 2>&1; then t='timeout {DOCKER_TIMEOUT_SECS}'; else t=''; fi\n\
         \x20 out=$($t docker ps -a --filter {filter} --format '{{{{json .}}}}' 2>&1); rc=$?\n\
         \x20 echo \"D exit $rc\"\n\
         \x20 printf '%s\\n' \"$out\" | while IFS= read -r l; do printf 'C %s\\n' \"$l\"; done\n\
         fi\n\
         echo 'E end'\n"
    );
    s
}

/// Runs the probe script on the host. The output is returned whatever the exit status: the
/// caller's parser says whether the script completed (its last line is `E end`).
pub async fn run(host: &dyn Host, script: &str) -> Result<ExecOutput, TaskError> {
    Ok(host.sudo(script).await?)
}

/// What the host has at a file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteFile {
    Absent,
    Link,
    /// A directory, a device, ...
    Other,
    Unreadable,
    File {
        sha256: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// One container of the project, from a `docker ps --format '{{json .}}'` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    /// `com.docker.compose.service`, if labelled.
    pub service: Option<String>,
    /// Made by `compose run` (`com.docker.compose.oneoff=True`): not part of the stack.
    pub oneoff: bool,
    pub state: String,
    pub health: String,
    pub ports: Vec<String>,
}

/// What the script found about Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerProbe {
    NotInstalled,
    /// `docker ps` exited non-zero (124: timed out); its output.
    Failed {
        code: i32,
        output: String,
    },
    /// `docker ps` answered. `warnings`: lines that were not containers.
    Listed {
        containers: Vec<Container>,
        warnings: Vec<String>,
    },
}

/// The script's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub files: Vec<RemoteFile>,
    pub docker: DockerProbe,
}

/// Reads the output of [`script`] for `n` files.
pub fn parse_probe(out: &str, n: usize) -> Result<Probe, String> {
    let bad = |line: &str| format!("unexpected line {line:?}");
    let mut files: Vec<Option<RemoteFile>> = vec![None; n];
    let mut docker_code: Option<i32> = None;
    let mut docker_missing = false;
    let mut docker_lines = Vec::new();
    let mut ended = false;
    for line in out.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "F" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                let i: usize = w
                    .first()
                    .and_then(|i| i.parse().ok())
                    .filter(|i| *i < n)
                    .ok_or_else(|| bad(line))?;
                files[i] = Some(match w[1..] {
                    ["absent"] => RemoteFile::Absent,
                    ["link"] => RemoteFile::Link,
                    ["other"] => RemoteFile::Other,
                    ["unreadable"] => RemoteFile::Unreadable,
                    ["file", sha, mode, uid, gid]
                        if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        RemoteFile::File {
                            sha256: sha.to_ascii_lowercase(),
                            mode: u32::from_str_radix(mode, 8).map_err(|_| bad(line))?,
                            uid: uid.parse().map_err(|_| bad(line))?,
                            gid: gid.parse().map_err(|_| bad(line))?,
                        }
                    }
                    _ => return Err(bad(line)),
                });
            }
            "D" if rest == "missing" => docker_missing = true,
            "D" => {
                let code = rest
                    .strip_prefix("exit ")
                    .and_then(|c| c.trim().parse().ok())
                    .ok_or_else(|| bad(line))?;
                docker_code = Some(code);
            }
            "C" => docker_lines.push(rest),
            "E" if rest == "end" => ended = true,
            _ => return Err(bad(line)),
        }
    }
    if !ended {
        return Err("the output ends early".to_string());
    }
    let files = files
        .into_iter()
        .enumerate()
        .map(|(i, f)| f.ok_or_else(|| format!("no finding for file #{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let docker = match (docker_missing, docker_code) {
        (true, _) => DockerProbe::NotInstalled,
        (false, Some(0)) => {
            let mut containers = Vec::new();
            let mut warnings = Vec::new();
            for l in docker_lines {
                let l = l.trim();
                if l.is_empty() {
                    continue;
                }
                match parse_container(l) {
                    Ok(c) => containers.push(c),
                    Err(e) if l.starts_with('{') => warnings.push(format!("{e}: {l}")),
                    Err(_) => warnings.push(l.to_string()),
                }
            }
            DockerProbe::Listed {
                containers,
                warnings,
            }
        }
        (false, Some(code)) => DockerProbe::Failed {
            code,
            output: docker_lines.join("\n"),
        },
        (false, None) => return Err("nothing about Docker".to_string()),
    };
    Ok(Probe { files, docker })
}

/// The fields of a `docker ps --format '{{json .}}'` line that status uses. Docker 20.10 and
/// later print at least these; newer ones add `HealthStatus`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsLine {
    #[serde(rename = "ID")]
    id: String,
    image: String,
    names: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    ports: String,
    #[serde(default)]
    labels: String,
    #[serde(default)]
    health_status: Option<String>,
}

/// Parses one line of `docker ps --format '{{json .}}'`.
pub fn parse_container(line: &str) -> Result<Container, String> {
    let ps: PsLine =
        serde_json::from_str(line).map_err(|e| format!("not a `docker ps` JSON line ({e})"))?;
    let labels = parse_labels(&ps.labels);
    let state = if ps.state.is_empty() {
        state_from_status(&ps.status).to_string()
    } else {
        ps.state.to_ascii_lowercase()
    };
    let health = match ps.health_status.as_deref().map(str::trim) {
        Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
        _ => health_from_status(&ps.status).to_string(),
    };
    Ok(Container {
        id: ps.id,
        name: ps.names.split(',').next().unwrap_or_default().to_string(),
        image: ps.image,
        service: labels.get("com.docker.compose.service").cloned(),
        oneoff: labels
            .get("com.docker.compose.oneoff")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        state,
        health,
        ports: parse_ports(&ps.ports),
    })
}

/// Docker's `k=v,k=v` label list. A value may itself hold commas (several config files,
/// `depends_on`): a piece without `=` continues the previous value.
pub(crate) fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut last: Option<String> = None;
    for piece in s.split(',') {
        match (piece.split_once('='), &last) {
            (Some((k, v)), _) => {
                map.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            (None, Some(k)) => {
                if let Some(v) = map.get_mut(k) {
                    v.push(',');
                    v.push_str(piece);
                }
            }
            (None, None) => {}
        }
    }
    map
}

/// The state from the `Status` text, for a Docker whose JSON has no `State`.
pub(crate) fn state_from_status(status: &str) -> &'static str {
    let s = status.trim().to_ascii_lowercase();
    if s.starts_with("up") {
        if s.contains("(paused)") {
            "paused"
        } else {
            "running"
        }
    } else if s.starts_with("exited") {
        "exited"
    } else if s.starts_with("restarting") {
        "restarting"
    } else if s.starts_with("created") {
        "created"
    } else if s.starts_with("removal") {
        "removing"
    } else if s.starts_with("dead") {
        "dead"
    } else {
        "unknown"
    }
}

/// The health Docker appends to `Status`: `Up 2 minutes (healthy)`.
fn health_from_status(status: &str) -> &'static str {
    if status.contains("(healthy)") {
        "healthy"
    } else if status.contains("(unhealthy)") {
        "unhealthy"
    } else if status.contains("(health: starting)") {
        "starting"
    } else {
        "none"
    }
}

/// The published ports of Docker's `Ports` text (`0.0.0.0:6969->6969/udp, :::6969->6969/udp,
/// 1313/tcp`), one entry per binding: `6969/udp`; `127.0.0.1:9090/tcp` when bound to one
/// address; `3100->3000/tcp` when the ports differ. Unpublished ports are left out, and the
/// IPv4/IPv6 twins of one binding count once.
pub(crate) fn parse_ports(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((host, container)) = entry.split_once("->") else {
            continue;
        };
        let (cport, proto) = container.split_once('/').unwrap_or((container, "tcp"));
        let text = match host.rsplit_once(':') {
            Some((ip, hport)) => {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                let ip = if matches!(ip, "" | "0.0.0.0" | "::") {
                    String::new()
                } else if ip.contains(':') {
                    format!("[{ip}]:")
                } else {
                    format!("{ip}:")
                };
                if hport == cport {
                    format!("{ip}{hport}/{proto}")
                } else {
                    format!("{ip}{hport}->{cport}/{proto}")
                }
            }
            None => entry.to_string(),
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    #[tokio::test]
    async fn runs_the_script_as_root_once() {
        let host = FakeHost::new();
        host.reply(
            "docker ps -a",
            [Reply::ok("F 0 absent\nD missing\nE end\n")],
        );
        let s = script(&["/opt/torrust/.env".into()], "torrust", None);
        let out = run(&host, &s).await.unwrap();
        assert_eq!(out.stdout_str(), "F 0 absent\nD missing\nE end\n");
        assert_eq!(host.calls(), vec![Call::Sudo(s)]);
    }
}
