//! `image import`: upload a split image to LXD, for air-gapped hosts.

use std::path::PathBuf;

use super::{CliError, Output, block_on};
use crate::ops::image;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Upload a split image (metadata + rootfs) to LXD and alias it.
    Import(ImportArgs),
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

pub fn run(cmd: &ImageCommand, out: &Output) -> Result<(), CliError> {
    let ImageCommand::Import(a) = cmd;
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
