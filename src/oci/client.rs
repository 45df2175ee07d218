//! The registry client: manifests and blobs over HTTPS (plain HTTP only for loopback registries
//! and those the operator names as insecure), with the token auth of the distribution spec: a
//! `401` with `WWW-Authenticate: Bearer realm=..,service=..,scope=..` is answered by asking the
//! realm for a token (anonymously, or with the operator's credentials) and trying again.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RANGE, WWW_AUTHENTICATE,
};
use sha2::{Digest, Sha256};

use super::cache::{BlobCache, update_from_file};
use super::manifest::{self, Descriptor, ImageManifest, Manifest};
use super::{OciError, Platform, Reference, is_loopback, sha256_digest};
use crate::events::ByteCounter;
use crate::secret::Secret;

/// The operator's registry credentials (Basic to the token service, or to the registry).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl Credentials {
    /// From `TORRUST_DEPLOYER_REGISTRY_USERNAME` and `TORRUST_DEPLOYER_REGISTRY_PASSWORD`.
    pub fn from_env() -> Option<Self> {
        let username = std::env::var("TORRUST_DEPLOYER_REGISTRY_USERNAME").ok()?;
        let password = std::env::var("TORRUST_DEPLOYER_REGISTRY_PASSWORD").unwrap_or_default();
        Some(Self {
            username,
            password: Secret::new(password),
        })
    }
}

/// What the client sent and received, for the report (and the tests).
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub blob_bytes: AtomicU64,
}

pub struct Client {
    http: reqwest::Client,
    insecure: Vec<String>,
    credentials: Option<Credentials>,
    /// `registry/repository` -> bearer token.
    tokens: Mutex<HashMap<String, String>>,
    pub stats: Stats,
}

/// An image manifest for one platform, with the bytes it was received as.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub image: ImageManifest,
}

/// A blob in the cache, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: std::path::PathBuf,
    /// Bytes received for it in this pull (0: it was cached).
    pub received: u64,
    /// The cached copy was corrupted and fetched again.
    pub refetched: bool,
}

const ATTEMPTS: u32 = 3;

impl Client {
    pub fn new(insecure: Vec<String>, credentials: Option<Credentials>) -> Result<Self, OciError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!(
                "torrust-tracker-deployer/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| OciError::Protocol {
                registry: String::new(),
                what: "the HTTP client setup".into(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            http,
            insecure,
            credentials,
            tokens: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        })
    }

    fn scheme(&self, registry: &str) -> &'static str {
        if is_loopback(registry) || self.insecure.iter().any(|r| r == registry) {
            "http"
        } else {
            "https"
        }
    }

    fn url(&self, r: &Reference, tail: &str) -> String {
        format!(
            "{}://{}/v2/{}/{tail}",
            self.scheme(&r.registry),
            r.registry,
            r.repository
        )
    }

    /// GET with the repository's token, answering one auth challenge.
    async fn get(
        &self,
        r: &Reference,
        url: &str,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, OciError> {
        let key = format!("{}/{}", r.registry, r.repository);
        let mut answered = false;
        loop {
            let mut request = self.http.get(url).headers(headers.clone());
            if let Some(token) = self.tokens.lock().expect("tokens").get(&key) {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            } else if let (true, Some(c)) = (answered, &self.credentials) {
                request = request.basic_auth(&c.username, Some(c.password.expose()));
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let response = request.send().await.map_err(unreachable(r, url))?;
            let status = response.status();
            if status != StatusCode::UNAUTHORIZED || answered {
                if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                    return Err(denied(r, status, response).await);
                }
                return Ok(response);
            }
            answered = true;
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            match parse_challenge(&challenge) {
                Some(Challenge::Bearer(params)) => {
                    let token = self.token(r, &params).await?;
                    self.tokens
                        .lock()
                        .expect("tokens")
                        .insert(key.clone(), token);
                }
                Some(Challenge::Basic) if self.credentials.is_some() => {}
                _ => return Err(denied(r, status, response).await),
            }
        }
    }

    /// Asks the challenge's realm for a pull token.
    async fn token(
        &self,
        r: &Reference,
        params: &HashMap<String, String>,
    ) -> Result<String, OciError> {
        let protocol = |detail: String| OciError::Protocol {
            registry: r.registry.clone(),
            what: "the token request".into(),
            detail,
        };
        let realm = params
            .get("realm")
            .ok_or_else(|| protocol("a Bearer challenge without a realm".into()))?;
        let realm_url = reqwest::Url::parse(realm)
            .map_err(|e| protocol(format!("a bad realm {realm:?}: {e}")))?;
        let realm_host = realm_url.host_str().unwrap_or_default().to_string();
        if realm_url.scheme() != "https"
            && !is_loopback(&realm_host)
            && self.scheme(&r.registry) == "https"
        {
            return Err(protocol(format!(
                "a token realm without TLS ({realm}); refused"
            )));
        }
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", r.repository));
        let mut realm_url = realm_url;
        {
            let mut query = realm_url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &scope);
        }
        let mut request = self.http.get(realm_url);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(c.password.expose()));
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(unreachable(r, realm))?;
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(denied(r, status, response).await);
        }
        if !status.is_success() {
            return Err(protocol(format!("HTTP {status}")));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| protocol(e.to_string()))?;
        body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| protocol("a token response without a token".into()))
    }

    /// Fetches a manifest by tag or digest; checks its bytes against the digest asked for, or
    /// the one the registry names.
    pub async fn manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<(String, Vec<u8>, String), OciError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(manifest::ACCEPT));
        let url = self.url(r, &format!("manifests/{reference}"));
        let response = self.get(r, &url, headers).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            let detail = error_codes(response).await;
            return Err(OciError::NotFound {
                registry: r.registry.clone(),
                what: format!("{}:{reference}", r.repository),
                detail,
            });
        }
        if !status.is_success() {
            return Err(OciError::Protocol {
                registry: r.registry.clone(),
                what: format!("the manifest {}:{reference}", r.repository),
                detail: format!("HTTP {status}{}", error_codes(response).await),
            });
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE).unwrap_or_default();
        let named = header(reqwest::header::HeaderName::from_static(
            "docker-content-digest",
        ));
        let body = response.bytes().await.map_err(unreachable(r, &url))?;
        let actual = sha256_digest(&body);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            named.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(OciError::DigestMismatch {
                registry: r.registry.clone(),
                what: format!("the manifest {}:{reference}", r.repository),
                expected,
                actual,
            });
        }
        Ok((content_type, body.to_vec(), actual))
    }

    /// The image manifest of `r` for `platform`, through a manifest list or index if that is
    /// what the tag names.
    pub async fn resolve(&self, r: &Reference, platform: &Platform) -> Result<Resolved, OciError> {
        let (content_type, bytes, digest) = self.manifest(r, r.manifest_ref()).await?;
        let protocol = |detail: String| OciError::Protocol {
            registry: r.registry.clone(),
            what: format!("the manifest of {r}"),
            detail,
        };
        match Manifest::parse(&content_type, &bytes).map_err(protocol)? {
            Manifest::Image(image) => Ok(Resolved {
                media_type: media_type(&content_type, &image),
                digest,
                bytes,
                image,
            }),
            Manifest::Index(children) => {
                let child = manifest::choose(&children, platform).map_err(|available| {
                    OciError::NoMatchingPlatform {
                        image: r.to_string(),
                        platform: platform.to_string(),
                        available,
                    }
                })?;
                let (content_type, bytes, digest) = self.manifest(r, &child.digest).await?;
                match Manifest::parse(&content_type, &bytes).map_err(protocol)? {
                    Manifest::Image(image) => Ok(Resolved {
                        media_type: media_type(&content_type, &image),
                        digest,
                        bytes,
                        image,
                    }),
                    Manifest::Index(_) => Err(protocol("an index inside an index".into())),
                }
            }
        }
    }

    /// Puts the blob `d` in the cache unless a valid copy is there: continues a partial download
    /// with `Range`, retries a broken transfer, and checks the digest of every byte.
    pub async fn blob(
        &self,
        r: &Reference,
        d: &Descriptor,
        cache: &BlobCache,
        counter: &mut ByteCounter,
    ) -> Result<Fetched, OciError> {
        let refetched = match cache.check(&d.digest, d.size)? {
            super::cache::Cached::Valid(path) => {
                return Ok(Fetched {
                    path,
                    received: 0,
                    refetched: false,
                });
            }
            super::cache::Cached::Missing => false,
            super::cache::Cached::Corrupted => true,
        };
        let bad_digest = || OciError::Protocol {
            registry: r.registry.clone(),
            what: format!("the manifest of {r}"),
            detail: format!(
                "an unsupported blob digest {:?} (only sha256 is supported)",
                d.digest
            ),
        };
        let path = cache.path(&d.digest).ok_or_else(bad_digest)?;
        let partial = cache.partial_path(&d.digest).ok_or_else(bad_digest)?;
        let mut received = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.download(r, d, &partial, counter, &mut received).await {
                Ok(()) => break,
                Err(e @ OciError::Unreachable { .. }) if attempt < ATTEMPTS => {
                    tracing::warn!("{e}; trying again ({attempt} of {ATTEMPTS})");
                    tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
                }
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(&partial, &path).map_err(OciError::io("cannot keep the blob", &path))?;
        Ok(Fetched {
            path,
            received,
            refetched,
        })
    }

    /// One attempt at the rest of a blob: appends to `partial`, hashing as it goes.
    async fn download(
        &self,
        r: &Reference,
        d: &Descriptor,
        partial: &std::path::Path,
        counter: &mut ByteCounter,
        received: &mut u64,
    ) -> Result<(), OciError> {
        let mut have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        if have > d.size {
            let _ = std::fs::remove_file(partial);
            have = 0;
        }
        let mut hasher = Sha256::new();
        if have > 0 {
            update_from_file(&mut hasher, partial)?;
        }
        let mut headers = HeaderMap::new();
        if have > 0 {
            let range = HeaderValue::from_str(&format!("bytes={have}-")).expect("a valid header");
            headers.insert(RANGE, range);
        }
        let url = self.url(r, &format!("blobs/{}", d.digest));
        let mut response = self.get(r, &url, headers).await?;
        let status = response.status();
        let append = match status {
            StatusCode::PARTIAL_CONTENT if have > 0 => true,
            StatusCode::OK => false,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let _ = std::fs::remove_file(partial);
                return Err(OciError::Protocol {
                    registry: r.registry.clone(),
                    what: format!("the blob {}", d.digest),
                    detail:
                        "HTTP 416 to a Range request (the partial copy was deleted; pull again)"
                            .into(),
                });
            }
            StatusCode::NOT_FOUND => {
                return Err(OciError::NotFound {
                    registry: r.registry.clone(),
                    what: format!("the blob {} of {}", d.digest, r.repository),
                    detail: error_codes(response).await,
                });
            }
            other => {
                return Err(OciError::Protocol {
                    registry: r.registry.clone(),
                    what: format!("the blob {}", d.digest),
                    detail: format!("HTTP {other}{}", error_codes(response).await),
                });
            }
        };
        if !append {
            hasher = Sha256::new();
            have = 0;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(partial)
            .map_err(OciError::io("cannot write", partial))?;
        loop {
            let chunk = response.chunk().await.map_err(unreachable(r, &url))?;
            let Some(chunk) = chunk else { break };
            have += chunk.len() as u64;
            if have > d.size {
                break;
            }
            file.write_all(&chunk)
                .map_err(OciError::io("cannot write", partial))?;
            hasher.update(&chunk);
            *received += chunk.len() as u64;
            self.stats
                .blob_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            counter.add(chunk.len());
        }
        file.sync_all()
            .map_err(OciError::io("cannot write", partial))?;
        let actual = format!("sha256:{:x}", hasher.finalize());
        if have != d.size || actual != d.digest {
            let _ = std::fs::remove_file(partial);
            return Err(OciError::DigestMismatch {
                registry: r.registry.clone(),
                what: format!(
                    "the blob {} of {} ({have} of {} bytes)",
                    d.digest, r.repository, d.size
                ),
                expected: d.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

fn media_type(content_type: &str, image: &ImageManifest) -> String {
    let ct = content_type.split(';').next().unwrap_or_default().trim();
    match ct {
        manifest::DOCKER_MANIFEST | manifest::OCI_MANIFEST => ct.to_string(),
        _ => image
            .media_type
            .clone()
            .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string()),
    }
}

/// The error of a request to `url` of `r`'s registry that got no answer.
fn unreachable<'a>(r: &'a Reference, url: &'a str) -> impl FnOnce(reqwest::Error) -> OciError + 'a {
    move |source| OciError::Unreachable {
        registry: r.registry.clone(),
        url: url.to_string(),
        source,
    }
}

async fn denied(r: &Reference, status: StatusCode, response: reqwest::Response) -> OciError {
    OciError::AuthDenied {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        status: status.as_u16(),
        detail: error_codes(response).await,
    }
}

/// `: CODE (message), ...` from a registry's JSON error body, or nothing.
async fn error_codes(response: reqwest::Response) -> String {
    let Ok(body) = response.bytes().await else {
        return String::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return String::new();
    };
    let codes: Vec<String> = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let code = e["code"].as_str().unwrap_or("?");
            match e["message"].as_str() {
                Some(m) if !m.is_empty() => format!("{code} ({m})"),
                _ => code.to_string(),
            }
        })
        .collect();
    if codes.is_empty() {
        String::new()
    } else {
        format!(": {}", codes.join(", "))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Bearer(HashMap<String, String>),
    Basic,
}

/// Parses `Bearer realm="..",service="..",scope=".."` (quoted values may hold commas) or `Basic`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    Some(Challenge::Bearer(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        let Some(Challenge::Bearer(p)) = c else {
            panic!("{c:?}")
        };
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:samalba/my-app:pull,push");
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        let Some(Challenge::Bearer(p)) =
            parse_challenge("bearer realm=http://127.0.0.1:1/t, service=x")
        else {
            panic!()
        };
        assert_eq!(p["realm"], "http://127.0.0.1:1/t");
        assert_eq!(p["service"], "x");
        assert_eq!(parse_challenge("Negotiate"), None);
    }
}
