//! From the operator's side (this machine), what a deployed host exposes (ADR 31, 32): a full
//! TCP connect scan and BEP 15 connects to candidate UDP ports. Only ever aimed at the address
//! of an instance the test created on the project's LXD bridge.

use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use futures_util::StreamExt;

use super::Sandbox;
use super::lxd::{exec_out, runtime, state};

/// How many connection attempts are in flight at once, and how long one waits. The instance is
/// on a local bridge: an open port answers in well under a millisecond; a filtered one (ufw's
/// and DOCKER-USER's DROP) never answers.
const CONCURRENT: usize = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Every TCP port of `ip`, 1-65535, that accepts a connection from here, in order.
pub fn open_tcp_ports(ip: IpAddr) -> Vec<u16> {
    runtime().block_on(async {
        let mut open: Vec<u16> = futures_util::stream::iter(1..=u16::MAX)
            .map(|port| async move {
                let connect = tokio::net::TcpStream::connect((ip, port));
                matches!(
                    tokio::time::timeout(CONNECT_TIMEOUT, connect).await,
                    Ok(Ok(_))
                )
                .then_some(port)
            })
            .buffer_unordered(CONCURRENT)
            .filter_map(|p| async move { p })
            .collect()
            .await;
        open.sort_unstable();
        open
    })
}

/// Whether `ip:port` answers a BEP 15 connect request (two tries, one second each).
pub fn udp_tracker_answers(ip: IpAddr, port: u16) -> bool {
    let sock = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let transaction = 0x5eed_0001u32.to_be_bytes();
    let mut request = Vec::new();
    request.extend(0x0417_2710_1980u64.to_be_bytes());
    request.extend(0u32.to_be_bytes());
    request.extend(transaction);
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        sock.send_to(&request, (ip, port)).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return n >= 16 && buf[..4] == [0, 0, 0, 0] && buf[4..8] == transaction;
        }
    }
    false
}

/// After a deploy of a stack with one UDP tracker on 6969, one HTTP tracker on 7070 and the API
/// and Prometheus on the host's loopback: from here, TCP finds exactly SSH and the HTTP
/// tracker open, and UDP only the tracker. A port Docker publishes outside the model (a
/// container started by hand with `-p 19090:9090`) answers on the host and stays closed from
/// here: the DOCKER-USER rules filter what ufw cannot see.
pub fn only_the_intended_ports_are_open(sb: &Sandbox, name: &str) {
    let st = state(sb, name);
    let ip: IpAddr = st["host"]["ip"].as_str().unwrap().parse().unwrap();
    let instance = st["host"]["instance"].as_str().unwrap().to_string();
    let ssh_port = st["host"]["ssh_port"].as_u64().unwrap() as u16;

    // The rules are in place and persisted once.
    let (code, rules) = exec_out(&instance, "iptables -S DOCKER-USER");
    assert_eq!(code, 0, "{rules}");
    for rule in [
        "-A DOCKER-USER -p udp -m conntrack --ctorigdstport 6969 -j RETURN",
        "-A DOCKER-USER -p tcp -m conntrack --ctorigdstport 7070 -j RETURN",
        "-A DOCKER-USER -m conntrack --ctstate NEW -j DROP",
    ] {
        assert!(rules.contains(rule), "missing {rule:?} in:\n{rules}");
    }
    assert!(
        !rules.contains("1212") && !rules.contains("9090"),
        "{rules}"
    );
    let (_, persisted) = exec_out(
        &instance,
        "grep -c '^# BEGIN torrust-tracker-deployer DOCKER-USER$' /etc/ufw/after.rules",
    );
    assert_eq!(persisted.trim(), "1", "after.rules: {persisted}");

    // A port published by Docker outside the model, answering on the host itself.
    let (code, out) = exec_out(
        &instance,
        "img=$(docker ps --filter label=com.docker.compose.service=prometheus \
         --format '{{.Image}}' | head -n1) && \
         docker run -d --name torrust-expo-probe -p 19090:9090 \"$img\" >/dev/null && \
         for i in $(seq 1 60); do \
           curl -fsS -o /dev/null http://127.0.0.1:19090/-/healthy && echo answered && exit 0; \
           sleep 0.5; \
         done; echo silent",
    );
    assert_eq!((code, out.trim()), (0, "answered"), "the probe container");

    let open = open_tcp_ports(ip);
    exec_out(&instance, "docker rm -f torrust-expo-probe >/dev/null 2>&1");
    // SSH, the HTTP tracker, and Grafana when it is not behind the TLS proxy (published on
    // 3100, as the incumbent does). Not the API (loopback), Prometheus (loopback), the health
    // check API or MySQL (never published), nor the probe container's 19090.
    let mut expected = vec![ssh_port, 7070];
    if st["config"]["grafana"].is_object() && st["config"]["grafana"]["use_tls_proxy"] != true {
        expected.push(3100);
    }
    expected.sort_unstable();
    assert_eq!(open, expected, "open TCP ports of {ip}");

    // ufw reloads its rules files (as at boot): the block comes back once, not twice.
    let (code, out) = exec_out(
        &instance,
        "ufw reload >/dev/null && iptables -S DOCKER-USER | grep -c 'ctorigdstport 7070'",
    );
    assert_eq!((code, out.trim()), (0, "1"), "after `ufw reload`");

    assert!(udp_tracker_answers(ip, 6969), "the UDP tracker is silent");
    for port in [6868, 6970, 443, 1212, 1313, 7070, 9090, 19090] {
        assert!(
            !udp_tracker_answers(ip, port),
            "UDP {port} answered a tracker connect"
        );
    }
}
