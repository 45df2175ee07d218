//! `provision ENV`: create the LXD instance and make it reachable over SSH.

use std::time::Duration;

use super::{CliError, GlobalArgs, Output, block_on, env_name, render_steps};
use crate::ops::provision::{self, ProvisionOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Seconds to wait for the instance's IPv4 address.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub ip_timeout: u64,
    /// Seconds to wait for SSH (and cloud-init) to be ready.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub ssh_timeout: u64,
    /// Seconds any one LXD operation may take (creating the instance, which includes
    /// downloading a remote image; starting it).
    #[arg(long, value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub lxd_timeout: u64,
    /// Adopt an existing instance or profile of this environment's name that carries another
    /// environment's id (or none, and the state does not record it), and mark it as this one's.
    #[arg(long)]
    pub adopt_foreign: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let options = ProvisionOptions {
        ip_timeout: Duration::from_secs(args.ip_timeout),
        ssh_timeout: Duration::from_secs(args.ssh_timeout),
        lxd_timeout: Duration::from_secs(args.lxd_timeout),
        trust_recorded_host: false,
        adopt_foreign: args.adopt_foreign,
    };
    let p = block_on(provision::provision(
        &global.data(),
        env,
        &options,
        global.lock_wait(),
    ))?;
    out.result(&p, || {
        let mut t = if p.changed {
            format!("Environment '{}' provisioned.\n", p.name)
        } else {
            format!("Environment '{}' was already provisioned; nothing changed.\n", p.name)
        };
        t.push_str(&render_steps(&p.steps));
        t.push_str(&format!(
            "\n  instance:  {}\n  address:   {}:{} (user {})\n  host key:  {}\n  next:      torrust-tracker-deployer show {}\n",
            p.instance, p.ip, p.ssh_port, p.ssh_user, p.host_key, p.name
        ));
        if !p.dns_records.is_empty() {
            t.push_str("\n  DNS records to create:\n");
            for r in &p.dns_records {
                let note = if r.local {
                    "   (a local name: your resolver or /etc/hosts)"
                } else {
                    ""
                };
                t.push_str(&format!("    {} {} {}{note}\n", r.name, r.kind, r.value));
            }
        }
        t
    })?;
    Ok(())
}
