//! Secrets: the Hetzner API token, the tracker's admin token, the MySQL and Grafana passwords.
//! A problem never shows a secret's value.

use super::{Report, secret_v};
use crate::config::{Database, EnvironmentConfig, Provider};

/// The admin token of the incumbent's examples: anyone can guess it.
const EXAMPLE_ADMIN_TOKEN: &str = "MyAccessToken";

pub(super) fn secrets(config: &EnvironmentConfig, r: &mut Report) {
    if let Provider::Hetzner(h) = &config.provider {
        let token = h.api_token.expose();
        // Empty: the token comes from HCLOUD_TOKEN when provisioning and destroying.
        if token.chars().any(char::is_whitespace) {
            r.add(
                "provider.api_token",
                "the Hetzner API token contains whitespace",
                secret_v(),
                "paste the token again without spaces or line breaks",
            );
        }
    }
    admin_token(config, r);
    if let Database::Mysql(m) = &config.tracker.core.database {
        let base = "tracker.core.database";
        if m.password.is_empty() {
            r.add(
                format!("{base}.password"),
                "the MySQL password is empty",
                secret_v(),
                "set a password for the tracker's database user (e.g. from `openssl rand \
                 -base64 24`)",
            );
        }
        if m.root_password.as_ref().is_some_and(|p| p.is_empty()) {
            r.add(
                format!("{base}.root_password"),
                "the MySQL root password is empty",
                secret_v(),
                "set a root password, or remove `root_password` to have one generated",
            );
        }
    }
    if let Some(g) = &config.grafana {
        if g.admin_password.is_empty() {
            r.add(
                "grafana.admin_password",
                "the Grafana admin password is empty",
                secret_v(),
                "set a strong password (e.g. from `openssl rand -base64 24`)",
            );
        } else if g.admin_password.expose() == "admin" {
            r.warn(
                "grafana.admin_password",
                "the Grafana admin password is the well-known default `admin`; change it",
            );
        }
    }
}

fn admin_token(config: &EnvironmentConfig, r: &mut Report) {
    let path = "tracker.http_api.admin_token";
    let token = config.tracker.http_api.admin_token.expose();
    if token.is_empty() {
        r.add(
            path,
            "the API admin token is empty",
            secret_v(),
            "set a long random token (e.g. from `openssl rand -hex 32`)",
        );
    } else if token.chars().any(char::is_whitespace) {
        r.add(
            path,
            "the API admin token contains whitespace",
            secret_v(),
            "use a token without spaces or line breaks (e.g. from `openssl rand -hex 32`)",
        );
    } else if token == EXAMPLE_ADMIN_TOKEN {
        r.warn(
            path,
            "the admin token is the well-known example value; anyone can use your API. \
             Replace it with a random token (e.g. from `openssl rand -hex 32`)",
        );
    }
}
