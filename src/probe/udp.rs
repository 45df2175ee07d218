//! UDP tracker client (BEP 15): connect, announce, scrape, with retransmission.
//!
//! Packets are big-endian. Every request carries a random transaction id; a datagram with another
//! transaction id is ignored (a late answer to an earlier try). A connection id is used for at
//! most one minute, then a new connect is made, as BEP 15 asks.
//!
//! BEP 15 retransmits after `15 * 2^n` seconds, n = 0..=8 (about an hour in all); a check wants an
//! answer quickly, so [`UdpRetry::default`] waits 2 s per try, 3 tries. [`UdpRetry::bep15`] gives
//! the schedule of the spec.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::error::ProbeError;
use super::peer::{AnnounceRequest, AnnounceResponse, InfoHash, ScrapeEntry, ScrapeResponse};

/// The BEP 15 magic constant of the connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;
/// At most this many info hashes fit in one scrape request (BEP 15).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// How long a connection id may be used by a client (BEP 15).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);

/// Biggest datagram accepted (an announce answer with ~200 IPv6 peers fits).
const MAX_DATAGRAM: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

/// The connect request: protocol id, action 0, transaction id (16 bytes).
pub fn encode_connect(transaction_id: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(16);
    p.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    p.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    p.extend_from_slice(&transaction_id.to_be_bytes());
    p
}

/// The announce request (98 bytes). `ip` is always 0 (the tracker uses the sender's address).
pub fn encode_announce(connection_id: u64, transaction_id: u32, req: &AnnounceRequest) -> Vec<u8> {
    let mut p = Vec::with_capacity(98);
    p.extend_from_slice(&connection_id.to_be_bytes());
    p.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    p.extend_from_slice(&transaction_id.to_be_bytes());
    p.extend_from_slice(&req.info_hash.0);
    p.extend_from_slice(&req.peer_id.0);
    p.extend_from_slice(&req.downloaded.to_be_bytes());
    p.extend_from_slice(&req.left.to_be_bytes());
    p.extend_from_slice(&req.uploaded.to_be_bytes());
    p.extend_from_slice(&req.event.udp_code().to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes()); // IP address: default
    p.extend_from_slice(&req.key.to_be_bytes());
    // num_want is a signed 32-bit integer; -1 means the tracker's default.
    let num_want: i32 = req
        .num_want
        .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
    p.extend_from_slice(&num_want.to_be_bytes());
    p.extend_from_slice(&req.port.to_be_bytes());
    p
}

/// The scrape request: 16 bytes plus 20 per info hash.
pub fn encode_scrape(connection_id: u64, transaction_id: u32, hashes: &[InfoHash]) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + 20 * hashes.len());
    p.extend_from_slice(&connection_id.to_be_bytes());
    p.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    p.extend_from_slice(&transaction_id.to_be_bytes());
    for h in hashes {
        p.extend_from_slice(&h.0);
    }
    p
}

/// A decoded tracker datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        transaction_id: u32,
        response: AnnounceResponse,
    },
    /// The entries in the order of the requested hashes.
    Scrape {
        transaction_id: u32,
        entries: Vec<ScrapeEntry>,
    },
    Error {
        transaction_id: u32,
        message: String,
    },
}

impl Response {
    pub fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id, .. }
            | Self::Announce { transaction_id, .. }
            | Self::Scrape { transaction_id, .. }
            | Self::Error { transaction_id, .. } => *transaction_id,
        }
    }
}

/// Why a datagram is not a BEP 15 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("datagram of {0} byte(s) is too short for a tracker response")]
    TooShort(usize),
    #[error("unknown action {0}")]
    UnknownAction(u32),
    #[error("{action} response of {len} byte(s) has a bad length")]
    BadLength { action: &'static str, len: usize },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a tracker datagram. `ipv6` selects the peer format of announce answers: 6 bytes per
/// peer over IPv4, 18 bytes over IPv6 (the family of the socket the request went over).
pub fn decode_response(b: &[u8], ipv6: bool) -> Result<Response, PacketError> {
    if b.len() < 8 {
        return Err(PacketError::TooShort(b.len()));
    }
    let action = u32_at(b, 0);
    let transaction_id = u32_at(b, 4);
    match action {
        ACTION_CONNECT => {
            if b.len() < 16 {
                return Err(PacketError::BadLength {
                    action: "connect",
                    len: b.len(),
                });
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&b[8..16]);
            Ok(Response::Connect {
                transaction_id,
                connection_id: u64::from_be_bytes(id),
            })
        }
        ACTION_ANNOUNCE => {
            let peer_len = if ipv6 { 18 } else { 6 };
            if b.len() < 20 || !(b.len() - 20).is_multiple_of(peer_len) {
                return Err(PacketError::BadLength {
                    action: "announce",
                    len: b.len(),
                });
            }
            let peers = b[20..]
                .chunks_exact(peer_len)
                .map(|c| {
                    let (ip, port) = c.split_at(peer_len - 2);
                    let ip = if ipv6 {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(ip);
                        IpAddr::V6(Ipv6Addr::from(o))
                    } else {
                        IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
                    };
                    SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]))
                })
                .collect();
            Ok(Response::Announce {
                transaction_id,
                response: AnnounceResponse {
                    interval: u32_at(b, 8),
                    min_interval: None,
                    leechers: u32_at(b, 12),
                    seeders: u32_at(b, 16),
                    peers,
                },
            })
        }
        ACTION_SCRAPE => {
            if !(b.len() - 8).is_multiple_of(12) {
                return Err(PacketError::BadLength {
                    action: "scrape",
                    len: b.len(),
                });
            }
            let entries = b[8..]
                .chunks_exact(12)
                .map(|c| ScrapeEntry {
                    seeders: u32_at(c, 0),
                    completed: u32_at(c, 4),
                    leechers: u32_at(c, 8),
                })
                .collect();
            Ok(Response::Scrape {
                transaction_id,
                entries,
            })
        }
        ACTION_ERROR => Ok(Response::Error {
            transaction_id,
            message: String::from_utf8_lossy(&b[8..])
                .trim_end_matches('\0')
                .to_string(),
        }),
        other => Err(PacketError::UnknownAction(other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// How long to wait for an answer, and how often to send a request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRetry {
    /// The wait after the first send.
    pub timeout: Duration,
    /// How many times a request is sent in all (at least 1).
    pub tries: u32,
    /// Double the wait after each try (as BEP 15 does).
    pub backoff: bool,
}

impl Default for UdpRetry {
    /// 2 s per try, 3 tries, no backoff: 6 s at most per request.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            tries: 3,
            backoff: false,
        }
    }
}

impl UdpRetry {
    /// The schedule of BEP 15: 15 s doubled each try, 9 tries (about 64 minutes in all).
    pub fn bep15() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            tries: 9,
            backoff: true,
        }
    }

    /// The wait after try `n` (0-based).
    pub fn timeout_of(&self, n: u32) -> Duration {
        if self.backoff {
            self.timeout.saturating_mul(1u32 << n.min(16))
        } else {
            self.timeout
        }
    }

    /// The longest a request can take: the sum of all waits.
    pub fn deadline(&self) -> Duration {
        (0..self.tries.max(1)).map(|n| self.timeout_of(n)).sum()
    }
}

/// A UDP tracker client bound to one tracker address.
#[derive(Debug)]
pub struct UdpTrackerClient {
    socket: UdpSocket,
    target: SocketAddr,
    /// How the target is shown in errors (`udp://host:port`).
    label: String,
    retry: UdpRetry,
    connection: Option<(u64, Instant)>,
}

impl UdpTrackerClient {
    /// Binds a local socket of the target's family and connects it to `target` (no packet is sent
    /// yet). `label` is how the target appears in errors, e.g. `udp://tracker.example.com:6969`.
    pub async fn new(
        target: SocketAddr,
        label: impl Into<String>,
        retry: UdpRetry,
    ) -> Result<Self, ProbeError> {
        let label = label.into();
        let local: SocketAddr = if target.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let setup = |e: std::io::Error| ProbeError::Setup {
            target: label.clone(),
            detail: format!("local UDP socket: {e}"),
        };
        let socket = UdpSocket::bind(local).await.map_err(setup)?;
        // A connected socket receives only from the target, and reports ICMP port unreachable.
        socket.connect(target).await.map_err(setup)?;
        Ok(Self {
            socket,
            target,
            label,
            retry,
            connection: None,
        })
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// BEP 15 connect: obtains a connection id (kept for later requests) and returns it.
    pub async fn connect(&mut self) -> Result<u64, ProbeError> {
        let tid = rand::random::<u32>();
        let answer = self
            .exchange("UDP connect", &encode_connect(tid), tid)
            .await?;
        match answer {
            Response::Connect { connection_id, .. } => {
                self.connection = Some((connection_id, Instant::now()));
                Ok(connection_id)
            }
            other => Err(self.unexpected("UDP connect", "connect", &other)),
        }
    }

    /// A valid connection id: the current one if younger than a minute, else a new one.
    async fn connection_id(&mut self) -> Result<u64, ProbeError> {
        match self.connection {
            Some((id, at)) if at.elapsed() < CONNECTION_ID_LIFETIME => Ok(id),
            _ => self.connect().await,
        }
    }

    /// BEP 15 announce (connecting first when needed).
    pub async fn announce(
        &mut self,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, ProbeError> {
        let cid = self.connection_id().await?;
        let tid = rand::random::<u32>();
        let packet = encode_announce(cid, tid, req);
        match self.exchange("UDP announce", &packet, tid).await? {
            Response::Announce { response, .. } => Ok(response),
            other => Err(self.unexpected("UDP announce", "announce", &other)),
        }
    }

    /// BEP 15 scrape of up to [`MAX_SCRAPE_HASHES`] info hashes (connecting first when needed).
    pub async fn scrape(&mut self, hashes: &[InfoHash]) -> Result<ScrapeResponse, ProbeError> {
        if hashes.is_empty() || hashes.len() > MAX_SCRAPE_HASHES {
            return Err(ProbeError::Setup {
                target: self.label.clone(),
                detail: format!(
                    "a UDP scrape takes 1 to {MAX_SCRAPE_HASHES} info hashes, not {}",
                    hashes.len()
                ),
            });
        }
        let cid = self.connection_id().await?;
        let tid = rand::random::<u32>();
        let packet = encode_scrape(cid, tid, hashes);
        match self.exchange("UDP scrape", &packet, tid).await? {
            Response::Scrape { entries, .. } => {
                if entries.len() != hashes.len() {
                    return Err(ProbeError::BadResponse {
                        what: "UDP scrape",
                        target: self.label.clone(),
                        detail: format!(
                            "{} entries for {} info hash(es)",
                            entries.len(),
                            hashes.len()
                        ),
                    });
                }
                Ok(ScrapeResponse {
                    files: hashes.iter().copied().zip(entries).collect(),
                })
            }
            other => Err(self.unexpected("UDP scrape", "scrape", &other)),
        }
    }

    fn unexpected(&self, what: &'static str, expected: &str, got: &Response) -> ProbeError {
        let got = match got {
            Response::Connect { .. } => "connect",
            Response::Announce { .. } => "announce",
            Response::Scrape { .. } => "scrape",
            Response::Error { .. } => "error",
        };
        ProbeError::BadResponse {
            what,
            target: self.label.clone(),
            detail: format!("a {got} answer to a {expected} request"),
        }
    }

    /// Sends `packet` and waits for the answer carrying `tid`, retransmitting per `self.retry`.
    /// An error answer (action 3) becomes [`ProbeError::TrackerFailure`].
    async fn exchange(
        &self,
        what: &'static str,
        packet: &[u8],
        tid: u32,
    ) -> Result<Response, ProbeError> {
        let started = Instant::now();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        for n in 0..self.retry.tries.max(1) {
            self.socket
                .send(packet)
                .await
                .map_err(|e| self.io_error(what, &e))?;
            let until = tokio::time::Instant::now() + self.retry.timeout_of(n);
            loop {
                let received = tokio::time::timeout_at(until, self.socket.recv(&mut buf)).await;
                let len = match received {
                    Err(_elapsed) => break, // next try
                    Ok(Ok(len)) => len,
                    Ok(Err(e)) => return Err(self.io_error(what, &e)),
                };
                let response = match decode_response(&buf[..len], self.target.is_ipv6()) {
                    Ok(r) => r,
                    // Not for us, or garbage: a stray datagram cannot be matched to this request.
                    Err(_) if len >= 8 && u32_at(&buf, 4) != tid => continue,
                    Err(e) => {
                        return Err(ProbeError::BadResponse {
                            what,
                            target: self.label.clone(),
                            detail: e.to_string(),
                        });
                    }
                };
                if response.transaction_id() != tid {
                    continue; // a late answer to an earlier request
                }
                if let Response::Error { message, .. } = response {
                    return Err(ProbeError::TrackerFailure {
                        what,
                        target: self.label.clone(),
                        reason: message,
                    });
                }
                return Ok(response);
            }
        }
        Err(ProbeError::Timeout {
            what,
            target: self.label.clone(),
            proto: "UDP",
            within: started.elapsed(),
        })
    }

    fn io_error(&self, what: &'static str, e: &std::io::Error) -> ProbeError {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            ProbeError::Refused {
                what,
                target: self.label.clone(),
                proto: "UDP: ICMP port unreachable",
            }
        } else {
            ProbeError::Network {
                what,
                target: self.label.clone(),
                detail: e.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::peer::{AnnounceEvent, PeerId};

    #[test]
    fn connect_request_is_byte_exact() {
        assert_eq!(
            encode_connect(0x1234_5678),
            [
                0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol id
                0x00, 0x00, 0x00, 0x00, // action 0
                0x12, 0x34, 0x56, 0x78, // transaction id
            ]
        );
    }

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([0x11; 20]),
            peer_id: PeerId(*b"-TD0001-abcdefghijkl"),
            port: 0x1AE1, // 6881
            uploaded: 3,
            downloaded: 0x0102_0304_0506_0708,
            left: 0xFFFF_FFFF_FFFF,
            event: AnnounceEvent::Started,
            key: 0xDEAD_BEEF,
            num_want: None,
        }
    }

    #[test]
    fn announce_request_is_byte_exact() {
        let p = encode_announce(0x0A0B_0C0D_0E0F_1011, 0x2222_3333, &request());
        let mut expected = vec![0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11];
        expected.extend([0, 0, 0, 1]); // action announce
        expected.extend([0x22, 0x22, 0x33, 0x33]); // transaction id
        expected.extend([0x11; 20]); // info hash
        expected.extend(b"-TD0001-abcdefghijkl"); // peer id
        expected.extend([1, 2, 3, 4, 5, 6, 7, 8]); // downloaded
        expected.extend([0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]); // left
        expected.extend([0, 0, 0, 0, 0, 0, 0, 3]); // uploaded
        expected.extend([0, 0, 0, 2]); // event started
        expected.extend([0, 0, 0, 0]); // ip: default
        expected.extend([0xDE, 0xAD, 0xBE, 0xEF]); // key
        expected.extend([0xFF, 0xFF, 0xFF, 0xFF]); // num_want -1
        expected.extend([0x1A, 0xE1]); // port
        assert_eq!(p.len(), 98);
        assert_eq!(p, expected);

        let mut r = request();
        r.num_want = Some(50);
        r.event = AnnounceEvent::None;
        let p = encode_announce(1, 2, &r);
        assert_eq!(&p[80..84], &[0, 0, 0, 0], "event none");
        assert_eq!(&p[92..96], &[0, 0, 0, 50], "num_want");
        r.num_want = Some(u32::MAX);
        assert_eq!(&encode_announce(1, 2, &r)[92..96], &i32::MAX.to_be_bytes());
    }

    #[test]
    fn scrape_request_is_byte_exact() {
        let p = encode_scrape(7, 9, &[InfoHash([0xAA; 20]), InfoHash([0xBB; 20])]);
        let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 9];
        expected.extend([0xAA; 20]);
        expected.extend([0xBB; 20]);
        assert_eq!(p, expected);
    }

    #[test]
    fn decodes_connect() {
        let b = [0, 0, 0, 0, 0xCA, 0xFE, 0xBA, 0xBE, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            decode_response(&b, false),
            Ok(Response::Connect {
                transaction_id: 0xCAFE_BABE,
                connection_id: 0x0102_0304_0506_0708
            })
        );
        assert_eq!(
            decode_response(&b[..12], false),
            Err(PacketError::BadLength {
                action: "connect",
                len: 12
            })
        );
    }

    #[test]
    fn decodes_announce_ipv4_and_ipv6() {
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 5];
        b.extend([0, 0, 0, 120]); // interval
        b.extend([0, 0, 0, 2]); // leechers
        b.extend([0, 0, 0, 3]); // seeders
        b.extend([127, 0, 0, 1, 0x1A, 0xE1]);
        b.extend([10, 0, 0, 2, 0x00, 0x50]);
        let r = decode_response(&b, false).unwrap();
        assert_eq!(
            r,
            Response::Announce {
                transaction_id: 5,
                response: AnnounceResponse {
                    interval: 120,
                    min_interval: None,
                    leechers: 2,
                    seeders: 3,
                    peers: vec![
                        "127.0.0.1:6881".parse().unwrap(),
                        "10.0.0.2:80".parse().unwrap()
                    ],
                }
            }
        );
        // 12 bytes of peers are not a whole number of IPv6 peers.
        assert!(decode_response(&b, true).is_err());

        let mut b6 = b[..20].to_vec();
        let mut peer = std::net::Ipv6Addr::LOCALHOST.octets().to_vec();
        peer.extend([0x1A, 0xE1]);
        b6.extend(&peer);
        match decode_response(&b6, true).unwrap() {
            Response::Announce { response, .. } => {
                assert_eq!(response.peers, vec!["[::1]:6881".parse().unwrap()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode_response(&b[..19], false),
            Err(PacketError::BadLength {
                action: "announce",
                len: 19
            })
        );
        assert_eq!(
            decode_response(&b[..23], false),
            Err(PacketError::BadLength {
                action: "announce",
                len: 23
            })
        );
    }

    #[test]
    fn decodes_scrape_and_error() {
        let mut b = vec![0, 0, 0, 2, 0, 0, 0, 9];
        b.extend([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        b.extend([0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6]);
        assert_eq!(
            decode_response(&b, false),
            Ok(Response::Scrape {
                transaction_id: 9,
                entries: vec![
                    ScrapeEntry {
                        seeders: 1,
                        completed: 2,
                        leechers: 3
                    },
                    ScrapeEntry {
                        seeders: 4,
                        completed: 5,
                        leechers: 6
                    },
                ]
            })
        );
        assert!(decode_response(&b[..19], false).is_err());

        let mut e = vec![0, 0, 0, 3, 0, 0, 0, 9];
        e.extend(b"bad connection id\0");
        assert_eq!(
            decode_response(&e, false),
            Ok(Response::Error {
                transaction_id: 9,
                message: "bad connection id".into()
            })
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 9, 0, 0, 0, 0], false),
            Err(PacketError::UnknownAction(9))
        );
        assert_eq!(
            decode_response(&[0, 0, 0], false),
            Err(PacketError::TooShort(3))
        );
    }

    #[test]
    fn retry_schedules() {
        let d = UdpRetry::default();
        assert_eq!(d.deadline(), Duration::from_secs(6));
        let b = UdpRetry::bep15();
        assert_eq!(b.timeout_of(0), Duration::from_secs(15));
        assert_eq!(b.timeout_of(8), Duration::from_secs(3840));
        assert_eq!(b.deadline(), Duration::from_secs(15 * 511));
    }

    /// A fake tracker on loopback: checks retransmission, stray datagrams and error answers.
    #[tokio::test]
    async fn client_retransmits_ignores_strays_and_surfaces_errors() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let fake = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            // Drop the first connect (forces a retransmission).
            let (n, _) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, 16);
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..8], &PROTOCOL_ID.to_be_bytes());
            let tid = u32_at(&buf[..n], 12);
            // A stray answer with another transaction id, then the real one.
            let mut stray = vec![0, 0, 0, 0];
            stray.extend(tid.wrapping_add(1).to_be_bytes());
            stray.extend(1u64.to_be_bytes());
            server.send_to(&stray, from).await.unwrap();
            let mut ok = vec![0, 0, 0, 0];
            ok.extend(tid.to_be_bytes());
            ok.extend(0x42u64.to_be_bytes());
            server.send_to(&ok, from).await.unwrap();
            // The announce gets an error answer.
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, 98);
            assert_eq!(&buf[..8], &0x42u64.to_be_bytes(), "connection id reused");
            let mut err = vec![0, 0, 0, 3];
            err.extend(&buf[12..16]);
            err.extend(b"torrent not whitelisted");
            server.send_to(&err, from).await.unwrap();
        });
        let retry = UdpRetry {
            timeout: Duration::from_millis(300),
            tries: 3,
            backoff: false,
        };
        let mut client = UdpTrackerClient::new(addr, format!("udp://{addr}"), retry)
            .await
            .unwrap();
        assert_eq!(client.connect().await.unwrap(), 0x42);
        let err = client.announce(&request()).await.expect_err("error answer");
        assert_eq!(err.kind(), "tracker_failure");
        assert!(err.to_string().contains("torrent not whitelisted"), "{err}");
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn silent_server_times_out_after_all_tries() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let retry = UdpRetry {
            timeout: Duration::from_millis(100),
            tries: 3,
            backoff: false,
        };
        let mut client = UdpTrackerClient::new(addr, "udp://silent", retry)
            .await
            .unwrap();
        let started = Instant::now();
        let err = client.connect().await.unwrap_err();
        assert_eq!(err.kind(), "timeout", "{err}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let (n, _) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, 16, "each try sends the connect again");
        }
    }
}
