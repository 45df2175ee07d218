//! Monitoring: the `stats-exporter` service and what a tracker image lets Prometheus collect.
//!
//! Tracker 3.0.0's API serves its statistics as JSON only (it ignores `format=prometheus`), so
//! Prometheus scrapes our exporter ([`crate::exporter`], the deployer's own binary run in the
//! tracker's image), which reads the JSON and writes the Prometheus text format with the
//! field names as metric names. See docs/decisions/0030-stats-exporter.md.

use super::{Plan, Service, layout};

/// The exporter's port on the metrics network (never published).
pub const EXPORTER_PORT: u16 = crate::exporter::PORT;
/// Where the directory holding the deployer's binary is mounted in the exporter's container.
pub const BIN_DIR_IN_CONTAINER: &str = "/opt/torrust-deployer";

/// The binary inside the exporter's container.
pub fn binary_in_container() -> String {
    format!("{BIN_DIR_IN_CONTAINER}/torrust-tracker-deployer")
}

/// The exporter's listen address inside its container.
fn listen() -> String {
    format!("0.0.0.0:{EXPORTER_PORT}")
}

/// The exporter's command line (after the entrypoint, the binary).
pub(crate) fn exporter_command(plan: &Plan<'_>) -> Vec<String> {
    vec![
        "stats-exporter".into(),
        "--listen".into(),
        listen(),
        "--api".into(),
        // The API over the metrics network, whatever its exposure on the host.
        format!("http://{}:{}", Service::Tracker, plan.api.port()),
    ]
}

/// The exporter container's health check: the binary asks its own `/healthz`.
pub(crate) fn exporter_health_command() -> Vec<String> {
    vec![
        binary_in_container(),
        "stats-exporter".into(),
        "--listen".into(),
        listen(),
        "--healthcheck".into(),
    ]
}

/// The bind mount of the binary's directory (read-only).
pub(crate) fn exporter_volume() -> String {
    layout::bind(
        std::path::Path::new(layout::DEPLOYER_BIN_DIR),
        BIN_DIR_IN_CONTAINER,
        true,
    )
}

/// What Prometheus can collect with a tracker image, known from its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scrape {
    /// A 3.x release: the 16 fields of 3.0.0's `/api/v1/stats` (torrents, peers, completed,
    /// connections, announces and scrapes per protocol and IP version).
    Release3,
    /// The `develop` image: 3.0.0's fields and more (UDP errors, average processing times,
    /// banned IPs and requests, requests and responses, aborted requests).
    Develop,
    /// A tag the deployer does not know: its API may serve other statistics, or none.
    Unknown,
}

impl Scrape {
    /// Whether the dashboard has the panels of the `develop` statistics.
    pub fn extended(self) -> bool {
        self == Scrape::Develop
    }
}

/// What Prometheus can collect with `image` (the tracker's image reference).
pub fn scrape_support(image: &str) -> Scrape {
    let tag = image
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or("latest", |(_, t)| t);
    let tag = tag.split('@').next().unwrap_or(tag);
    let version = tag.strip_prefix('v').unwrap_or(tag);
    if version == "develop" {
        Scrape::Develop
    } else if version.starts_with("3.") {
        Scrape::Release3
    } else {
        Scrape::Unknown
    }
}

/// The warning `validate` gives for the tracker image, when Prometheus runs and the image is
/// not one whose statistics are known.
pub fn scrape_warning(config: &crate::config::EnvironmentConfig) -> Option<String> {
    config.prometheus.as_ref()?;
    let image = config.image(crate::config::ImageService::Tracker);
    match scrape_support(&image) {
        Scrape::Release3 | Scrape::Develop => None,
        Scrape::Unknown => Some(format!(
            "the tracker image {image:?} is not one whose statistics the deployer knows (3.x \
             releases and `develop`): Prometheus may collect nothing from it (its API must \
             serve JSON statistics on /api/v1/stats). `status` shows whether the target is up \
             and `test` checks it; the dashboard shows the 3.0.0 statistics"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_says_what_can_be_collected() {
        assert_eq!(scrape_support("torrust/tracker:3.0.0"), Scrape::Release3);
        assert_eq!(scrape_support("torrust/tracker:v3.1.2"), Scrape::Release3);
        assert_eq!(scrape_support("torrust/tracker:develop"), Scrape::Develop);
        assert_eq!(
            scrape_support("registry:5000/torrust/tracker"),
            Scrape::Unknown
        );
        assert_eq!(scrape_support("torrust/tracker:2.3.0"), Scrape::Unknown);
        assert_eq!(scrape_support("torrust/tracker"), Scrape::Unknown);
        assert!(Scrape::Develop.extended() && !Scrape::Release3.extended());
    }
}
