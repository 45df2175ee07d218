//! HTTP tracker client (BEP 3 announce and scrape, BEP 23 compact peers, BEP 7 `peers6`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

use super::bencode::{self, Value};
use super::error::ProbeError;
use super::http::{self, HttpOptions, display_url, join, percent_encode};
use super::peer::{AnnounceRequest, AnnounceResponse, InfoHash, ScrapeEntry, ScrapeResponse};

/// The announce URL of a tracker base URL (`{base}/announce`) with the BEP 3 query of `req`
/// and `compact=1`.
pub fn announce_url(base: &Url, req: &AnnounceRequest) -> Url {
    let mut url = join(base, "announce");
    let mut q = format!(
        "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1&key={:08x}",
        percent_encode(&req.info_hash.0),
        percent_encode(&req.peer_id.0),
        req.port,
        req.uploaded,
        req.downloaded,
        req.left,
        req.key,
    );
    if let Some(event) = req.event.http_value() {
        q.push_str("&event=");
        q.push_str(event);
    }
    if let Some(n) = req.num_want {
        q.push_str(&format!("&numwant={n}"));
    }
    url.set_query(Some(&q));
    url
}

/// The scrape URL (`{base}/scrape?info_hash=..&info_hash=..`).
pub fn scrape_url(base: &Url, hashes: &[InfoHash]) -> Url {
    let mut url = join(base, "scrape");
    let q: Vec<String> = hashes
        .iter()
        .map(|h| format!("info_hash={}", percent_encode(&h.0)))
        .collect();
    url.set_query(Some(&q.join("&")));
    url
}

/// What is wrong with a tracker body: a `failure reason`, or not the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    Failure(String),
    Invalid(String),
}

fn int_field(dict: &Value, key: &str) -> Result<Option<u32>, BodyError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::Int(i)) => u32::try_from(*i)
            .map(Some)
            .map_err(|_| BodyError::Invalid(format!("`{key}` is out of range: {i}"))),
        Some(other) => Err(BodyError::Invalid(format!(
            "`{key}` is a {}, not an integer",
            other.type_name()
        ))),
    }
}

fn top_dict(body: &[u8]) -> Result<Value, BodyError> {
    let value = bencode::decode(body).map_err(|e| BodyError::Invalid(e.to_string()))?;
    if value.as_dict().is_none() {
        return Err(BodyError::Invalid(format!(
            "the body is a bencoded {}, not a dictionary",
            value.type_name()
        )));
    }
    if let Some(reason) = value.get("failure reason") {
        let text = reason
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| format!("{reason:?}"));
        return Err(BodyError::Failure(text));
    }
    Ok(value)
}

/// Parses an announce body: `interval`, `min interval`, `complete`, `incomplete`, and `peers` in
/// compact (BEP 23) or dictionary form, plus `peers6` (BEP 7).
pub fn parse_announce(body: &[u8]) -> Result<AnnounceResponse, BodyError> {
    let v = top_dict(body)?;
    let interval = int_field(&v, "interval")?
        .ok_or_else(|| BodyError::Invalid("no `interval` in the announce answer".into()))?;
    let mut peers = Vec::new();
    match v.get("peers") {
        None => {}
        Some(Value::Bytes(b)) => {
            if !b.len().is_multiple_of(6) {
                return Err(BodyError::Invalid(format!(
                    "compact `peers` of {} bytes is not a multiple of 6",
                    b.len()
                )));
            }
            peers.extend(b.chunks_exact(6).map(|c| {
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
                    u16::from_be_bytes([c[4], c[5]]),
                )
            }));
        }
        Some(Value::List(list)) => {
            for p in list {
                let ip = p
                    .get("ip")
                    .and_then(Value::as_bytes)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| s.parse::<IpAddr>().ok());
                let port = p
                    .get("port")
                    .and_then(Value::as_int)
                    .and_then(|i| u16::try_from(i).ok());
                match (ip, port) {
                    (Some(ip), Some(port)) => peers.push(SocketAddr::new(ip, port)),
                    _ => return Err(BodyError::Invalid(format!("bad peer entry {p:?}"))),
                }
            }
        }
        Some(other) => {
            return Err(BodyError::Invalid(format!(
                "`peers` is a {}",
                other.type_name()
            )));
        }
    }
    if let Some(Value::Bytes(b)) = v.get("peers6") {
        if !b.len().is_multiple_of(18) {
            return Err(BodyError::Invalid(format!(
                "compact `peers6` of {} bytes is not a multiple of 18",
                b.len()
            )));
        }
        peers.extend(b.chunks_exact(18).map(|c| {
            let mut o = [0u8; 16];
            o.copy_from_slice(&c[..16]);
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(o)),
                u16::from_be_bytes([c[16], c[17]]),
            )
        }));
    }
    Ok(AnnounceResponse {
        interval,
        min_interval: int_field(&v, "min interval")?,
        seeders: int_field(&v, "complete")?.unwrap_or(0),
        leechers: int_field(&v, "incomplete")?.unwrap_or(0),
        peers,
    })
}

/// Parses a scrape body: `files` maps each 20-byte info hash to `complete`, `downloaded`,
/// `incomplete`.
pub fn parse_scrape(body: &[u8]) -> Result<ScrapeResponse, BodyError> {
    let v = top_dict(body)?;
    let files = v
        .get("files")
        .ok_or_else(|| BodyError::Invalid("no `files` in the scrape answer".into()))?
        .as_dict()
        .ok_or_else(|| BodyError::Invalid("`files` is not a dictionary".into()))?;
    let mut out = ScrapeResponse::default();
    for (key, entry) in files {
        let hash: [u8; 20] = key.as_slice().try_into().map_err(|_| {
            BodyError::Invalid(format!("a `files` key of {} bytes (not 20)", key.len()))
        })?;
        if entry.as_dict().is_none() {
            return Err(BodyError::Invalid(format!(
                "the entry of {} is not a dictionary",
                InfoHash(hash)
            )));
        }
        out.files.insert(
            InfoHash(hash),
            ScrapeEntry {
                seeders: int_field(entry, "complete")?.unwrap_or(0),
                completed: int_field(entry, "downloaded")?.unwrap_or(0),
                leechers: int_field(entry, "incomplete")?.unwrap_or(0),
            },
        );
    }
    Ok(out)
}

fn body_error(what: &'static str, target: String, e: BodyError) -> ProbeError {
    match e {
        BodyError::Failure(reason) => ProbeError::TrackerFailure {
            what,
            target,
            reason,
        },
        BodyError::Invalid(detail) => ProbeError::BadResponse {
            what,
            target,
            detail,
        },
    }
}

async fn get_ok(
    what: &'static str,
    url: &Url,
    shown: &str,
    opts: &HttpOptions,
) -> Result<Vec<u8>, ProbeError> {
    let answer = http::get(what, url, shown, opts, None).await?;
    // Trackers send `failure reason` with status 200, some with 4xx: read the body either way.
    if answer.status != 200 {
        if let Err(BodyError::Failure(reason)) = top_dict(&answer.body) {
            return Err(ProbeError::TrackerFailure {
                what,
                target: shown.to_string(),
                reason,
            });
        }
        return Err(ProbeError::HttpStatus {
            what,
            target: shown.to_string(),
            status: answer.status,
            body: answer.snippet(200),
        });
    }
    Ok(answer.body)
}

/// Announces `req` to the HTTP tracker at `base` (e.g. `http://host:7070`).
pub async fn announce(
    base: &Url,
    req: &AnnounceRequest,
    opts: &HttpOptions,
) -> Result<AnnounceResponse, ProbeError> {
    let what = "HTTP announce";
    let url = announce_url(base, req);
    let shown = display_url(&join(base, "announce"), &[]);
    let body = get_ok(what, &url, &shown, opts).await?;
    parse_announce(&body).map_err(|e| body_error(what, shown, e))
}

/// Scrapes `hashes` from the HTTP tracker at `base`.
pub async fn scrape(
    base: &Url,
    hashes: &[InfoHash],
    opts: &HttpOptions,
) -> Result<ScrapeResponse, ProbeError> {
    let what = "HTTP scrape";
    let url = scrape_url(base, hashes);
    let shown = display_url(&join(base, "scrape"), &[]);
    let body = get_ok(what, &url, &shown, opts).await?;
    parse_scrape(&body).map_err(|e| body_error(what, shown, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::peer::{AnnounceEvent, PeerId};

    #[test]
    fn announce_url_encodes_binary_fields() {
        let mut hash = [0u8; 20];
        hash[0] = 0xFF;
        hash[1] = b'A';
        let req = AnnounceRequest {
            info_hash: InfoHash(hash),
            peer_id: PeerId(*b"-TD0001-abcdefghijkl"),
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: AnnounceEvent::Started,
            key: 0xAB,
            num_want: Some(10),
        };
        let base = Url::parse("http://127.0.0.1:7070").unwrap();
        assert_eq!(
            announce_url(&base, &req).as_str(),
            format!(
                "http://127.0.0.1:7070/announce?info_hash=%FFA{}&peer_id=-TD0001-abcdefghijkl\
                 &port=6881&uploaded=1&downloaded=2&left=3&compact=1&key=000000ab&event=started\
                 &numwant=10",
                "%00".repeat(18)
            )
        );
        let req = AnnounceRequest {
            event: AnnounceEvent::None,
            num_want: None,
            ..req
        };
        let url = announce_url(&base, &req);
        assert!(!url.as_str().contains("event="));
        assert!(!url.as_str().contains("numwant="));
        assert_eq!(
            scrape_url(&base, &[InfoHash([b'a'; 20]), InfoHash([0x20; 20])]).as_str(),
            format!(
                "http://127.0.0.1:7070/scrape?info_hash={}&info_hash={}",
                "a".repeat(20),
                "%20".repeat(20)
            )
        );
    }

    #[test]
    fn parses_compact_announce() {
        let body = b"d8:completei1e10:incompletei2e8:intervali120e12:min intervali60e\
5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x506:peers618:\
\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x50e";
        let r = parse_announce(body).unwrap();
        assert_eq!(r.interval, 120);
        assert_eq!(r.min_interval, Some(60));
        assert_eq!(r.seeders, 1);
        assert_eq!(r.leechers, 2);
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
                "[::1]:80".parse().unwrap()
            ]
        );
    }

    #[test]
    fn parses_dictionary_peers() {
        let body = b"d8:intervali30e5:peersld2:ip8:10.0.0.17:peer id20:-TD0001-abcdefghijkl4:porti6881eeee";
        let r = parse_announce(body).unwrap();
        assert_eq!(r.peers, vec!["10.0.0.1:6881".parse().unwrap()]);
        assert_eq!(r.seeders, 0);
    }

    #[test]
    fn failure_reason_and_bad_bodies() {
        assert_eq!(
            parse_announce(b"d14:failure reason20:info_hash is missinge"),
            Err(BodyError::Failure("info_hash is missing".into()))
        );
        assert_eq!(
            parse_scrape(b"d14:failure reason4:nope"),
            Err(BodyError::Invalid(
                "invalid bencode at byte 24: unexpected end of input".into()
            ))
        );
        assert!(matches!(
            parse_announce(b"<html>hello</html>"),
            Err(BodyError::Invalid(_))
        ));
        assert_eq!(
            parse_announce(b"li1ee"),
            Err(BodyError::Invalid(
                "the body is a bencoded list, not a dictionary".into()
            ))
        );
        assert_eq!(
            parse_announce(b"d5:peers0:e"),
            Err(BodyError::Invalid(
                "no `interval` in the announce answer".into()
            ))
        );
        assert_eq!(
            parse_announce(b"d8:intervali-1ee"),
            Err(BodyError::Invalid("`interval` is out of range: -1".into()))
        );
        assert_eq!(
            parse_announce(b"d8:intervali1e5:peers5:abcdee"),
            Err(BodyError::Invalid(
                "compact `peers` of 5 bytes is not a multiple of 6".into()
            ))
        );
    }

    #[test]
    fn parses_scrape() {
        let mut body = b"d5:filesd20:".to_vec();
        body.extend([0xAB; 20]);
        body.extend(b"d8:completei1e10:downloadedi2e10:incompletei3eeee");
        let r = parse_scrape(&body).unwrap();
        assert_eq!(
            r.files.get(&InfoHash([0xAB; 20])),
            Some(&ScrapeEntry {
                seeders: 1,
                completed: 2,
                leechers: 3
            })
        );
        assert_eq!(parse_scrape(b"d5:filesdee").unwrap().files.len(), 0);
        assert_eq!(
            parse_scrape(b"d5:filesd3:abcdeee"),
            Err(BodyError::Invalid(
                "a `files` key of 3 bytes (not 20)".into()
            ))
        );
        assert_eq!(
            parse_scrape(b"de"),
            Err(BodyError::Invalid("no `files` in the scrape answer".into()))
        );
    }
}
