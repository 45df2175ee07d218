//! Container images of the stack: pinned defaults and the format of image references.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A service of the deployed stack that runs from a container image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageService {
    Tracker,
    Mysql,
    Prometheus,
    Grafana,
    Caddy,
}

impl ImageService {
    /// Every service, in the order of the `images` section.
    pub const ALL: [ImageService; 5] = [
        ImageService::Tracker,
        ImageService::Mysql,
        ImageService::Prometheus,
        ImageService::Grafana,
        ImageService::Caddy,
    ];

    /// The field name in the `images` section.
    pub fn key(self) -> &'static str {
        match self {
            ImageService::Tracker => "tracker",
            ImageService::Mysql => "mysql",
            ImageService::Prometheus => "prometheus",
            ImageService::Grafana => "grafana",
            ImageService::Caddy => "caddy",
        }
    }
}

/// The pinned default image of each service: released tags, never `latest` or `develop`.
/// Prometheus, Grafana and Caddy are the tags the incumbent deployer moved to after its CVE
/// reviews (ADR 33). There is no backup image: the backup job runs on the host (ADR 8, 21, 33).
pub fn default_image(service: ImageService) -> &'static str {
    match service {
        // Torrust Tracker release 3.0.0 (Docker Hub publishes release tags as bare semver).
        ImageService::Tracker => "torrust/tracker:3.0.0",
        // MySQL 8.4 LTS.
        ImageService::Mysql => "mysql:8.4",
        ImageService::Prometheus => "prom/prometheus:v3.11.2",
        ImageService::Grafana => "grafana/grafana:13.0.0",
        ImageService::Caddy => "caddy:2.11.2",
    }
}

/// Checks an image reference `[registry[:port]/]name[:tag][@digest]`. Returns why it is invalid.
pub(crate) fn check_image_reference(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("is empty".into());
    }
    if reference.chars().any(|c| c.is_whitespace()) {
        return Err("contains whitespace".into());
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let Some((algo, hex)) = digest.split_once(':') else {
            return Err(format!(
                "digest {digest:?} must look like `sha256:<64 hex digits>`"
            ));
        };
        let algo_ok = !algo.is_empty()
            && algo
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        let hex_ok = hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
        let sha256_ok = algo != "sha256" || hex.len() == 64;
        if !(algo_ok && hex_ok && sha256_ok) {
            return Err(format!(
                "digest {digest:?} must look like `sha256:<64 hex digits>`"
            ));
        }
    }
    // The tag is after the last ':' that follows the last '/' (a ':' before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Err(format!(
                "tag {tag:?} is invalid (letters, digits, `_`, `.`, `-`; at most 128 characters)"
            ));
        }
    }
    if name.is_empty() {
        return Err("has no image name".into());
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // A first component with '.', ':' or equal to `localhost` is a registry host.
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
            if !host_ok || !port_ok {
                return Err(format!("registry {first:?} is invalid"));
            }
            components.remove(0);
        }
    }
    for component in components {
        let valid = !component.is_empty()
            && component
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && component
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && component
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(format!(
                "name component {component:?} is invalid (lowercase letters, digits and \
                 separators `.`, `_`, `-`, starting and ending with a letter or digit)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_pinned() {
        for service in ImageService::ALL {
            let image = default_image(service);
            assert!(check_image_reference(image).is_ok(), "{image}");
            assert!(image.contains(':'), "{image} has no tag");
            assert!(!image.ends_with(":latest") && !image.ends_with(":develop"));
        }
    }

    #[test]
    fn references() {
        for ok in [
            "torrust/tracker",
            "torrust/tracker:3.0.0",
            "mysql:8.4",
            "registry.example.com:5000/team/app:v1.2",
            "localhost/app",
            "ghcr.io/owner/image@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "caddy:2.10@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(check_image_reference(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Torrust/Tracker",
            "mysql:",
            "mysql:8.4 ",
            "mysql:-x",
            "a//b",
            "app@sha256:123",
            "app@nodigest",
            "-app",
            "registry.example.com:0/app",
        ] {
            assert!(check_image_reference(bad).is_err(), "{bad}");
        }
    }
}
