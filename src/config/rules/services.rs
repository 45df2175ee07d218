//! The optional services and extensions: `prometheus`, `grafana`, `backup`, `images` and
//! `host`. (Their secrets are in `secrets`, their TLS in `tls`.)

use super::{Report, v};
use crate::config::images::{ImageService, check_image_reference, default_image};
use crate::config::{ANNOUNCE_INTERVAL_BOUNDS, DEFAULT_ANNOUNCE_INTERVAL, EnvironmentConfig};

/// A 5-field cron schedule (minute hour day-of-month month day-of-week).
fn check_cron(schedule: &str) -> Result<(), String> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "has {} field(s); exactly 5 are needed (minute hour day-of-month month day-of-week)",
            fields.len()
        ));
    }
    const NAMES: [&str; 19] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN",
        "MON", "TUE", "WED", "THU", "FRI", "SAT",
    ];
    for field in &fields {
        for token in field.split([',', '-', '/']) {
            if token.is_empty() {
                return Err(format!("field {field:?} has an empty part"));
            }
            let all_digits = token.chars().all(|c| c.is_ascii_digit());
            let is_name = NAMES.contains(&token.to_ascii_uppercase().as_str());
            if !(all_digits || token == "*" || is_name) {
                return Err(format!(
                    "field {field:?} has {token:?}; use numbers, `*`, `,`, `-`, `/` or month and \
                     day names"
                ));
            }
        }
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build();
    parser
        .parse(schedule)
        .map(|_| ())
        .map_err(|e| format!("is not a valid cron schedule: {e}"))
}

/// `tracker.core.announce_policy`: both intervals within the bounds, the minimum not above the
/// interval.
pub(super) fn announce_policy(config: &EnvironmentConfig, r: &mut Report) {
    let Some(policy) = &config.tracker.core.announce_policy else {
        return;
    };
    let (low, high) = ANNOUNCE_INTERVAL_BOUNDS;
    let mut in_bounds = true;
    for (field, value) in [
        ("interval", policy.interval),
        ("interval_min", policy.interval_min),
    ] {
        if !(low..=high).contains(&value) {
            in_bounds = false;
            r.add(
                format!("tracker.core.announce_policy.{field}"),
                format!("must be from {low} to {high} seconds"),
                Some(value.to_string()),
                format!(
                    "use a number of seconds from {low} to {high} (default \
                     {DEFAULT_ANNOUNCE_INTERVAL}), or remove the field"
                ),
            );
        }
    }
    if in_bounds && policy.interval_min > policy.interval {
        r.add(
            "tracker.core.announce_policy.interval_min",
            format!(
                "the minimum interval ({} s) is above the interval ({} s): clients could not \
                 follow both",
                policy.interval_min, policy.interval
            ),
            Some(policy.interval_min.to_string()),
            format!(
                "make `interval_min` at most `interval` (an absent one is \
                 {DEFAULT_ANNOUNCE_INTERVAL})"
            ),
        );
    }
}

pub(super) fn services(config: &EnvironmentConfig, r: &mut Report) {
    if let Some(p) = &config.prometheus
        && p.scrape_interval_in_secs == 0
    {
        r.add(
            "prometheus.scrape_interval_in_secs",
            "the scrape interval must be greater than 0",
            Some("0".into()),
            "use a number of seconds >= 1 (default 15), or remove the field",
        );
    }
    if let Some(g) = &config.grafana {
        if config.prometheus.is_none() {
            r.add(
                "grafana",
                "Grafana needs Prometheus as its data source, and `prometheus` is absent",
                None,
                "add `\"prometheus\": { \"scrape_interval_in_secs\": 15 }`, or remove the \
                 `grafana` section",
            );
        }
        if g.admin_user.trim().is_empty() {
            r.add(
                "grafana.admin_user",
                "the Grafana admin user is empty",
                v(&g.admin_user),
                "name the Grafana admin user, e.g. `admin`",
            );
        }
    }
    if let Some(b) = &config.backup {
        if let Err(e) = check_cron(&b.schedule) {
            r.add(
                "backup.schedule",
                format!("invalid backup schedule: {e}"),
                v(&b.schedule),
                "use a 5-field cron schedule `minute hour day-of-month month day-of-week`, e.g. \
                 `0 3 * * *` for every day at 03:00",
            );
        }
        if b.retention_days == 0 {
            r.add(
                "backup.retention_days",
                "the retention must be at least 1 day",
                Some("0".into()),
                "use a number of days >= 1 (default 7)",
            );
        }
    }
}

pub(super) fn host(config: &EnvironmentConfig, r: &mut Report) {
    let Some(host) = &config.host else {
        return;
    };
    let time = &host.automatic_reboot_time;
    let valid = time.len() == 5
        && time.as_bytes()[2] == b':'
        && matches!((time[..2].parse::<u8>(), time[3..].parse::<u8>()), (Ok(h), Ok(m)) if h < 24 && m < 60)
        && time[..2]
            .bytes()
            .chain(time[3..].bytes())
            .all(|b| b.is_ascii_digit());
    if !valid {
        r.add(
            "host.automatic_reboot_time",
            "not a time of day in `HH:MM` (24-hour) form",
            v(time),
            "use e.g. `02:00` or `23:30`, or remove the field for the default `02:00`",
        );
    }
    if let Some(dir) = &host.offline_packages
        && !r.skip_files
        && let Err(why) = crate::tasks::apt_source::check_dir(dir)
    {
        r.add(
            "host.offline_packages",
            why,
            v(&dir.display().to_string()),
            "build it with `bash provisioning/offline/build-deb-dir.sh DIR` on a machine with a \
             Debian 12 mirror (see docs/user-guide/air-gapped.md), or remove the field to install \
             from the host's own mirror",
        );
    }
    if let Some(proxy) = &host.apt_proxy_over_ssh
        && let Err(why) = check_host_port(proxy)
    {
        r.add(
            "host.apt_proxy_over_ssh",
            why,
            v(proxy),
            "use `HOST:PORT` of an apt proxy or mirror this machine reaches, e.g. \
             `apt-cache.internal:3142` or `deb.debian.org:80`",
        );
    }
    if host.apt_proxy_over_ssh.is_some() && host.offline_packages.is_some() {
        r.add(
            "host.apt_proxy_over_ssh",
            "cannot be used with `host.offline_packages`",
            None,
            "keep one: the package directory, or the proxy carried over SSH",
        );
    }
}

/// `host:port`: a DNS name or IPv4 address (or `[IPv6]`) and a port 1-65535.
fn check_host_port(text: &str) -> Result<(), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("has no `:PORT`".into());
    };
    if !port.parse::<u16>().is_ok_and(|p| p != 0) {
        return Err(format!("port {port:?} is not 1-65535"));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let valid = if bracketed {
        host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    if !valid {
        return Err(format!("host {host:?} is not a name or an address"));
    }
    Ok(())
}

pub(super) fn images(config: &EnvironmentConfig, r: &mut Report) {
    let Some(images) = &config.images else {
        return;
    };
    if let Some(bundle) = &images.offline_bundle
        && !r.skip_files
        && !bundle.is_dir()
    {
        r.add(
            "images.offline_bundle",
            "is not a directory",
            v(&bundle.display().to_string()),
            "point it at a directory of `docker save` archives (see docs/user-guide/air-gapped.md), \
             or remove it to pull images from the registry",
        );
    }
    if images.backup.is_some() {
        r.warn(
            "images.backup",
            "is ignored: the backup job runs on the host (cron and the Docker CLI), not in a \
             container, so it uses no image; remove the field to silence this warning",
        );
    }
    for service in ImageService::ALL {
        if let Some(reference) = images.get(service)
            && let Err(e) = check_image_reference(reference)
        {
            r.add(
                format!("images.{}", service.key()),
                format!("invalid image reference: {e}"),
                v(reference),
                format!(
                    "use `name[:tag][@digest]`, e.g. `{}`, or remove it to use that default",
                    default_image(service)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 1,15 * MON-FRI",
            "0 12 * JAN sun",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "@daily",
            "0 3 * *",
            "0 0 3 * * *",
            "60 * * * *",
            "0 3 L * *",
            "0 3 ? * *",
            "0 3 * * 1#2",
        ] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }
}
