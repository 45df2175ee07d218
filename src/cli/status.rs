//! `status ENV [--check]`: the stack as it runs on the host, compared with the model.

use std::path::PathBuf;
use std::time::Duration;

use super::several::{self, Done, Jobs};
use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::OpsError;
use crate::ops::status::{self, Docker, Drift, ROOT_ENV, Status, StatusOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name; several are looked at at once (`--jobs`), with a summary.
    #[arg(value_name = "ENV", required = true)]
    pub envs: Vec<String>,
    /// Exit 1 unless every service runs (healthy where it has a health check), no container
    /// is foreign to the model and every file matches it (for scripts). Without it, status
    /// exits 0 whenever it could look.
    #[arg(long)]
    pub check: bool,
    /// Seconds to keep trying to reach the host over SSH.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub ssh_timeout: u64,
    #[command(flatten)]
    pub jobs: Jobs,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    // For tests only (see `ops::status`): the host's files under another directory.
    let files_root = std::env::var_os(ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(root) = &files_root
        && !root.is_absolute()
    {
        return Err(CliError::Usage(format!(
            "{ROOT_ENV} must be an absolute directory (it is for tests; unset it), not {}",
            root.display()
        )));
    }
    let options = StatusOptions {
        ssh_timeout: Duration::from_secs(args.ssh_timeout),
        files_root,
    };
    let [env] = args.envs.as_slice() else {
        return several::run("status", &args.envs, args.jobs.jobs, out, |env| {
            let options = &options;
            async move {
                let s = status::status(&global.data(), env, options).await?;
                let failure = (args.check && !s.ok)
                    .then(|| OpsError::CheckFailed(s.summary.problems().max(1)).into());
                Ok(Done {
                    text: text(&s, global.verbose > 0),
                    failure,
                    value: s,
                })
            }
        });
    };
    let env = env_name(env)?;
    let s = block_on(status::status(&global.data(), env, &options))?;
    if args.check && !s.ok {
        out.failed_report(&s, || text(&s, global.verbose > 0))?;
        return Err(OpsError::CheckFailed(s.summary.problems().max(1)).into());
    }
    out.result(&s, || text(&s, global.verbose > 0))?;
    Ok(())
}

/// Columns padded to their widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let mut widths = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut t = String::new();
    for row in rows {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 1));
            }
        }
        t.push_str(line.trim_end());
        t.push('\n');
    }
    t
}

/// The view for people. `all_files`: list the matching files too (`-v`).
fn text(s: &Status, all_files: bool) -> String {
    let mut t = format!("Environment '{}' ({}) on {}\n", s.name, s.lifecycle, s.host);
    if let Some(m) = &s.maintenance {
        t.push_str(&format!("Maintenance: {}\n", m.line()));
    }
    if let Some(root) = &s.files_root {
        t.push_str(&format!(
            "  files read under {} ({ROOT_ENV}, for tests)\n",
            root.display()
        ));
    }

    t.push('\n');
    match &s.docker {
        Docker::Available if s.services.is_empty() => {
            t.push_str("Services: the model has none\n");
        }
        Docker::Available => {
            t.push_str("Services:\n");
            let mut rows = vec![
                ["SERVICE", "STATE", "HEALTH", "PORTS", "IMAGE"]
                    .map(String::from)
                    .to_vec(),
            ];
            for r in &s.services {
                let mut image = r.image.clone().unwrap_or_else(|| "-".to_string());
                if !r.expected {
                    image.push_str("  (not in the model)");
                } else if r.image.is_none() || r.image_differs() {
                    image.push_str(&format!(
                        "  (model: {})",
                        r.expected_image.as_deref().unwrap_or("-")
                    ));
                }
                rows.push(vec![
                    r.service.clone(),
                    r.state.clone(),
                    if r.state == "missing" {
                        "-".to_string()
                    } else {
                        r.health.clone()
                    },
                    if r.ports.is_empty() {
                        "-".to_string()
                    } else {
                        r.ports.join(", ")
                    },
                    image,
                ]);
            }
            t.push_str(&table(&rows));
        }
        other => {
            t.push_str(&format!(
                "Services: unknown. Docker is {}\n  the model has: {}\n",
                other.describe(),
                s.services
                    .iter()
                    .map(|r| r.service.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    if let Some(m) = &s.monitoring {
        t.push_str("\nMonitoring (Prometheus's targets):\n");
        for target in &m.targets {
            t.push_str(&format!("  {target}\n"));
        }
        match &m.problem {
            Some(p) => t.push_str(&format!("  NOT COLLECTING: {p}\n")),
            None => t.push_str("  collecting: every target up, the exporter reads the API\n"),
        }
    }

    let sum = &s.summary;
    let differ = sum.files_differ + sum.files_missing;
    t.push_str(&format!(
        "\nFiles: {} files match, {differ} differ{}\n",
        sum.files_same,
        if sum.files_missing > 0 {
            format!(" ({} missing)", sum.files_missing)
        } else {
            String::new()
        }
    ));
    let mut rows = Vec::new();
    for f in s
        .files
        .iter()
        .filter(|f| all_files || f.status != Drift::Same)
    {
        let mut what: Vec<String> = f
            .differences
            .iter()
            .map(|d| d.as_str().to_string())
            .collect();
        if f.differences.contains(&status::Difference::Mode) {
            what.push(format!(
                "mode {} (model {})",
                f.mode.as_deref().unwrap_or("?"),
                f.expected_mode
            ));
            what.retain(|w| w != "mode");
        }
        if f.differences.contains(&status::Difference::Owner) {
            what.push(format!(
                "owner {} (model {})",
                f.owner.as_deref().unwrap_or("?"),
                f.expected_owner.as_deref().unwrap_or("?")
            ));
            what.retain(|w| w != "owner");
        }
        if let Some(d) = &f.detail {
            what.push(d.clone());
        }
        rows.push(vec![
            f.status.as_str().to_string(),
            format!(
                "{}{}",
                f.path.display(),
                if f.secret { " (secret)" } else { "" }
            ),
            what.join(", "),
        ]);
    }
    t.push_str(&table(&rows));

    t.push('\n');
    if s.hints.is_empty() {
        t.push_str("Everything matches the model, and every service runs.\n");
    } else {
        t.push_str("Next:\n");
        for h in &s.hints {
            t.push_str(&format!("  - {h}\n"));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::ops::status::{FileStatus, ServiceStatus, assemble};

    fn service(name: &str, state: &str, expected: bool) -> ServiceStatus {
        ServiceStatus {
            service: name.into(),
            expected,
            container: Some(format!("torrust-{name}-1")),
            state: state.into(),
            health: "healthy".into(),
            ports: vec!["6969/udp".into(), "7070/tcp".into()],
            image: Some("torrust/tracker:develop".into()),
            expected_image: expected.then(|| "torrust/tracker:develop".into()),
            ok: expected && state == "running",
            problem: None,
        }
    }

    fn file(path: &str, status: Drift, secret: bool) -> FileStatus {
        FileStatus {
            path: PathBuf::from(path),
            status,
            differences: if status == Drift::Differs {
                vec![status::Difference::Content, status::Difference::Mode]
            } else {
                Vec::new()
            },
            secret,
            expected_mode: "0600".into(),
            mode: Some("0644".into()),
            expected_owner: None,
            owner: Some("0:0".into()),
            expected_sha256: None,
            sha256: None,
            detail: None,
        }
    }

    #[test]
    fn status_text_lists_services_and_only_drifting_files() {
        let s = assemble(
            "e",
            Docker::Available,
            vec![
                service("tracker", "running", true),
                service("grafana", "exited", false),
            ],
            vec![
                file("/opt/torrust/docker-compose.yml", Drift::Same, false),
                file("/opt/torrust/.env", Drift::Differs, true),
                file("/etc/cron.d/torrust-backup", Drift::Missing, false),
            ],
            Duration::ZERO,
        );
        let t = text(&s, false);
        assert!(t.contains("SERVICE"), "{t}");
        assert!(
            t.contains("tracker  running  healthy  6969/udp, 7070/tcp"),
            "{t}"
        );
        assert!(t.contains("(not in the model)"), "{t}");
        assert!(
            t.contains("Files: 1 files match, 2 differ (1 missing)"),
            "{t}"
        );
        assert!(
            t.contains("/opt/torrust/.env (secret)  content, mode 0644 (model 0600)"),
            "{t}"
        );
        assert!(!t.contains("docker-compose.yml"), "{t}");
        assert!(t.contains("release e"), "{t}");
        let all = text(&s, true);
        assert!(
            all.contains("same     /opt/torrust/docker-compose.yml"),
            "{all}"
        );
    }

    #[test]
    fn status_text_without_docker() {
        let mut row = service("tracker", "unknown", true);
        row.ok = false;
        let s = assemble(
            "e",
            Docker::Unavailable {
                detail: "Cannot connect to the Docker daemon".into(),
            },
            vec![row],
            vec![file("/opt/torrust/docker-compose.yml", Drift::Same, false)],
            Duration::ZERO,
        );
        let t = text(&s, false);
        assert!(
            t.contains("Services: unknown. Docker is not available: Cannot connect"),
            "{t}"
        );
        assert!(t.contains("the model has: tracker"), "{t}");
        assert!(t.contains("configure e"), "{t}");
        assert!(t.contains("Files: 1 files match, 0 differ\n"), "{t}");
    }
}
