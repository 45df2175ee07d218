//! The TLS proxy: `https` (the ACME account) and the services with `use_tls_proxy`, their
//! domains and bind addresses. (Each domain is a typed [`Domain`], parsed when read.)

use super::{Report, v};
use crate::config::json::quoted;
use crate::config::values::check_domain;
use crate::config::{BindAddress, Domain, EnvironmentConfig};

/// A service that may sit behind the TLS proxy.
struct TlsService<'a> {
    path: String,
    label: String,
    domain: Option<&'a Domain>,
    use_tls_proxy: bool,
    /// `None` for Grafana (no bind address in the file).
    addr: Option<BindAddress>,
}

fn tls_services(config: &EnvironmentConfig) -> Vec<TlsService<'_>> {
    let t = &config.tracker;
    let mut out = Vec::new();
    for (i, h) in t.http_trackers.iter().enumerate() {
        out.push(TlsService {
            path: format!("tracker.http_trackers[{i}]"),
            label: format!("HTTP tracker {}", i + 1),
            domain: h.domain.as_ref(),
            use_tls_proxy: h.use_tls_proxy,
            addr: Some(h.bind_address),
        });
    }
    out.push(TlsService {
        path: "tracker.http_api".into(),
        label: "the tracker API".into(),
        domain: t.http_api.domain.as_ref(),
        use_tls_proxy: t.http_api.use_tls_proxy,
        addr: Some(t.http_api.bind_address),
    });
    out.push(TlsService {
        path: "tracker.health_check_api".into(),
        label: "the health check API".into(),
        domain: t.health_check_api.domain.as_ref(),
        use_tls_proxy: t.health_check_api.use_tls_proxy,
        addr: Some(t.health_check_api.bind_address),
    });
    if let Some(g) = &config.grafana {
        out.push(TlsService {
            path: "grafana".into(),
            label: "Grafana".into(),
            domain: g.domain.as_ref(),
            use_tls_proxy: g.use_tls_proxy,
            addr: None,
        });
    }
    out
}

fn check_email(email: &str) -> Result<(), String> {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("has no `@`".into());
    };
    if local.is_empty() {
        return Err("has nothing before `@`".into());
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace".into());
    }
    if local.contains('@') || local.starts_with('.') || local.ends_with('.') {
        return Err("has an invalid part before `@`".into());
    }
    check_domain(domain).map_err(|e| format!("domain part {e}"))
}

pub(super) fn tls(config: &EnvironmentConfig, r: &mut Report) {
    if let Some(h) = &config.https
        && let Err(e) = check_email(&h.admin_email)
    {
        r.add(
            "https.admin_email",
            format!("invalid e-mail address: {e}"),
            v(&h.admin_email),
            "use a real mailbox such as `admin@example.com`: Let's Encrypt sends certificate \
             expiry notices there",
        );
    }
    let services = tls_services(config);
    let mut tls_domains: Vec<(&Domain, &str)> = Vec::new();
    for s in services.iter().filter(|s| s.use_tls_proxy) {
        let domain_path = format!("{}.domain", s.path);
        match s.domain {
            None => r.add(
                domain_path,
                format!(
                    "`use_tls_proxy` is true for {} but it has no `domain`",
                    s.label
                ),
                None,
                "add the `domain` the certificate is for (e.g. `tracker.example.com`), or set \
                 `use_tls_proxy` to false",
            ),
            Some(_) if !r.accepted(&domain_path) => {}
            Some(d) => match tls_domains.iter().find(|(other, _)| other.same_as(d)) {
                Some((_, other)) => r.add(
                    domain_path,
                    format!(
                        "domain `{d}` is already used by `{other}`; the TLS proxy routes by \
                         domain, so each service needs its own"
                    ),
                    v(d.as_str()),
                    "give each service behind the TLS proxy a different domain (e.g. \
                     `tracker.example.com`, `api.example.com`)",
                ),
                None => tls_domains.push((d, s.path.as_str())),
            },
        }
        let addr_path = format!("{}.bind_address", s.path);
        if let Some(addr) = s.addr
            && r.accepted(&addr_path)
            && addr.ip().is_loopback()
        {
            r.add(
                addr_path,
                format!(
                    "{} is behind the TLS proxy but bound to loopback, where the proxy cannot \
                     reach it",
                    s.label
                ),
                Some(format!("\"{addr}\"")),
                format!(
                    "bind to all interfaces, e.g. `0.0.0.0:{}`, or set `use_tls_proxy` to false",
                    addr.port()
                ),
            );
        }
    }
    let any_tls = services.iter().any(|s| s.use_tls_proxy);
    match (&config.https, any_tls) {
        (Some(_), false) => r.add(
            "https",
            "the `https` section is present but no service has `use_tls_proxy: true`",
            None,
            "set `use_tls_proxy: true` and a `domain` on the services to serve over HTTPS \
             (HTTP trackers, `http_api`, `health_check_api`, `grafana`), or remove `https`",
        ),
        (None, true) => {
            let list: Vec<&str> = services
                .iter()
                .filter(|s| s.use_tls_proxy)
                .map(|s| s.path.as_str())
                .collect();
            r.add(
                "https",
                format!(
                    "missing: {} use(s) `use_tls_proxy: true`, which needs the `https` section",
                    quoted(&list)
                ),
                None,
                "add `\"https\": { \"admin_email\": \"you@example.com\" }` (the Let's Encrypt \
                 account), or set `use_tls_proxy` to false",
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(check_email("admin@example.com").is_ok());
        for bad in [
            "admin",
            "@example.com",
            "a@localhost",
            "a b@example.com",
            ".a@example.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
