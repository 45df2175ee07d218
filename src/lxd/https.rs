//! A remote LXD over HTTPS (ADR 0040): TLS 1.3 (LXD speaks nothing older), the client presents
//! its certificate, and the server is known by the SHA-256 fingerprint of its certificate, not
//! by a CA or a host name (LXD's certificate is self-signed and names only the server's host
//! name and loopback). One connection per request, like the Unix socket
//! ([`super::transport::exchange`]).

use std::sync::{Arc, Mutex};

use hyper::Method;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::transport::{Body, Response, Transport, TransportError, chain, exchange};
use crate::secret::Secret;

/// LXD's default HTTPS port.
pub const DEFAULT_PORT: u16 = 8443;

/// The SHA-256 of a DER certificate, lowercase hex without colons: LXD's certificate
/// fingerprint (`lxc info`, `GET /1.0` `environment.certificate_fingerprint`, trust tokens).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fingerprint as an operator may write it (upper case, colons): as LXD writes it.
pub fn normalize_fingerprint(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `https://host[:port][/]`: the host (without brackets) and the port.
pub fn parse_endpoint(endpoint: &str) -> Result<(String, u16), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .ok_or_else(|| format!("'{endpoint}' does not start with https://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "'{endpoint}' is not https://HOST or https://HOST:PORT"
        ));
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("'{endpoint}': unclosed '['"))?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("'{endpoint}': '{p}' is not a port"))?,
    };
    if host.is_empty() {
        return Err(format!("'{endpoint}' names no host"));
    }
    Ok((host.to_string(), port))
}

/// The client's certificate and key, PEM.
pub struct ClientIdentity {
    pub cert_pem: String,
    pub key_pem: Secret,
}

impl ClientIdentity {
    /// A new self-signed ECDSA P-384 client certificate (what `lxc` makes), with the client-auth
    /// key usage and `name` as its common name.
    pub fn generate(name: &str) -> Result<Self, String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .map_err(|e| format!("making a key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| format!("certificate parameters: {e}"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("signing the certificate: {e}"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: Secret::new(key.serialize_pem()),
        })
    }

    /// The certificate's fingerprint (how LXD names it in its trust store).
    pub fn fingerprint(&self) -> Result<String, String> {
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| format!("the client certificate is not PEM: {e}"))?;
        Ok(fingerprint(&der))
    }
}

/// HTTPS to one LXD server whose certificate has the pinned fingerprint.
pub struct Https {
    endpoint: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
    verifier: Arc<Pinned>,
}

impl Https {
    /// A transport to `endpoint` (`https://host:port`) presenting `identity`, accepting only a
    /// server certificate whose fingerprint is `pinned`.
    pub fn new(endpoint: &str, identity: &ClientIdentity, pinned: &str) -> Result<Self, String> {
        let (host, port) = parse_endpoint(endpoint)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(Pinned {
            expected: normalize_fingerprint(pinned),
            refused: Mutex::new(None),
            provider: provider.clone(),
        });
        let cert = CertificateDer::from_pem_slice(identity.cert_pem.as_bytes())
            .map_err(|e| format!("the client certificate is not PEM: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(identity.key_pem.expose().as_bytes())
            .map_err(|e| format!("the client key is not a PEM private key: {e}"))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_auth_cert(vec![cert], key)
            .map_err(|e| format!("the client certificate and key do not go together: {e}"))?;
        let server_name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.clone())
                .map_err(|e| format!("'{host}' is not a host name: {e}"))?,
        };
        Ok(Self {
            endpoint: format!("https://{}", host_port(&host, port)),
            host,
            port,
            server_name,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            verifier,
        })
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Transport for Https {
    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: Vec<(&'static str, String)>,
        body: Body,
    ) -> Result<Response, TransportError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| TransportError {
                message: format!("connecting to {}: {e}", self.endpoint),
                connect: Some(e.kind()),
                pin_refused: None,
            })?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| TransportError {
                message: format!("TLS with {}: {}", self.endpoint, chain(&e)),
                connect: None,
                pin_refused: self
                    .verifier
                    .refused
                    .lock()
                    .unwrap()
                    .clone()
                    .map(|got| (self.verifier.expected.clone(), got)),
            })?;
        let host = host_port(&self.host, self.port);
        exchange(tls, &host, method, path_and_query, headers, body).await
    }
}

/// Accepts exactly the server certificate with the expected fingerprint (and checks that the
/// server holds its key: the handshake signatures are verified as usual).
#[derive(Debug)]
struct Pinned {
    expected: String,
    /// The fingerprint of the last certificate refused.
    refused: Mutex<Option<String>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint(end_entity);
        if seen == self.expected {
            *self.refused.lock().unwrap() = None;
            return Ok(ServerCertVerified::assertion());
        }
        *self.refused.lock().unwrap() = Some(seen);
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_with_lxd_s_port_by_default() {
        assert_eq!(
            parse_endpoint("https://lxd.example:9443").unwrap(),
            ("lxd.example".into(), 9443)
        );
        assert_eq!(
            parse_endpoint("https://10.0.0.5/").unwrap(),
            ("10.0.0.5".into(), 8443)
        );
        assert_eq!(
            parse_endpoint("https://[::1]:8444").unwrap(),
            ("::1".into(), 8444)
        );
        assert_eq!(
            parse_endpoint("https://[::1]").unwrap(),
            ("::1".into(), 8443)
        );
        for bad in [
            "http://h:8443",
            "h:8443",
            "https://",
            "https://h:0",
            "https://h:x",
            "https://h/1.0",
            "https://u@h",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints_are_lxd_s_lowercase_hex_sha256() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(normalize_fingerprint(" AB:cd:EF "), "abcdef");
    }

    #[test]
    fn a_generated_identity_makes_a_tls_client() {
        let id = ClientIdentity::generate("torrust-tracker-deployer test").unwrap();
        assert!(id.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(id.key_pem.expose().contains("PRIVATE KEY"));
        assert_eq!(id.fingerprint().unwrap().len(), 64);
        let t = Https::new("https://127.0.0.1:8443", &id, &"0".repeat(64)).unwrap();
        assert_eq!(t.endpoint(), "https://127.0.0.1:8443");
        let other = ClientIdentity::generate("other").unwrap();
        let mismatched = ClientIdentity {
            cert_pem: id.cert_pem.clone(),
            key_pem: other.key_pem,
        };
        assert!(Https::new("https://h", &mismatched, "00").is_err());
    }

    /// A TLS 1.3 server on loopback with a fresh self-signed certificate, answering every
    /// request with an LXD envelope. Returns its port and its certificate's fingerprint.
    async fn tls_server() -> (u16, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["vm".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let fp = fingerprint(&der);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let body =
                        br#"{"type":"sync","status_code":200,"metadata":{"auth":"untrusted"}}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(body).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, fp)
    }

    #[tokio::test]
    async fn only_the_pinned_server_certificate_is_accepted() {
        use crate::lxd::{LxdClient, LxdError};
        let (port, server_fp) = tls_server().await;
        let endpoint = format!("https://127.0.0.1:{port}");
        let id = ClientIdentity::generate("test").unwrap();

        // Pinned (written with colons and in capitals, as an operator may): answered.
        let colons = server_fp
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        let client = LxdClient::new(Https::new(&endpoint, &id, &colons).unwrap(), None);
        let server = client.server().await.unwrap();
        assert_eq!(server.auth, crate::lxd::api::Auth::Untrusted);

        // Another fingerprint: refused in the handshake, both fingerprints named.
        let wrong = "ab".repeat(32);
        let client = LxdClient::new(Https::new(&endpoint, &id, &wrong).unwrap(), None);
        match client.server().await.unwrap_err() {
            LxdError::ServerMismatch {
                expected,
                got,
                endpoint: e,
            } => {
                assert_eq!(expected, wrong);
                assert_eq!(got, server_fp);
                assert_eq!(e, endpoint);
            }
            other => panic!("not a mismatch: {other:?}"),
        }
    }
}
