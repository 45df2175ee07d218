//! `image import`: upload a split image to LXD, for air-gapped hosts. `image pull`: pull the
//! container images an environment uses into an offline bundle, without Docker.

use std::path::PathBuf;

use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::oci::Platform;
use crate::ops::image;
use crate::ops::image_pull::{self, Images, PullOptions};
use crate::ops::render::Source;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Upload a split image (metadata + rootfs) to LXD and alias it.
    Import(ImportArgs),
    /// Pull the container images an environment uses from their registries (over the OCI
    /// distribution API; no Docker needed) into an offline bundle for `images.offline_bundle`.
    Pull(PullArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("source").required(true).args(["env_name", "env_file", "image"])
))]
pub struct PullArgs {
    /// The images of a stored environment (as created by `create environment`).
    #[arg(long, value_name = "NAME")]
    pub env_name: Option<String>,
    /// The images of an environment file (JSON), validated first.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// An image to pull (repeatable), instead of an environment's.
    #[arg(long, value_name = "REF")]
    pub image: Vec<String>,
    /// The bundle directory to write (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The platform to pick from multi-platform images: `os/arch[/variant]`.
    #[arg(long, default_value = "linux/amd64", value_parser = Platform::parse)]
    pub platform: Platform,
    /// Pull every image from this registry (`host[:port]`, a mirror holding the same repository
    /// paths; Docker Hub's official images under `library/`) instead of the one its name says.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub registry: Option<String>,
    /// Speak plain HTTP to this registry (repeatable). Loopback registries may always.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Where blobs are kept between pulls (default: DATA_DIR/.cache/oci).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The metadata: a tarball, or a directory holding metadata.yaml (and templates/).
    #[arg(long, value_name = "PATH")]
    pub metadata: PathBuf,
    /// The root file system: an (uncompressed or compressed) tarball, or a directory.
    #[arg(long, value_name = "PATH")]
    pub rootfs: PathBuf,
    /// The alias to give the image, e.g. `torrust/debian-12`.
    #[arg(long)]
    pub alias: String,
    /// LXD's socket (default: the usual places).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// LXD project.
    #[arg(long)]
    pub project: Option<String>,
}

pub fn run(cmd: &ImageCommand, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let a = match cmd {
        ImageCommand::Import(a) => a,
        ImageCommand::Pull(a) => return pull(a, global, out),
    };
    let i = block_on(image::import(
        &a.metadata,
        &a.rootfs,
        &a.alias,
        a.socket.as_deref(),
        a.project.clone(),
    ))?;
    out.result(&i, || {
        format!(
            "Image {} {} as '{}'.",
            &i.fingerprint[..12.min(i.fingerprint.len())],
            if i.uploaded {
                "imported"
            } else {
                "already present; alias set"
            },
            i.alias
        )
    })?;
    Ok(())
}

fn pull(a: &PullArgs, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let name;
    let images = match (&a.env_name, &a.env_file) {
        (Some(n), _) => {
            name = env_name(n)?;
            Images::Environment(Source::Environment(name))
        }
        (None, Some(file)) => Images::Environment(Source::File(file)),
        (None, None) => Images::List(&a.image),
    };
    let options = PullOptions {
        out: a.out.clone(),
        cache: a.cache.clone(),
        platform: a.platform.clone(),
        registry: a.registry.clone(),
        insecure: a.insecure_registry.clone(),
    };
    let p = block_on(image_pull::pull(&global.data(), images, &options))?;
    out.result(&p, || {
        let mut t = format!(
            "Pulled {} image(s) for {} into {}:\n",
            p.images.len(),
            p.platform,
            p.out.display()
        );
        for i in &p.images {
            t.push_str(&format!(
                "  {:<40} {} {} ({} bytes, {})\n",
                i.image,
                &i.id[..19.min(i.id.len())],
                i.file,
                i.bytes,
                if i.written { "written" } else { "unchanged" }
            ));
        }
        t.push_str(&format!(
            "{} blob(s) fetched ({} bytes), {} from the cache, {} corrupted copies fetched again; \
             {} request(s) in {:.1} s.\nUse it: set `images.offline_bundle` to {}",
            p.blobs_fetched,
            p.bytes_received,
            p.blobs_cached,
            p.blobs_refetched,
            p.requests,
            p.elapsed_ms as f64 / 1000.0,
            p.out.display()
        ));
        t
    })?;
    Ok(())
}
