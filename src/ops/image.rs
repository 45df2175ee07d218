//! `image import`: upload a split LXD image (metadata tarball + rootfs tarball) for air-gapped
//! LXD hosts, then alias it. Directories are packed into tarballs with the `tar` crate first.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use tokio_util::io::ReaderStream;

use super::OpsError;
use crate::lxd::transport::Body;
use crate::lxd::{LxdClient, LxdError, UnixSocket, find_socket};

#[derive(Debug, Serialize)]
pub struct Imported {
    pub alias: String,
    pub fingerprint: String,
    /// False when an image with the same content was already there.
    pub uploaded: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Lxd(#[from] LxdError),
    #[error("cannot pack {path} into a tarball: {source}")]
    Pack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} has no metadata.yaml at its top: not an LXD image metadata {kind}.\n  \
         The metadata holds metadata.yaml (architecture, creation_date, properties) and optionally templates/"
    )]
    NoMetadataYaml { path: PathBuf, kind: &'static str },
}

impl From<ImageError> for OpsError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::NoMetadataYaml { .. } | ImageError::Read { .. } => {
                OpsError::Refused(e.to_string())
            }
            other => OpsError::typed(other),
        }
    }
}

/// Packs `dir` into an uncompressed tarball in `scratch`, keeping owners, modes, links and
/// device nodes, as LXD expects of a rootfs.
fn pack_dir(dir: &Path, scratch: &Path, name: &str) -> Result<PathBuf, ImageError> {
    let out = scratch.join(name);
    let pack = || -> std::io::Result<()> {
        let file = std::fs::File::create(&out)?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        builder.append_dir_all(".", dir)?;
        builder
            .into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    };
    pack().map_err(|source| ImageError::Pack {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(out)
}

/// A tarball as is, or a directory packed into one.
fn as_tarball(
    path: &Path,
    scratch: &Path,
    name: &str,
    metadata: bool,
) -> Result<PathBuf, ImageError> {
    let meta = std::fs::metadata(path).map_err(|source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        if metadata && !path.join("metadata.yaml").is_file() {
            return Err(ImageError::NoMetadataYaml {
                path: path.to_path_buf(),
                kind: "directory",
            });
        }
        pack_dir(path, scratch, name)
    } else {
        Ok(path.to_path_buf())
    }
}

async fn file_stream(path: PathBuf) -> Result<ReaderStream<tokio::fs::File>, ImageError> {
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|source| ImageError::Read { path, source })?;
    Ok(ReaderStream::with_capacity(file, 256 * 1024))
}

/// The multipart body, streamed from the two files without loading them in memory.
async fn multipart(metadata: PathBuf, rootfs: PathBuf, boundary: &str) -> Result<Body, ImageError> {
    let part = |name: &str, first: bool| {
        Bytes::from(format!(
            "{}--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            if first { "" } else { "\r\n" }
        ))
    };
    let head = stream::once(std::future::ready(Ok::<_, std::io::Error>(part(
        "metadata", true,
    ))));
    let middle = stream::once(std::future::ready(Ok(part("rootfs", false))));
    let tail = stream::once(std::future::ready(Ok(Bytes::from(format!(
        "\r\n--{boundary}--\r\n"
    )))));
    let all = head
        .chain(file_stream(metadata).await?)
        .chain(middle)
        .chain(file_stream(rootfs).await?)
        .chain(tail)
        .map(|chunk| chunk.map(Frame::data));
    Ok(BodyExt::boxed(StreamBody::new(all)))
}

fn split_fingerprint(metadata: &Path, rootfs: &Path) -> Result<String, ImageError> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for path in [metadata, rootfs] {
        let mut file = std::fs::File::open(path).map_err(|source| ImageError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        std::io::copy(&mut file, &mut hasher).map_err(|source| ImageError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(format!("{:x}", hasher.finalize()))
}

pub async fn import(
    metadata: &Path,
    rootfs: &Path,
    alias: &str,
    socket: Option<&Path>,
    project: Option<String>,
) -> Result<Imported, OpsError> {
    let socket = find_socket(socket).map_err(ImageError::from)?;
    let client = LxdClient::new(UnixSocket::new(&socket), project);
    let scratch = tempfile::tempdir().map_err(OpsError::io("cannot create a scratch directory"))?;
    let meta = as_tarball(metadata, scratch.path(), "metadata.tar", true)?;
    let root = as_tarball(rootfs, scratch.path(), "rootfs.tar", false)?;
    // LXD names a split image by the SHA-256 of its metadata tarball followed by its rootfs.
    let fingerprint = split_fingerprint(&meta, &root)?;
    let present = client
        .local_image(&fingerprint)
        .await
        .map_err(ImageError::from)?
        .is_some();
    if present {
        tracing::info!(
            "LXD already has image {}; not uploading it again",
            &fingerprint[..12]
        );
    } else {
        let boundary = format!("torrust-{:016x}", rand::random::<u64>());
        let size = std::fs::metadata(&root).map(|m| m.len()).unwrap_or(0);
        tracing::info!(
            "uploading {} and {} ({} MiB) to {}",
            meta.display(),
            root.display(),
            size / (1024 * 1024),
            client.endpoint()
        );
        let started = std::time::Instant::now();
        let body = multipart(meta, root, &boundary).await?;
        let uploaded = client
            .import_image(body, &boundary, false)
            .await
            .map_err(ImageError::from)?;
        if uploaded != fingerprint {
            tracing::warn!("LXD computed fingerprint {uploaded}, expected {fingerprint}");
        }
        tracing::info!("uploaded in {:.1}s", started.elapsed().as_secs_f64());
    }
    client
        .set_alias(alias, &fingerprint)
        .await
        .map_err(ImageError::from)?;
    Ok(Imported {
        alias: alias.to_string(),
        fingerprint,
        uploaded: !present,
    })
}
