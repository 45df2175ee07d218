//! `render (--env-name N | --env-file F) --instance-ip IP --output-dir D [--force]`: writes the
//! files `release` would upload, under D mirroring the host's paths.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{CliError, GlobalArgs, Output, env_name};
use crate::ops::render::{self, Source};

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("source").required(true).args(["env_name", "env_file"])
))]
pub struct Args {
    /// A stored environment (as created by `create environment`).
    #[arg(long, value_name = "NAME")]
    pub env_name: Option<String>,
    /// An environment file (JSON), validated first.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// The host's IP address, for the announce URLs.
    #[arg(long, value_name = "IP")]
    pub instance_ip: IpAddr,
    /// Where to write; the host's paths are mirrored under it (DIR/opt/torrust/...).
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,
    /// Write into a non-empty DIR (the stack's files are overwritten, others left alone).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let source = match (&args.env_name, &args.env_file) {
        (Some(name), _) => Source::Environment(env_name(name)?),
        (None, Some(file)) => Source::File(file),
        (None, None) => unreachable!("clap requires one source"),
    };
    let r = render::render(
        &global.data(),
        source,
        args.instance_ip,
        &args.output_dir,
        args.force,
    )?;
    out.result(&r, || {
        let mut t = format!(
            "Rendered the stack of environment '{}' for {} into {}:\n",
            r.environment,
            r.instance_ip,
            r.output_dir.display()
        );
        for f in &r.files {
            let owner = f.owner.map(|o| o.to_string()).unwrap_or_default();
            t.push_str(&format!(
                "  {} {:<11} {:<6} {}\n",
                f.mode,
                owner,
                if f.secret { "secret" } else { "" },
                f.path.display()
            ));
        }
        t.push_str("Images:\n");
        for image in &r.images {
            t.push_str(&format!("  {image}\n"));
        }
        t.push_str("Announce URLs:\n");
        for url in r
            .endpoints
            .udp_announce
            .iter()
            .chain(&r.endpoints.http_announce)
        {
            t.push_str(&format!("  {url}\n"));
        }
        t.push_str(&format!("API: {}\n", r.endpoints.api));
        if let Some(g) = &r.endpoints.grafana {
            t.push_str(&format!("Grafana: {g}\n"));
        }
        t
    })?;
    Ok(())
}
