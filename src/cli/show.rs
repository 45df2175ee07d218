//! `show ENV`: state, settings (secrets redacted) and what to do next.

use super::{CliError, GlobalArgs, Output, env_name};
use crate::ops::environment;
use crate::state::RunStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let shown = environment::show(&global.data(), env_name(&args.env)?)?;
    out.result(&shown, || {
        let mut t = String::new();
        t.push_str(&format!("Environment: {}\n", shown.name));
        t.push_str(&format!("State:       {}\n", shown.lifecycle));
        if let Some(m) = &shown.maintenance {
            t.push_str(&format!("Maintenance: {}\n", m.line()));
        }
        t.push_str(&format!("Provider:    {}\n", shown.provider));
        t.push_str(&format!("Instance:    {}\n", shown.instance_name));
        t.push_str(&format!(
            "Created:     {}\n",
            shown.created_at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
        if let Some(key) = &shown.ssh_private_key {
            t.push_str(&format!("SSH key:     {}\n", key.display()));
        }
        t.push_str(&format!("State file:  {}\n", shown.state_file.display()));
        if let Some(run) = &shown.last_run {
            let status = match &run.status {
                RunStatus::Succeeded => "succeeded".to_string(),
                RunStatus::Running { step } => format!(
                    "did not finish (at step '{}')",
                    step.as_deref().unwrap_or("start")
                ),
                RunStatus::Failed { step, error, .. } => {
                    format!("failed at step '{step}': {error}")
                }
            };
            t.push_str(&format!("Last run:    {} {status}\n", run.command));
        }
        if let Some(host) = &shown.host {
            t.push_str(&format!("Host:        {}:{}\n", host.ip, host.ssh_port));
            if let Some(key) = &host.host_key {
                t.push_str(&format!("Host key:    {key} (pinned)\n"));
            }
            t.push_str(&format!("Shell:       {}\n", host.shell));
            t.push_str(&format!("OpenSSH:     {}\n", host.openssh));
            if let Some(e) = &host.endpoints {
                t.push_str("\nAddresses:\n");
                for url in e.udp_announce.iter().chain(&e.http_announce) {
                    t.push_str(&format!("  announce   {url}\n"));
                }
                t.push_str(&format!("  API        {}\n", e.api));
                if let Some(url) = &e.grafana {
                    t.push_str(&format!("  Grafana    {url}\n"));
                }
                if let Some(url) = &e.prometheus {
                    t.push_str(&format!("  Prometheus {url} (on the host's loopback)\n"));
                }
            }
        }
        t.push_str("\nSettings (secrets redacted):\n");
        let settings = serde_json::to_string_pretty(&shown.config).unwrap_or_default();
        for line in settings.lines() {
            t.push_str(&format!("  {line}\n"));
        }
        t.push_str(&format!(
            "\nNext: {}\n  {}\n",
            shown.next.command, shown.next.hint
        ));
        t
    })?;
    Ok(())
}
