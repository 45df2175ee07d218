//! Becoming trusted by a remote LXD: its trust token (made on the server with `lxc config trust
//! add --name NAME`) is redeemed by `POST /1.0/certificates`, presenting the client certificate.
//! The token also carries the server's fingerprint, which is what the client pins on first
//! contact: nothing is trusted blindly.

use base64::Engine;
use hyper::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::LxdClient;
use super::error::LxdError;
use super::transport::Transport;
use crate::secret::Secret;

/// What a trust token says (it is base64 of this JSON). The secret stays in the token.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenInfo {
    #[serde(default)]
    pub client_name: String,
    /// The server's certificate fingerprint.
    pub fingerprint: String,
    /// The addresses the server listens on (every member's, for a cluster).
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// Reads a trust token. Its content is never shown: a token that does not decode is reported
/// as such, without it.
pub fn decode_token(token: &Secret) -> Result<TokenInfo, String> {
    let text = token.expose().trim();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines.iter().find_map(|e| e.decode(text).ok()).ok_or(
        "the trust token is not base64 (copy the whole line `lxc config trust add` printed)",
    )?;
    let info: TokenInfo = serde_json::from_slice(&bytes).map_err(
        |_| "the trust token does not hold LXD's token JSON (is it an LXD trust token?)",
    )?;
    if info.fingerprint.is_empty() {
        return Err("the trust token names no server fingerprint".into());
    }
    Ok(info)
}

/// The body that redeems `token`: LXD with the `explicit_trust_token` extension (5.21.7, 6.1 and
/// later) reads `trust_token` (and from 6.2 refuses `password`); older LXD (5.0) reads the
/// token from `password` and ignores `trust_token`.
pub fn redeem_body(token: &Secret, explicit_trust_token: bool) -> serde_json::Value {
    let field = if explicit_trust_token {
        "trust_token"
    } else {
        "password"
    };
    json!({ "type": "client", field: token.expose().trim() })
}

impl<T: Transport> LxdClient<T> {
    /// Redeems a trust token for the client certificate this client presents.
    pub async fn redeem_trust_token(
        &self,
        token: &Secret,
        explicit_trust_token: bool,
    ) -> Result<(), LxdError> {
        self.send_json(
            "adding this client's certificate to LXD's trust store with the trust token",
            Method::POST,
            "/1.0/certificates",
            &redeem_body(token, explicit_trust_token),
        )
        .await?;
        Ok(())
    }

    /// Removes a certificate from LXD's trust store, by fingerprint. `false`: it was not there.
    pub async fn remove_certificate(&self, fingerprint: &str) -> Result<bool, LxdError> {
        self.delete_opt(
            &format!("removing certificate {fingerprint} from LXD's trust store"),
            &format!("/1.0/certificates/{fingerprint}"),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(json: &str) -> Secret {
        Secret::new(base64::engine::general_purpose::STANDARD.encode(json))
    }

    #[test]
    fn a_token_tells_the_server_fingerprint_and_its_content_stays_hidden() {
        let t = token(
            r#"{"client_name":"demo","fingerprint":"047f28","addresses":["127.0.0.1:8443"],"secret":"s3cr3t","expires_at":"0001-01-01T00:00:00Z"}"#,
        );
        let info = decode_token(&t).unwrap();
        assert_eq!(info.fingerprint, "047f28");
        assert_eq!(info.addresses, ["127.0.0.1:8443"]);
        assert!(!format!("{info:?}").contains("s3cr3t"));
        let bad = Secret::new("not-a-token!!");
        let err = decode_token(&bad).unwrap_err();
        assert!(!err.contains("not-a-token"), "{err}");
        assert!(decode_token(&token("{\"secret\":\"x\"}")).is_err());
    }

    #[test]
    fn the_token_goes_where_the_server_version_reads_it() {
        let t = Secret::new("dG9rZW4=\n");
        assert_eq!(
            redeem_body(&t, false),
            json!({"type":"client","password":"dG9rZW4="})
        );
        assert_eq!(
            redeem_body(&t, true),
            json!({"type":"client","trust_token":"dG9rZW4="})
        );
    }
}
