//! The protocol-neutral model: info hashes, peer ids, a test peer, announce and scrape results.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use rand::Rng;
use serde::{Serialize, Serializer};

/// The prefix of every peer id this tool makes (Azureus style: client `TD`, version 0001).
pub const PEER_ID_PREFIX: &[u8; 8] = b"-TD0001-";

/// A 20-byte torrent info hash. Shown (and serialized) as 40 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfoHash(pub [u8; 20]);

/// A 20-byte peer id. Shown as text when printable, else as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(pub [u8; 20]);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl InfoHash {
    /// A random info hash, from the OS random source (no real torrent has it).
    pub fn random() -> Self {
        Self(rand::rngs::OsRng.r#gen())
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl Serialize for InfoHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl PeerId {
    /// [`PEER_ID_PREFIX`] followed by 12 random alphanumeric characters.
    pub fn random() -> Self {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(PEER_ID_PREFIX);
        let mut rng = rand::rngs::OsRng;
        for b in &mut id[8..] {
            *b = rng.sample(rand::distributions::Alphanumeric);
        }
        Self(id)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic()) {
            f.write_str(&String::from_utf8_lossy(&self.0))
        } else {
            f.write_str(&hex(&self.0))
        }
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The announce `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceEvent {
    /// A regular announce (no event).
    None,
    Completed,
    Started,
    Stopped,
}

impl AnnounceEvent {
    /// The BEP 15 code: 0 none, 1 completed, 2 started, 3 stopped.
    pub fn udp_code(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }

    /// The BEP 3 `event` query value; `None` for a regular announce (the key is omitted).
    pub fn http_value(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Completed => Some("completed"),
            Self::Started => Some("started"),
            Self::Stopped => Some("stopped"),
        }
    }
}

/// What one announce says about the announcing peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The port the peer claims to listen on.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: AnnounceEvent,
    /// BEP 15 `key` (also sent over HTTP).
    pub key: u32,
    /// How many peers to ask for; `None` for the tracker's default.
    pub num_want: Option<u32>,
}

/// A peer made up for a check: a random torrent nobody else has, and a random peer id.
///
/// Announcing it registers one peer in one new swarm, which the tracker's statistics then count
/// (`torrents`, `*_announces_handled`). It is never removed explicitly: it expires with the
/// tracker's peer timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestPeer {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub key: u32,
}

impl TestPeer {
    /// A random info hash, a `-TD0001-` peer id, a random port in 49152..=65535 and a random key.
    pub fn random() -> Self {
        let mut rng = rand::rngs::OsRng;
        Self {
            info_hash: InfoHash::random(),
            peer_id: PeerId::random(),
            port: rng.gen_range(49152..=65535),
            key: rng.r#gen(),
        }
    }

    /// The announce of this peer with `event`: a leecher with 1 MiB left and nothing transferred.
    pub fn announce(&self, event: AnnounceEvent) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            port: self.port,
            uploaded: 0,
            downloaded: 0,
            left: 1 << 20,
            event,
            key: self.key,
            num_want: Some(50),
        }
    }
}

/// The tracker's answer to an announce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnounceResponse {
    /// Seconds to wait before the next regular announce.
    pub interval: u32,
    /// BEP 3 `min interval` (HTTP only, when sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<u32>,
    /// Peers that have the whole torrent (`complete`).
    pub seeders: u32,
    /// Peers still downloading (`incomplete`).
    pub leechers: u32,
    /// Other peers of the swarm.
    pub peers: Vec<SocketAddr>,
}

/// The tracker's counters for one torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ScrapeEntry {
    /// `complete`.
    pub seeders: u32,
    /// `downloaded`: how many peers ever completed the torrent.
    pub completed: u32,
    /// `incomplete`.
    pub leechers: u32,
}

/// The tracker's answer to a scrape: one entry per info hash it reported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ScrapeResponse {
    pub files: BTreeMap<InfoHash, ScrapeEntry>,
}

impl fmt::Display for AnnounceResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interval {}s, {} seeder(s), {} leecher(s), {} peer(s) returned",
            self.interval,
            self.seeders,
            self.leechers,
            self.peers.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_peer_has_prefix_and_differs() {
        let a = TestPeer::random();
        let b = TestPeer::random();
        assert_eq!(&a.peer_id.0[..8], PEER_ID_PREFIX);
        assert!(a.peer_id.0[8..].iter().all(u8::is_ascii_alphanumeric));
        assert_ne!(a.info_hash, b.info_hash);
        assert_ne!(a.peer_id, b.peer_id);
        assert!(a.port >= 49152);
        assert!(a.peer_id.to_string().starts_with("-TD0001-"));
    }

    #[test]
    fn display_and_serialize() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(h.to_string(), "ab".repeat(20));
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            format!("\"{}\"", "ab".repeat(20))
        );
        assert_eq!(PeerId([0; 20]).to_string(), "00".repeat(20));
        assert_eq!(
            serde_json::to_string(&AnnounceEvent::Started).unwrap(),
            "\"started\""
        );
    }
}
