//! The HTTP side: one reqwest client (rustls), the token as a bearer header, lists read page by
//! page, 429 answers waited out until `RateLimit-Reset`, and the few transient codes retried.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::api::{
    Action, CreatedFirewall, CreatedServer, ErrorBody, Firewall, Labels, Meta, NewFirewall,
    NewServer, NewSshKey, Resource, Rule, Server, SshKey,
};
use super::error::HetznerError;
use crate::secret::Secret;

/// The public API.
pub const DEFAULT_API_URL: &str = "https://api.hetzner.cloud/v1";
/// Overrides the API's address (the tests' in-memory API; a proxy).
pub const API_URL_VAR: &str = "TORRUST_HETZNER_API_URL";
/// The token, when the environment file's `provider.api_token` is empty.
pub const TOKEN_VAR: &str = "HCLOUD_TOKEN";

/// How many times a rate-limited request is sent before giving up.
const RATE_LIMIT_TRIES: u32 = 5;
/// How many times a transiently failed request (conflict, bad gateway, timeout) is sent.
const TRANSIENT_TRIES: u32 = 4;
/// The largest page the API serves.
const PER_PAGE: u32 = 50;

/// The token to use: the file's, or [`TOKEN_VAR`] when the file leaves it empty.
pub fn resolve_token(from_file: &Secret) -> Result<Secret, HetznerError> {
    if !from_file.expose().trim().is_empty() {
        return Ok(from_file.clone());
    }
    match std::env::var(TOKEN_VAR) {
        Ok(t) if !t.trim().is_empty() => Ok(Secret::new(t.trim())),
        _ => Err(HetznerError::NoToken),
    }
}

pub struct HetznerClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    /// How often a running action is read again.
    pub poll: Duration,
    /// The longest one wait for a rate limit's reset.
    pub rate_wait_cap: Duration,
    /// The last `RateLimit-Remaining` the API sent: polling slows down as it runs low.
    remaining: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for HetznerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HetznerClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HetznerClient {
    /// A client of the API at [`API_URL_VAR`] (else [`DEFAULT_API_URL`]).
    pub fn new(token: Secret) -> Result<Self, HetznerError> {
        let base = std::env::var(API_URL_VAR)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        Self::with_base(&base, token)
    }

    pub fn with_base(base: &str, token: Secret) -> Result<Self, HetznerError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!(
                "torrust-tracker-deployer/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| HetznerError::Decode {
                doing: "building the HTTP client".into(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            poll: Duration::from_secs(1),
            rate_wait_cap: Duration::from_secs(120),
            remaining: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// One request, with the rate-limit waits and transient retries. `Ok(None)`: 404 (the
    /// object is gone) or no body (204). `what` names the object for a uniqueness error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        doing: &str,
        what: &str,
    ) -> Result<Option<Value>, HetznerError> {
        let url = format!("{}{path}", self.base);
        let (mut limited, mut transient) = (0u32, 0u32);
        loop {
            let mut auth =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))
                    .map_err(|_| HetznerError::Unauthorized {
                        doing: doing.into(),
                        status: 0,
                        code: "invalid_token".into(),
                        message: "the token holds characters an HTTP header cannot carry".into(),
                    })?;
            auth.set_sensitive(true);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header(reqwest::header::AUTHORIZATION, auth);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req
                .send()
                .await
                .map_err(|source| HetznerError::Unreachable {
                    url: self.base.clone(),
                    doing: doing.into(),
                    source,
                })?;
            let status = resp.status();
            let reset = resp
                .headers()
                .get("RateLimit-Reset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(left) = resp
                .headers()
                .get("RateLimit-Remaining")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                self.remaining
                    .store(left, std::sync::atomic::Ordering::Relaxed);
            }
            let correlation = resp
                .headers()
                .get("X-Correlation-Id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = resp
                .bytes()
                .await
                .map_err(|source| HetznerError::Unreachable {
                    url: self.base.clone(),
                    doing: doing.into(),
                    source,
                })?;
            if status.is_success() {
                if bytes.is_empty() {
                    return Ok(None);
                }
                return serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| decode(doing, e));
            }
            let error = serde_json::from_slice::<ErrorBody>(&bytes)
                .ok()
                .map(|b| b.error);
            let code = error.as_ref().map(|e| e.code.as_str()).unwrap_or_default();
            tracing::debug!(
                "Hetzner API {method} {path}: HTTP {status} {code} (correlation id {})",
                correlation.as_deref().unwrap_or("none")
            );
            if status == StatusCode::NOT_FOUND || code == "not_found" {
                return Ok(None);
            }
            if status == StatusCode::TOO_MANY_REQUESTS || code == "rate_limit_exceeded" {
                limited += 1;
                if limited >= RATE_LIMIT_TRIES {
                    return Err(HetznerError::RateLimited {
                        doing: doing.into(),
                        tries: limited,
                        reset: reset
                            .map(|r| format!("; the API said it resets at Unix time {r}"))
                            .unwrap_or_default(),
                    });
                }
                let wait = self.rate_wait(reset);
                crate::events::note(format!(
                    "rate limited by the Hetzner API; waiting {} s for its reset",
                    wait.as_secs_f32().ceil()
                ));
                tokio::time::sleep(wait).await;
                continue;
            }
            let retry = matches!(code, "conflict" | "bad_gateway" | "timeout")
                || (error.is_none()
                    && matches!(
                        status,
                        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
                    ));
            if retry && transient + 1 < TRANSIENT_TRIES {
                transient += 1;
                tokio::time::sleep(Duration::from_secs(1 << transient)).await;
                continue;
            }
            return Err(match error {
                Some(error) => HetznerError::from_api(doing, status.as_u16(), error, what),
                None => HetznerError::Api {
                    doing: doing.into(),
                    status: status.as_u16(),
                    code: "none".into(),
                    message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                },
            });
        }
    }

    /// How long to wait between two reads of a running action: [`Self::poll`], longer as the
    /// project's request budget runs low (every tool on the project shares 3600 an hour).
    pub fn poll_interval(&self) -> Duration {
        let left = self.remaining.load(std::sync::atomic::Ordering::Relaxed);
        let factor = match left {
            0..=49 => 10,
            50..=299 => 4,
            _ => 1,
        };
        self.poll * factor
    }

    /// How long to wait for a rate limit's reset (a Unix time), at least 1 s, at most the cap.
    fn rate_wait(&self, reset: Option<u64>) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let secs = reset.map(|r| r.saturating_sub(now)).unwrap_or(1).max(1);
        Duration::from_secs(secs).min(self.rate_wait_cap)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        doing: &str,
    ) -> Result<Option<T>, HetznerError> {
        match self.call(Method::GET, path, None, doing, "").await? {
            Some(mut v) => field(&mut v, key, doing).map(Some),
            None => Ok(None),
        }
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        doing: &str,
        what: &str,
    ) -> Result<T, HetznerError> {
        let v = self
            .call(Method::POST, path, Some(body), doing, what)
            .await?
            .ok_or_else(|| HetznerError::Decode {
                doing: doing.into(),
                detail: format!("POST {path} answered without a body"),
            })?;
        serde_json::from_value(v).map_err(|e| decode(doing, e))
    }

    /// Every item of a list, page by page, filtered by `query` (already encoded).
    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: &str,
        doing: &str,
    ) -> Result<Vec<T>, HetznerError> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let sep = if query.is_empty() { "" } else { "&" };
            let url = format!("{path}?{query}{sep}page={page}&per_page={PER_PAGE}");
            let Some(mut v) = self.call(Method::GET, &url, None, doing, "").await? else {
                return Ok(out);
            };
            let items: Vec<T> = field(&mut v, key, doing)?;
            out.extend(items);
            let meta: Meta = v
                .get_mut("meta")
                .map(Value::take)
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| decode(doing, e))?
                .unwrap_or_default();
            match meta.pagination.and_then(|p| p.next_page) {
                Some(next) if next > page => page = next,
                _ => return Ok(out),
            }
        }
    }

    // SSH keys.

    pub async fn ssh_keys(&self, selector: &str) -> Result<Vec<SshKey>, HetznerError> {
        self.list(
            "/ssh_keys",
            "ssh_keys",
            &selector_query(selector),
            "listing SSH keys",
        )
        .await
    }

    pub async fn create_ssh_key(
        &self,
        name: &str,
        public_key: &str,
        labels: &Labels,
    ) -> Result<SshKey, HetznerError> {
        let body = json!(NewSshKey {
            name,
            public_key,
            labels
        });
        let mut v: Value = self
            .post(
                "/ssh_keys",
                &body,
                "uploading the SSH key",
                &format!("an SSH key named '{name}' or with the same key"),
            )
            .await?;
        field(&mut v, "ssh_key", "uploading the SSH key")
    }

    /// Deletes an SSH key (fine when it is already gone).
    pub async fn delete_ssh_key(&self, id: i64) -> Result<(), HetznerError> {
        let path = format!("/ssh_keys/{id}");
        self.call(Method::DELETE, &path, None, "deleting the SSH key", "")
            .await?;
        Ok(())
    }

    // Servers.

    pub async fn servers(&self, selector: &str) -> Result<Vec<Server>, HetznerError> {
        self.list(
            "/servers",
            "servers",
            &selector_query(selector),
            "listing servers",
        )
        .await
    }

    pub async fn server_by_name(&self, name: &str) -> Result<Option<Server>, HetznerError> {
        let query = format!("name={}", encode(name));
        let found: Vec<Server> = self
            .list(
                "/servers",
                "servers",
                &query,
                "looking up the server by name",
            )
            .await?;
        Ok(found.into_iter().find(|s| s.name == name))
    }

    pub async fn server(&self, id: i64) -> Result<Option<Server>, HetznerError> {
        self.get(&format!("/servers/{id}"), "server", "reading the server")
            .await
    }

    pub async fn create_server(&self, new: &NewServer<'_>) -> Result<CreatedServer, HetznerError> {
        self.post(
            "/servers",
            &json!(new),
            "creating the server",
            &format!("a server named '{}'", new.name),
        )
        .await
    }

    /// Deletes a server; its action, or `None` when it was already gone.
    pub async fn delete_server(&self, id: i64) -> Result<Option<Action>, HetznerError> {
        let doing = "deleting the server";
        match self
            .call(Method::DELETE, &format!("/servers/{id}"), None, doing, "")
            .await?
        {
            Some(mut v) => field(&mut v, "action", doing).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces a server's labels.
    pub async fn set_server_labels(&self, id: i64, labels: &Labels) -> Result<(), HetznerError> {
        self.call(
            Method::PUT,
            &format!("/servers/{id}"),
            Some(&json!({ "labels": labels })),
            "labelling the server",
            "",
        )
        .await?;
        Ok(())
    }

    pub async fn power_on(&self, id: i64) -> Result<Action, HetznerError> {
        let doing = "powering the server on";
        let mut v: Value = self
            .post(
                &format!("/servers/{id}/actions/poweron"),
                &json!({}),
                doing,
                "",
            )
            .await?;
        field(&mut v, "action", doing)
    }

    // Firewalls.

    pub async fn firewalls(&self, selector: &str) -> Result<Vec<Firewall>, HetznerError> {
        self.list(
            "/firewalls",
            "firewalls",
            &selector_query(selector),
            "listing firewalls",
        )
        .await
    }

    pub async fn create_firewall(
        &self,
        name: &str,
        labels: &Labels,
        rules: &[Rule],
    ) -> Result<CreatedFirewall, HetznerError> {
        self.post(
            "/firewalls",
            &json!(NewFirewall {
                name,
                labels,
                rules
            }),
            "creating the firewall",
            &format!("a firewall named '{name}'"),
        )
        .await
    }

    pub async fn set_firewall_rules(
        &self,
        id: i64,
        rules: &[Rule],
    ) -> Result<Vec<Action>, HetznerError> {
        let body = json!({ "rules": rules });
        self.firewall_action(id, "set_rules", &body, "setting the firewall's rules")
            .await
    }

    pub async fn apply_firewall(
        &self,
        id: i64,
        to: &[Resource],
    ) -> Result<Vec<Action>, HetznerError> {
        let body = json!({ "apply_to": to });
        let doing = "applying the firewall to the server";
        self.firewall_action(id, "apply_to_resources", &body, doing)
            .await
    }

    pub async fn remove_firewall(
        &self,
        id: i64,
        from: &[Resource],
    ) -> Result<Vec<Action>, HetznerError> {
        let body = json!({ "remove_from": from });
        let doing = "removing the firewall from the server";
        self.firewall_action(id, "remove_from_resources", &body, doing)
            .await
    }

    /// `POST /firewalls/{id}/actions/{action}`: the actions it started.
    async fn firewall_action(
        &self,
        id: i64,
        action: &str,
        body: &Value,
        doing: &str,
    ) -> Result<Vec<Action>, HetznerError> {
        let path = format!("/firewalls/{id}/actions/{action}");
        let mut v: Value = self.post(&path, body, doing, "").await?;
        field(&mut v, "actions", doing)
    }

    /// Deletes a firewall (fine when it is already gone). A firewall still applied to a
    /// server is `resource_in_use` (an [`HetznerError::Api`] with that code).
    pub async fn delete_firewall(&self, id: i64) -> Result<(), HetznerError> {
        self.call(
            Method::DELETE,
            &format!("/firewalls/{id}"),
            None,
            "deleting the firewall",
            "",
        )
        .await?;
        Ok(())
    }

    // Actions.

    pub async fn action(&self, id: i64) -> Result<Option<Action>, HetznerError> {
        self.get(&format!("/actions/{id}"), "action", "reading an action")
            .await
    }

    /// Waits until every action has finished; the first that ended in error is the error.
    pub async fn wait_actions(
        &self,
        actions: &[Action],
        timeout: Duration,
        doing: &str,
    ) -> Result<(), HetznerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for action in actions {
            let mut current = action.clone();
            loop {
                if current.failed() {
                    let (code, message) = current
                        .error
                        .map(|e| (e.code, e.message))
                        .unwrap_or_else(|| ("unknown".into(), String::new()));
                    return Err(HetznerError::ActionFailed {
                        doing: doing.into(),
                        id: current.id,
                        command: current.command,
                        code,
                        message,
                    });
                }
                if current.finished() {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(HetznerError::ActionTimeout {
                        doing: doing.into(),
                        id: current.id,
                        command: current.command,
                        secs: timeout.as_secs(),
                    });
                }
                tokio::time::sleep(self.poll_interval()).await;
                match self.action(current.id).await? {
                    Some(a) => current = a,
                    // Actions are kept by the API; one that is gone cannot be waited for.
                    None => break,
                }
            }
        }
        Ok(())
    }
}

fn decode(doing: &str, e: serde_json::Error) -> HetznerError {
    HetznerError::Decode {
        doing: doing.into(),
        detail: e.to_string(),
    }
}

/// Takes `key` out of an answer and reads it as `T`.
fn field<T: DeserializeOwned>(v: &mut Value, key: &str, doing: &str) -> Result<T, HetznerError> {
    let inner = v
        .get_mut(key)
        .map(Value::take)
        .ok_or_else(|| HetznerError::Decode {
            doing: doing.into(),
            detail: format!("no `{key}` in the answer"),
        })?;
    serde_json::from_value(inner).map_err(|e| decode(doing, e))
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn selector_query(selector: &str) -> String {
    if selector.is_empty() {
        String::new()
    } else {
        format!("label_selector={}", encode(selector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_wait_runs_to_the_reset_within_bounds() {
        let c = HetznerClient::with_base("http://127.0.0.1:9", Secret::new("t")).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(c.rate_wait(None), Duration::from_secs(1));
        assert_eq!(c.rate_wait(Some(now - 5)), Duration::from_secs(1));
        let w = c.rate_wait(Some(now + 3));
        assert!(
            w >= Duration::from_secs(2) && w <= Duration::from_secs(3),
            "{w:?}"
        );
        assert_eq!(c.rate_wait(Some(now + 100_000)), c.rate_wait_cap);
    }

    #[test]
    fn polling_slows_down_as_the_budget_runs_low() {
        let c = HetznerClient::with_base("http://127.0.0.1:9", Secret::new("t")).unwrap();
        assert_eq!(c.poll_interval(), c.poll);
        c.remaining.store(200, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(c.poll_interval(), c.poll * 4);
        c.remaining.store(3, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(c.poll_interval(), c.poll * 10);
    }

    #[test]
    fn the_token_comes_from_the_file_else_from_hcloud_token() {
        let t = resolve_token(&Secret::new("from-file")).unwrap();
        assert_eq!(t.expose(), "from-file");
        // The process environment is shared by the unit tests: only the file case and the
        // error's kind are checked here; the variable is covered by the CLI tests.
        assert_eq!(
            crate::error_kind::Classify::kind(&HetznerError::NoToken),
            crate::error_kind::ErrorKind::HetznerUnauthorized
        );
    }

    #[test]
    fn a_selector_is_encoded_in_the_query() {
        assert_eq!(
            selector_query("torrust-deployer-id=ab12"),
            "label_selector=torrust%2Ddeployer%2Did%3Dab12"
        );
        assert_eq!(selector_query(""), "");
    }
}
