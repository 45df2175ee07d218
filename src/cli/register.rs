//! `register ENV --instance-ip IP [--ssh-port P]`: adopt an existing host.

use std::net::IpAddr;

use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::register;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// The host's IP address.
    #[arg(long, value_name = "IP")]
    pub instance_ip: IpAddr,
    /// The host's SSH port (default: the environment file's `ssh_credentials.port`).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: Option<u16>,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let r = block_on(register::register(
        &global.data(),
        env,
        &args.instance_ip.to_string(),
        args.ssh_port,
        global.lock_wait(),
    ))?;
    out.result(&r, || {
        format!(
            "Host {}:{} registered for environment '{}' (host key {} pinned).\n  It is never stopped or deleted by `destroy`.",
            r.ip, r.ssh_port, r.name, r.host_key
        )
    })?;
    Ok(())
}
