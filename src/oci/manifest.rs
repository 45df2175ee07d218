//! Manifests as registries serve them: an image manifest (Docker schema 2 or OCI) or an index
//! of them (a Docker manifest list or an OCI index), read from the bytes as received.

use serde::Deserialize;

use super::Platform;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The `Accept` header of every manifest request: all four kinds, so that the registry never
/// converts to schema 1 (another digest) nor refuses an OCI manifest (404).
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor: what a manifest says of a blob or of another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<PlatformField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlatformField {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image manifest: the config blob and the layers, base first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    manifests: Vec<Descriptor>,
}

/// What a manifest request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    /// The children of a manifest list or OCI index.
    Index(Vec<Descriptor>),
}

impl Manifest {
    /// Reads a manifest by its `Content-Type`, or by its own `mediaType` when the header is
    /// generic (some registries send `application/json`).
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| format!("a manifest that is not JSON: {e}"))?;
        let declared = value["mediaType"].as_str().unwrap_or_default().to_string();
        let kind = content_type.split(';').next().unwrap_or_default().trim();
        let kind = match kind {
            DOCKER_MANIFEST | DOCKER_LIST | OCI_MANIFEST | OCI_INDEX => kind.to_string(),
            _ if !declared.is_empty() => declared,
            // An OCI manifest or index may omit mediaType: tell them apart by their fields.
            _ if value.get("manifests").is_some() => OCI_INDEX.to_string(),
            _ => OCI_MANIFEST.to_string(),
        };
        match kind.as_str() {
            DOCKER_LIST | OCI_INDEX => serde_json::from_value::<Index>(value)
                .map(|i| Manifest::Index(i.manifests))
                .map_err(|e| format!("a malformed manifest list: {e}")),
            DOCKER_MANIFEST | OCI_MANIFEST => {
                let m: ImageManifest = serde_json::from_value(value)
                    .map_err(|e| format!("a malformed image manifest: {e}"))?;
                if m.schema_version != 2 {
                    return Err(format!("schema version {}", m.schema_version));
                }
                Ok(Manifest::Image(m))
            }
            other => Err(format!("an unsupported manifest type {other:?}")),
        }
    }
}

/// The child of an index for `platform`, or the platforms it has.
pub fn choose<'a>(
    children: &'a [Descriptor],
    platform: &Platform,
) -> Result<&'a Descriptor, String> {
    children
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
        })
        .ok_or_else(|| {
            let names: Vec<String> = children
                .iter()
                .filter_map(|d| d.platform.as_ref())
                // Attestation manifests (buildx) say unknown/unknown: not a platform.
                .filter(|p| p.os != "unknown")
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifests_and_indexes() {
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": digest('c'), "size": 7},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": digest('1'), "size": 10}]
        });
        let parsed = Manifest::parse(DOCKER_MANIFEST, m.to_string().as_bytes()).unwrap();
        let Manifest::Image(image) = parsed else {
            panic!()
        };
        assert_eq!(image.config.digest, digest('c'));
        assert_eq!(image.layers[0].size, 10);
        // A generic content type: the body's own mediaType decides.
        assert!(matches!(
            Manifest::parse("application/json", m.to_string().as_bytes()),
            Ok(Manifest::Image(_))
        ));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": digest('a'), "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "digest": digest('b'), "size": 2, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": digest('d'), "size": 3, "platform": {"os": "unknown", "architecture": "unknown"}}
            ]
        });
        let Manifest::Index(children) =
            Manifest::parse(OCI_INDEX, index.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            choose(&children, &Platform::linux_amd64()).unwrap().digest,
            digest('b')
        );
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(choose(&children, &arm).unwrap().digest, digest('a'));
        let err = choose(&children, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(err, "linux/arm64/v8, linux/amd64");
        assert!(Manifest::parse(DOCKER_MANIFEST, b"nope").is_err());
        let v1 = serde_json::json!({"schemaVersion": 1, "name": "x"});
        assert!(
            Manifest::parse(
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                v1.to_string().as_bytes()
            )
            .is_err()
        );
    }
}
