//! The protocol checks of `src/probe/` against the REAL Torrust Tracker 3.0.0, on loopback only.
//!
//! Each test starts its own tracker (a child process, killed through its `Child` handle) with a
//! generated configuration: UDP, HTTP tracker, API and health check API on free 127.0.0.1 ports,
//! SQLite in a temporary directory.
//!
//! The binary comes from `TORRUST_TRACKER_BIN` or the cache path that
//! `provisioning/tracker/build-tracker.sh` fills. Missing binary = failed test, never a skip.

use crate::support::tracker;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use reqwest::Url;
use tempfile::TempDir;
use torrust_tracker_deployer::probe::{
    self, AnnounceEvent, Check, CheckOutput, Endpoints, HttpOptions, ProbeError, ProbeOptions,
    TestPeer, TlsTrust, TrackerStats, UdpRetry, UdpTarget, UdpTrackerClient, api, http_tracker,
};
use torrust_tracker_deployer::secret::Secret;
use tracker::{api_sections, base_config, free_tcp_port, free_udp_port, read_log, wait_listening};

/// TLS material for an HTTPS tracker: a private CA and a leaf for `tracker.test`.
struct Tls {
    ca_pem: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_tls(dir: &Path) -> Tls {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "probe test local CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["tracker.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let tls = Tls {
        ca_pem: dir.join("ca.pem"),
        cert: dir.join("tracker.crt"),
        key: dir.join("tracker.key"),
    };
    std::fs::write(&tls.ca_pem, ca.pem()).unwrap();
    std::fs::write(&tls.cert, leaf.pem()).unwrap();
    std::fs::write(&tls.key, leaf_key.serialize_pem()).unwrap();
    tls
}

/// A running tracker; killed (by its own handle) on drop.
struct Tracker {
    child: Child,
    dir: TempDir,
    token: Secret,
    udp: SocketAddr,
    http: Url,
    https: Option<Url>,
    api: Url,
    health: Url,
}

impl Tracker {
    fn start(with_tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token = Secret::generate(32);
        let (udp, http, https, api, health) = (
            free_udp_port(),
            free_tcp_port(),
            free_tcp_port(),
            free_tcp_port(),
            free_tcp_port(),
        );
        let db = dir.path().join("tracker.db");
        let mut config = base_config(&db, udp, http);
        if with_tls {
            let tls = make_tls(dir.path());
            config.push_str(&format!(
                r#"
[[http_trackers]]
bind_address = "127.0.0.1:{https}"

[http_trackers.tsl_config]
ssl_cert_path = "{}"
ssl_key_path = "{}"
"#,
                tls.cert.display(),
                tls.key.display()
            ));
        }
        config.push_str(&api_sections(api, token.expose(), health));
        let child = tracker::spawn(dir.path(), &config);
        let mut tracker = Tracker {
            child,
            dir,
            token,
            udp: SocketAddr::from((Ipv4Addr::LOCALHOST, udp)),
            http: format!("http://127.0.0.1:{http}").parse().unwrap(),
            https: with_tls.then(|| format!("https://tracker.test:{https}").parse().unwrap()),
            api: format!("http://127.0.0.1:{api}").parse().unwrap(),
            health: format!("http://127.0.0.1:{health}").parse().unwrap(),
        };
        let mut ports = vec![http, api, health];
        if with_tls {
            ports.push(https);
        }
        wait_listening(&mut tracker.child, tracker.dir.path(), &ports);
        tracker
    }

    fn log(&self) -> String {
        read_log(self.dir.path())
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints {
            udp_trackers: vec![UdpTarget::from_addr(self.udp)],
            http_trackers: vec![self.http.clone()],
            api: Some((self.api.clone(), self.token.clone())),
            health_check: Some(self.health.clone()),
            grafana: None,
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn quick() -> ProbeOptions {
    ProbeOptions {
        http: HttpOptions {
            timeout: Duration::from_secs(3),
            ..HttpOptions::default()
        },
        udp: UdpRetry {
            timeout: Duration::from_millis(500),
            tries: 3,
            backoff: false,
        },
    }
}

async fn stats(t: &Tracker) -> TrackerStats {
    api::stats(&t.api, &t.token, &quick().http)
        .await
        .unwrap_or_else(|e| panic!("stats: {e}\n{}", t.log()))
}

#[tokio::test]
async fn udp_http_api_and_health_against_the_real_tracker() {
    let t = Tracker::start(false);
    let opts = quick();
    let before = stats(&t).await;

    // UDP: connect, announce, scrape, by hand.
    let peer = TestPeer::random();
    let mut udp = UdpTrackerClient::new(t.udp, format!("udp://{}", t.udp), opts.udp)
        .await
        .unwrap();
    udp.connect().await.unwrap();
    let announced = udp
        .announce(&peer.announce(AnnounceEvent::Started))
        .await
        .unwrap_or_else(|e| panic!("UDP announce: {e}\n{}", t.log()));
    assert!(announced.interval > 0, "{announced:?}");
    assert_eq!(
        announced.leechers, 1,
        "the peer itself, a leecher: {announced:?}"
    );
    let scraped = udp.scrape(&[peer.info_hash]).await.unwrap();
    let entry = scraped.files[&peer.info_hash];
    assert_eq!((entry.seeders, entry.leechers), (0, 1), "{entry:?}");

    // A second UDP peer on the same torrent sees the first one in its peer list.
    let mut second = TestPeer::random();
    second.info_hash = peer.info_hash;
    let r = udp
        .announce(&second.announce(AnnounceEvent::Started))
        .await
        .unwrap();
    assert_eq!(r.leechers, 2, "{r:?}");
    // (The tracker replaces a loopback peer address with its `external_ip`, 0.0.0.0 by
    // default, so only the port is compared.)
    assert!(r.peers.iter().any(|p| p.port() == peer.port), "{r:?}");

    // HTTP: announce and scrape.
    let http_peer = TestPeer::random();
    let announced = http_tracker::announce(
        &t.http,
        &http_peer.announce(AnnounceEvent::Started),
        &opts.http,
    )
    .await
    .unwrap_or_else(|e| panic!("HTTP announce: {e}\n{}", t.log()));
    assert!(announced.interval > 0);
    assert_eq!(announced.leechers, 1, "{announced:?}");
    let scraped = http_tracker::scrape(&t.http, &[http_peer.info_hash], &opts.http)
        .await
        .unwrap();
    assert_eq!(scraped.files[&http_peer.info_hash].leechers, 1);

    // API and health endpoints.
    api::api_health(&t.api, &opts.http).await.unwrap();
    api::http_tracker_health(&t.http, &opts.http).await.unwrap();
    let report = api::health_check(&t.health, &opts.http).await.unwrap();
    assert_eq!(report.details.len(), 3, "UDP, HTTP, API: {report:?}");
    assert!(
        report.details.iter().all(|d| d.result.is_ok()),
        "{report:?}"
    );

    // The API counts what was announced.
    let after = stats(&t).await;
    assert!(after.torrents >= 2, "{after:?}");
    assert!(
        after.udp4_announces_handled >= before.udp4_announces_handled + 2,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.tcp4_announces_handled > before.tcp4_announces_handled,
        "{before:?} -> {after:?}"
    );
    assert!(after.udp4_scrapes_handled > before.udp4_scrapes_handled);
    assert!(after.tcp4_scrapes_handled > before.tcp4_scrapes_handled);
}

#[tokio::test]
async fn the_whole_test_passes_and_counts_the_announces() {
    let t = Tracker::start(false);
    let report = probe::run_tracker_test(&t.endpoints(), &quick()).await;
    let text: Vec<String> = report.results.iter().map(ToString::to_string).collect();
    let text = text.join("\n");
    assert!(report.ok(), "{text}\n--- tracker log:\n{}", t.log());
    let names: Vec<&str> = report.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "HTTP tracker health",
            "API health",
            "health check API",
            "API stats",
            "UDP tracker",
            "HTTP tracker",
            "API stats",
            "announces counted"
        ],
        "{text}"
    );
    let counted = report.results.last().unwrap();
    assert!(
        counted
            .detail()
            .starts_with("1 UDP and 1 HTTP announce(s) counted"),
        "{text}"
    );
    // Nothing shown (text or JSON) holds the token.
    let json = serde_json::to_string(&report).unwrap();
    for shown in [&text, &json] {
        assert!(!shown.contains(t.token.expose()), "token leaked: {shown}");
    }
    assert!(text.contains("token=[REDACTED]"), "{text}");
    assert!(
        report
            .results
            .iter()
            .all(|r| r.latency < Duration::from_secs(3)),
        "{text}"
    );
}

#[tokio::test]
async fn wrong_token_and_closed_ports_fail_clearly() {
    let t = Tracker::start(false);
    let opts = quick();

    // A wrong token: rejected, and the message holds neither token.
    let wrong = Secret::new("WrongTokenValue12345");
    let r = probe::run_check(
        &Check::ApiStats {
            url: t.api.clone(),
            token: wrong.clone(),
        },
        &opts,
    )
    .await;
    let e = r.error().expect("a wrong token must fail");
    assert_eq!(e.kind(), "auth_rejected", "{e}");
    let message = format!("{r} {e:?} {}", serde_json::to_string(&r).unwrap());
    assert!(!message.contains(wrong.expose()), "{message}");
    assert!(!message.contains(t.token.expose()), "{message}");
    assert!(message.contains("rejected the admin token"), "{message}");

    // Closed TCP port: refused.
    let closed = free_tcp_port();
    let r = probe::run_check(
        &Check::ApiHealth {
            url: format!("http://127.0.0.1:{closed}").parse().unwrap(),
        },
        &opts,
    )
    .await;
    assert_eq!(r.error().map(ProbeError::kind), Some("refused"), "{r}");
    assert!(r.detail().contains("connection refused"), "{r}");

    // Closed UDP port on loopback: ICMP port unreachable, classified as refused (a firewall
    // dropping the datagrams would be a timeout; both say what to check).
    let closed = free_udp_port();
    let r = probe::run_check(
        &Check::UdpTracker {
            target: UdpTarget::from_addr(SocketAddr::from((Ipv4Addr::LOCALHOST, closed))),
            peer: TestPeer::random(),
        },
        &opts,
    )
    .await;
    let kind = r.error().map(ProbeError::kind);
    assert!(matches!(kind, Some("refused" | "timeout")), "{r}");
    assert!(r.latency < Duration::from_secs(3), "{r}");

    // The HTTP tracker's port given as the API: answered, but not the stats (a 404 or a body
    // that is not the stats JSON), and the token stays hidden.
    let r = probe::run_check(
        &Check::ApiStats {
            url: t.http.clone(),
            token: t.token.clone(),
        },
        &opts,
    )
    .await;
    assert!(!r.is_ok(), "{r}");
    assert!(!r.detail().contains(t.token.expose()), "{r}");
    assert!(
        matches!(
            r.error().map(ProbeError::kind),
            Some("http_status" | "bad_response")
        ),
        "{r}"
    );
}

#[tokio::test]
async fn https_tracker_with_resolve_override_and_private_ca() {
    let t = Tracker::start(true);
    let https = t.https.clone().unwrap();
    let ca = t.dir.path().join("ca.pem");
    let peer = TestPeer::random();
    let check = Check::HttpTracker {
        url: https.clone(),
        peer,
    };
    let mut opts = quick();
    // No DNS for tracker.test: the override answers it.
    opts.http
        .resolve
        .insert("tracker.test".into(), "127.0.0.1".parse().unwrap());

    // System roots only: the private CA is not trusted.
    let r = probe::run_check(&check, &opts).await;
    assert_eq!(r.error().map(ProbeError::kind), Some("tls"), "{r}");
    assert!(r.detail().contains("Caddy"), "{r}");

    // Trusting the CA's PEM: passes.
    opts.http.tls = TlsTrust::ExtraRootPem(ca.clone());
    let r = probe::run_check(&check, &opts).await;
    assert!(r.is_ok(), "{r}\n{}", t.log());
    assert!(matches!(r.output(), Some(CheckOutput::Tracker { .. })));

    // The explicitly insecure mode: passes without the CA.
    opts.http.tls = TlsTrust::InsecureSkipVerify;
    assert!(probe::run_check(&check, &opts).await.is_ok());

    // Without the override, tracker.test does not resolve.
    let mut no_dns = quick();
    no_dns.http.tls = TlsTrust::ExtraRootPem(ca);
    let r = probe::run_check(&check, &no_dns).await;
    // (No DNS server may answer here at all: then it is the request's timeout.)
    assert!(
        matches!(
            r.error().map(ProbeError::kind),
            Some("resolve" | "network" | "timeout")
        ),
        "{r}"
    );

    // Tracker 3.0.0's health check API checks every HTTP tracker over plain HTTP, so an HTTP
    // tracker with its own TLS makes it report an error: the check names the failing binding.
    let r = probe::run_check(
        &Check::HealthCheck {
            url: t.health.clone(),
        },
        &quick(),
    )
    .await;
    assert_eq!(r.error().map(ProbeError::kind), Some("unhealthy"), "{r}");
    let https_port = https.port().unwrap();
    assert!(
        r.detail().contains(&format!("127.0.0.1:{https_port}")),
        "{r}"
    );
}
