//! A client of the OCI distribution API (the Docker registry HTTP API v2), enough to pull images
//! without Docker: references and platforms ([`Reference`], [`Platform`]), the registry client
//! with token auth ([`client`]), a blob cache checked by digest ([`cache`]) and the `docker load`
//! archive written from what was pulled ([`archive`]). Nothing here touches a deployed host.

pub mod archive;
pub mod cache;
pub mod client;
mod error;
pub mod manifest;

use std::fmt;

pub use error::OciError;

/// Docker Hub's registry host, for references without one.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// An image reference split into registry, repository and tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`; Docker Hub is [`DOCKER_HUB`].
    pub registry: String,
    /// The repository path on the registry (`library/mysql` for Docker Hub's `mysql`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `[registry[:port]/]name[:tag][@digest]` as Docker does: a first component with a
    /// `.` or `:`, or `localhost`, is a registry; else Docker Hub, where a one-component name is
    /// under `library/`. No tag and no digest means `latest`.
    pub fn parse(reference: &str) -> Result<Self, OciError> {
        crate::config::check_image_reference(reference).map_err(|why| OciError::BadReference {
            reference: reference.into(),
            why,
        })?;
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ if !name.contains('/') => (DOCKER_HUB.to_string(), format!("library/{name}")),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "docker.io" | "index.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The same repository on another registry (a mirror holding the same paths).
    pub fn on_registry(&self, registry: &str) -> Self {
        Self {
            registry: registry.to_string(),
            ..self.clone()
        }
    }

    /// What to ask the registry's manifests endpoint for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The platform an image is for, as a manifest list names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`, the default: the hosts the deployer provisions.
    pub fn linux_amd64() -> Self {
        Self {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// Parses `os/architecture[/variant]`, e.g. `linux/arm64/v8`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "platform {text:?} must look like `os/architecture[/variant]`, e.g. `linux/amd64`"
            )),
        }
    }

    /// Whether a manifest list entry's platform is this one (a variant is compared only when
    /// this platform names one).
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && self.variant.as_deref().is_none_or(|v| Some(v) == variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// The hex part of a `sha256:<64 hex>` digest, or `None` for any other form (only sha256 is
/// supported; the hex is used in file names, so nothing else may pass).
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))).then_some(hex)
}

/// Whether `host[:port]` names this machine (plain HTTP is allowed there without opting in).
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_split_as_docker_does() {
        let r = Reference::parse("mysql:8.4").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            (DOCKER_HUB, "library/mysql", Some("8.4"))
        );
        let r = Reference::parse("torrust/tracker").unwrap();
        assert_eq!(r.repository, "torrust/tracker");
        assert_eq!(r.manifest_ref(), "latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/team/app:v1@{d}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/team/app:v1@{d}"));
        let r = Reference::parse("docker.io/library/caddy:2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            (DOCKER_HUB, "library/caddy")
        );
        let r = Reference::parse("localhost/app:1").unwrap();
        assert_eq!(r.registry, "localhost");
        let m = Reference::parse("mysql:8.4")
            .unwrap()
            .on_registry("127.0.0.1:5000");
        assert_eq!(m.to_string(), "127.0.0.1:5000/library/mysql:8.4");
        assert!(Reference::parse("Bad/Name").is_err());
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(!p.matches("linux", "arm64", None));
        let p = Platform::parse("linux/amd64").unwrap();
        assert_eq!(p, Platform::linux_amd64());
        assert!(p.matches("linux", "amd64", Some("v3")));
        assert!(!p.matches("windows", "amd64", None));
        for bad in ["linux", "linux/", "Linux/amd64", "a/b/c/d"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_and_loopback() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(sha256_hex(&sha256_digest(b"x")).is_some());
        assert!(sha256_hex("sha256:../../etc").is_none());
        assert!(sha256_hex(&format!("sha512:{}", "a".repeat(64))).is_none());
        for yes in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["registry-1.docker.io", "10.0.0.1:5000", "example.com:5000"] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
