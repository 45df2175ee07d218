//! The tasks of `configure`: Docker and Compose from the distribution's packages, the SSH user
//! in the docker group, unattended upgrades with an automatic-reboot time, and a firewall.
//!
//! Decisions (`plan_*`) are pure functions of the [`Facts`]; the `apply_*` functions act over
//! SSH; [`verify`] checks every goal against facts read again afterwards.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::facts::{self, Facts, UfwFacts};
use super::{Plan, TaskError};
use crate::host::Host;
use crate::ssh::{UploadFile, shell_quote};

/// What configure is asked to make true.
#[derive(Debug, Clone)]
pub struct Goals {
    /// The SSH user, added to the docker group.
    pub user: String,
    /// The SSH port the firewall keeps open.
    pub ssh_port: u16,
    /// `HH:MM`, when unattended-upgrades may reboot.
    pub reboot_time: String,
}

/// The distributions configure supports, from `/etc/os-release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distro {
    #[serde(rename = "debian-12")]
    Debian12,
    #[serde(rename = "ubuntu-24.04")]
    Ubuntu2404,
}

impl Distro {
    /// Which distribution the facts describe, or why it is refused.
    pub fn detect(facts: &Facts) -> Result<Distro, TaskError> {
        match (facts.os_id.as_str(), facts.os_version.as_str()) {
            ("debian", "12") => Ok(Distro::Debian12),
            ("ubuntu", "24.04") => Ok(Distro::Ubuntu2404),
            (id, version) => Err(TaskError::UnsupportedOs {
                task: "operating system".into(),
                message: format!(
                    "the host runs {} (ID={id}, VERSION_ID={version}), which configure does not support",
                    if facts.os_pretty.is_empty() {
                        id
                    } else {
                        &facts.os_pretty
                    }
                ),
                fix: "use a Debian 12 or Ubuntu 24.04 image (e.g. `provider.image`: \
                      `images:debian/12/cloud`, `ubuntu:24.04`, or the local `torrust/debian-12`)"
                    .into(),
            }),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Distro::Debian12 => "Debian 12",
            Distro::Ubuntu2404 => "Ubuntu 24.04",
        }
    }

    /// The Compose package: the v2 plugin where the distribution packages it, else v1.
    pub fn compose_package(self) -> &'static str {
        match self {
            Distro::Debian12 => "docker-compose",
            Distro::Ubuntu2404 => "docker-compose-v2",
        }
    }

    /// Every package configure installs.
    pub fn packages(self) -> [&'static str; 4] {
        [
            "docker.io",
            self.compose_package(),
            "unattended-upgrades",
            "ufw",
        ]
    }
}

/// Which Compose the host has: later steps call [`ComposeFlavor::command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComposeFlavor {
    /// The `docker compose` plugin (v2).
    V2Plugin,
    /// The standalone `docker-compose` (v1, Debian 12).
    V1Standalone,
}

impl ComposeFlavor {
    pub fn command(self) -> &'static str {
        match self {
            ComposeFlavor::V2Plugin => "docker compose",
            ComposeFlavor::V1Standalone => "docker-compose",
        }
    }

    /// The Compose the facts show, v2 preferred; with its version.
    pub fn detect(facts: &Facts) -> Option<(ComposeFlavor, String)> {
        if let Some(v) = &facts.compose_v2 {
            return Some((ComposeFlavor::V2Plugin, v.clone()));
        }
        facts
            .compose_v1
            .as_ref()
            .map(|v| (ComposeFlavor::V1Standalone, v.clone()))
    }
}

/// Files managed by the unattended-upgrades task.
pub const AUTO_UPGRADES: &str = "/etc/apt/apt.conf.d/20auto-upgrades";
pub const REBOOT_SETTINGS: &str = "/etc/apt/apt.conf.d/52torrust-unattended-upgrades";

/// Every file whose hash the facts must report.
pub const MANAGED_FILES: &[&str] = &[AUTO_UPGRADES, REBOOT_SETTINGS];

/// The contents of the unattended-upgrades files, by path.
pub fn unattended_files(goals: &Goals) -> Vec<(&'static str, String)> {
    vec![
        (
            AUTO_UPGRADES,
            "// Written by torrust-tracker-deployer (configure): refresh the package lists and\n\
             // install security upgrades every day.\n\
             APT::Periodic::Update-Package-Lists \"1\";\n\
             APT::Periodic::Unattended-Upgrade \"1\";\n"
                .to_string(),
        ),
        (
            REBOOT_SETTINGS,
            format!(
                "// Written by torrust-tracker-deployer (configure). To change the time, edit\n\
                 // `host.automatic_reboot_time` in the environment file and run configure again.\n\
                 Unattended-Upgrade::Automatic-Reboot \"true\";\n\
                 Unattended-Upgrade::Automatic-Reboot-Time \"{}\";\n",
                goals.reboot_time
            ),
        ),
    ]
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The facts script for these goals.
pub fn facts_script(goals: &Goals) -> String {
    facts::script(&goals.user, MANAGED_FILES)
}

/// Packages to install: those of the distribution not yet installed.
pub fn plan_packages(facts: &Facts, distro: Distro) -> Plan<Vec<String>> {
    let missing: Vec<String> = distro
        .packages()
        .iter()
        .filter(|p| !facts.is_installed(p))
        .map(|p| p.to_string())
        .collect();
    if missing.is_empty() {
        let versions: Vec<String> = distro
            .packages()
            .iter()
            .map(|p| format!("{p} {}", facts.installed[*p]))
            .collect();
        Plan::Nothing(format!("installed: {}", versions.join(", ")))
    } else {
        let text = format!("install {}", missing.join(" "));
        Plan::Apply(missing, text)
    }
}

/// Start (and enable) the docker service when it isn't.
pub fn plan_docker_service(facts: &Facts) -> Plan<()> {
    let enabled_ok = facts.docker_enabled || !facts.systemd;
    if facts.docker_active && enabled_ok {
        Plan::Nothing("docker is running and enabled".into())
    } else if facts.is_installed("docker.io") {
        Plan::Apply((), "enable and start docker".into())
    } else {
        Plan::Apply((), "enable and start docker (once installed)".into())
    }
}

/// Add the SSH user to the docker group when it isn't in it.
pub fn plan_docker_group(facts: &Facts, goals: &Goals) -> Plan<()> {
    if goals.user == "root" {
        return Plan::Nothing("root needs no group".into());
    }
    if facts.user_in_docker_group {
        Plan::Nothing(format!("{} is in the docker group", goals.user))
    } else {
        Plan::Apply((), format!("add {} to the docker group", goals.user))
    }
}

/// Write the unattended-upgrades files whose content differs.
pub fn plan_unattended(facts: &Facts, goals: &Goals) -> Plan<Vec<UploadFile>> {
    let stale: Vec<UploadFile> = unattended_files(goals)
        .into_iter()
        .filter(|(path, body)| {
            facts.file_sha256.get(*path).map(String::as_str) != Some(&sha256_hex(body.as_bytes()))
        })
        .map(|(path, body)| UploadFile::new(path, body, 0o644).owned_by("root", "root"))
        .collect();
    if stale.is_empty() {
        Plan::Nothing(format!(
            "daily security upgrades, automatic reboot at {}",
            goals.reboot_time
        ))
    } else {
        let names: Vec<&str> = stale.iter().map(|f| f.remote_path.as_str()).collect();
        let text = format!(
            "write {} (automatic reboot at {})",
            names.join(", "),
            goals.reboot_time
        );
        Plan::Apply(stale, text)
    }
}

/// Whether ufw meets our goals: active, incoming denied, the SSH port allowed from anywhere.
pub fn firewall_ok(ufw: &UfwFacts, ssh_port: u16) -> bool {
    let port = ssh_port.to_string();
    ufw.active && ufw.default_input == "DROP" && ufw.allowed_tcp.contains(&port)
}

/// Enable ufw (deny incoming, SSH allowed) unless it already is.
pub fn plan_firewall(facts: &Facts, goals: &Goals) -> Plan<()> {
    match &facts.ufw {
        Some(s) if firewall_ok(s, goals.ssh_port) => Plan::Nothing(format!(
            "ufw active: incoming denied except SSH ({}/tcp)",
            goals.ssh_port
        )),
        _ => Plan::Apply(
            (),
            format!(
                "enable ufw: deny incoming, allow SSH ({}/tcp)",
                goals.ssh_port
            ),
        ),
    }
}

/// Waits for cloud-init to finish and for the package manager's locks to be free. Read-only.
pub async fn wait_ready(host: &dyn Host, timeout: Duration) -> Result<String, TaskError> {
    let secs = timeout.as_secs().max(1);
    // apt and dpkg lock with fcntl: a held lock shows in /proc/locks by inode.
    let script = format!(
        "ci=none\n\
         if [ -f /run/cloud-init/result.json ]; then\n\
           # Finished this boot: read the result without starting Python.\n\
           grep -q '\"errors\": \\[\\]' /run/cloud-init/result.json && ci=done || ci=error\n\
         elif command -v cloud-init >/dev/null 2>&1; then\n\
           ci=$(timeout {secs} cloud-init status --wait 2>/dev/null | sed -n 's/^status: //p')\n\
           [ -n \"$ci\" ] || ci=unknown\n\
         fi\n\
         locked() {{\n\
           # `:INODE ` (the space ends the number) per lock file, looked up all at once.\n\
           stat -c ':%i ' /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock \
           /var/cache/apt/archives/lock 2>/dev/null | grep -qFf - /proc/locks\n\
         }}\n\
         waited=0\n\
         while locked; do\n\
           [ $waited -ge {secs} ] && {{ echo \"cloud-init=$ci apt=busy\"; exit 3; }}\n\
           sleep 1; waited=$((waited + 1))\n\
         done\n\
         echo \"cloud-init=$ci apt=free waited=$waited\"\n"
    );
    let out = host.sudo(&script).await?;
    let text = out.stdout_str().trim().to_string();
    if out.status.code() == Some(3) {
        return Err(TaskError::apt(
            "wait for cloud-init and apt",
            format!("the package manager stayed busy for {secs} s ({text})"),
            "another apt/dpkg run holds the lock; wait for it (see `ps aux | grep -E 'apt|dpkg'` \
             on the host), then run configure again",
        ));
    }
    let out = out.check()?;
    let _ = out;
    let ci = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("cloud-init="))
        .unwrap_or("none");
    if ci != "none" && ci != "done" {
        return Err(TaskError::failed(
            "wait for cloud-init and apt",
            format!("cloud-init ended with status '{ci}'"),
            "see /var/log/cloud-init-output.log on the host; fix the cause, then run configure again",
        ));
    }
    Ok(match ci {
        "none" => "no cloud-init; apt is free".to_string(),
        _ => "cloud-init done; apt is free".to_string(),
    })
}

/// Reads the facts in one round trip.
pub async fn read_facts(host: &dyn Host, goals: &Goals) -> Result<Facts, TaskError> {
    let out = host.sudo(&facts_script(goals)).await?;
    Facts::parse(&out.stdout_str()).map_err(TaskError::Facts)
}

const APT: &str = "DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300";

/// Finish what an interrupted dpkg left (apt refuses to run until then).
pub fn plan_dpkg_repair(facts: &Facts) -> Plan<()> {
    if facts.dpkg_interrupted {
        Plan::Apply(
            (),
            "dpkg was interrupted: `dpkg --configure -a` finishes its work".into(),
        )
    } else {
        Plan::Nothing("dpkg is consistent".into())
    }
}

/// `dpkg --configure -a`, keeping the configuration files as they are.
pub async fn apply_dpkg_repair(host: &dyn Host) -> Result<(), TaskError> {
    let out = host
        .sudo(
            "DEBIAN_FRONTEND=noninteractive dpkg --force-confdef --force-confold --configure -a 2>&1",
        )
        .await?;
    if !out.success() {
        return Err(TaskError::apt(
            "repair dpkg",
            format!(
                "`dpkg --configure -a` failed ({}): {}",
                out.status,
                last_lines(&out.stdout_str(), 8)
            ),
            "run `sudo dpkg --configure -a` on the host to see the whole error; fix it, then run \
             configure again",
        ));
    }
    Ok(())
}

/// One `apt-get update` and one `apt-get install` for all missing packages.
pub async fn apply_packages(host: &dyn Host, packages: &[String]) -> Result<(), TaskError> {
    apply_packages_with(host, packages, "").await
}

/// [`apply_packages`] with more apt options (`-o Acquire::http::Proxy=...`).
pub async fn apply_packages_with(
    host: &dyn Host,
    packages: &[String],
    options: &str,
) -> Result<(), TaskError> {
    let run = AptRun {
        options,
        update_flags: "",
        what: "apt-get",
        fix: mirror_fix,
    };
    apt_install(host, packages, &run).await
}

/// The advice for a failed apt run against the host's own mirrors.
fn mirror_fix(stderr: &str) -> &'static str {
    if stderr.contains("Unable to locate package")
        || stderr.contains("has no installation candidate")
    {
        "the host's package mirror does not have it: check /etc/apt/sources.list(.d) on the \
         host (an air-gapped mirror must carry the distribution's main and universe/updates)"
    } else if stderr.contains("Temporary failure resolving") || stderr.contains("Could not connect")
    {
        "the host cannot reach its package mirror: check its DNS and network (for LXD: the \
         bridge's NAT), or point apt at a reachable mirror"
    } else {
        "see the apt output above; fix the cause on the host, then run configure again"
    }
}

/// How [`apt_install`] runs apt: its extra options, `apt-get update`'s flags, what a failure
/// is called, and the advice for a failure (given apt's stderr).
pub(crate) struct AptRun<'a> {
    pub options: &'a str,
    pub update_flags: &'a str,
    pub what: &'a str,
    pub fix: fn(&str) -> &'static str,
}

/// One `apt-get update` and one `apt-get install` of `packages`, as root.
pub(crate) async fn apt_install(
    host: &dyn Host,
    packages: &[String],
    run: &AptRun<'_>,
) -> Result<(), TaskError> {
    let list: Vec<String> = packages.iter().map(|p| shell_quote(p)).collect();
    let (options, update_flags) = (run.options, run.update_flags);
    let script = format!(
        "set -e\n{APT} {options} update {update_flags} >/dev/null\n\
         {APT} {options} install -y --no-install-recommends -o Dpkg::Options::=--force-confdef \
         -o Dpkg::Options::=--force-confold {}\n",
        list.join(" ")
    );
    let out = host.sudo(&script).await?;
    if !out.success() {
        let stderr = out.stderr_str();
        return Err(TaskError::apt(
            "packages",
            format!(
                "{} failed ({}): {}",
                run.what,
                out.status,
                last_lines(&stderr, 8)
            ),
            (run.fix)(&stderr),
        ));
    }
    Ok(())
}

pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n    ")
}

pub async fn apply_docker_service(host: &dyn Host, facts: &Facts) -> Result<(), TaskError> {
    let command = if facts.systemd {
        "systemctl enable --now docker"
    } else {
        "service docker start"
    };
    let out = host.sudo(command).await?;
    if !out.success() {
        return Err(TaskError::failed(
            "docker service",
            format!("`{command}` failed: {}", last_lines(&out.stderr_str(), 6)),
            "see `journalctl -u docker` on the host (inside an LXD container, Docker needs \
             `security.nesting=true`, which provision sets)",
        ));
    }
    Ok(())
}

pub async fn apply_docker_group(host: &dyn Host, goals: &Goals) -> Result<(), TaskError> {
    host.sudo(&format!("usermod -aG docker {}", shell_quote(&goals.user)))
        .await?
        .check()?;
    Ok(())
}

/// Outcome of enabling the firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallOutcome {
    Enabled,
    /// The kernel (e.g. of an unprivileged container) refused the rules: the text says how.
    Refused(String),
}

pub async fn apply_firewall(host: &dyn Host, goals: &Goals) -> Result<FirewallOutcome, TaskError> {
    // The SSH rule goes in before enabling, so the session is never cut.
    let script = format!(
        "set -e\nufw default deny incoming >/dev/null\nufw default allow outgoing >/dev/null\n\
         ufw allow {}/tcp >/dev/null\nufw --force enable\n",
        goals.ssh_port
    );
    let out = host.sudo(&script).await?;
    if out.success() {
        return Ok(FirewallOutcome::Enabled);
    }
    let detail = last_lines(&format!("{}\n{}", out.stdout_str(), out.stderr_str()), 4);
    let kernel_refused = [
        "iptables",
        "ip6tables",
        "problem running",
        "Permission denied",
        "modprobe",
    ]
    .iter()
    .any(|w| detail.contains(w));
    if kernel_refused {
        // Leave ufw off rather than half-applied.
        let _ = host.sudo("ufw --force disable >/dev/null 2>&1").await;
        Ok(FirewallOutcome::Refused(detail))
    } else {
        Err(TaskError::failed(
            "firewall",
            format!("ufw failed: {detail}"),
            "run `sudo ufw status verbose` on the host to see its state; fix it, then run \
             configure again",
        ))
    }
}

/// Checks every goal against facts read after applying. Returns the failures by task.
pub fn verify(
    facts: &Facts,
    goals: &Goals,
    distro: Distro,
    firewall_refused: bool,
) -> Vec<(&'static str, String)> {
    let mut failures = Vec::new();
    if facts.dpkg_interrupted {
        failures.push((
            "repair dpkg",
            "dpkg still reports an interrupted run (`dpkg --audit`)".into(),
        ));
    }
    if let Plan::Apply(missing, _) = plan_packages(facts, distro) {
        failures.push(("packages", format!("not installed: {}", missing.join(" "))));
    }
    if plan_docker_service(facts).is_apply() {
        failures.push(("docker service", "docker is not running and enabled".into()));
    }
    if plan_docker_group(facts, goals).is_apply() {
        failures.push((
            "docker group",
            format!("{} is not in the docker group", goals.user),
        ));
    }
    if plan_unattended(facts, goals).is_apply() {
        failures.push(("unattended upgrades", "the settings files differ".into()));
    }
    if !firewall_refused && plan_firewall(facts, goals).is_apply() {
        failures.push(("firewall", "ufw is not active with the SSH rule".into()));
    }
    if ComposeFlavor::detect(facts).is_none() {
        failures.push((
            "compose",
            "neither `docker compose` nor `docker-compose` answers".into(),
        ));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goals() -> Goals {
        Goals {
            user: "torrust".into(),
            ssh_port: 22,
            reboot_time: "02:00".into(),
        }
    }

    fn debian() -> Facts {
        Facts {
            os_id: "debian".into(),
            os_version: "12".into(),
            systemd: true,
            ..Facts::default()
        }
    }

    fn configured() -> Facts {
        let mut f = debian();
        for p in Distro::Debian12.packages() {
            f.installed.insert(p.to_string(), "1.0".into());
        }
        f.docker_active = true;
        f.docker_enabled = true;
        f.user_in_docker_group = true;
        for (path, body) in unattended_files(&goals()) {
            f.file_sha256
                .insert(path.to_string(), sha256_hex(body.as_bytes()));
        }
        f.ufw = Some(UfwFacts {
            active: true,
            default_input: "DROP".into(),
            allowed_tcp: vec!["22".into()],
        });
        f.compose_v1 = Some("1.29.2".into());
        f
    }

    #[test]
    fn only_debian_12_and_ubuntu_24_04_are_supported() {
        assert_eq!(Distro::detect(&debian()).unwrap(), Distro::Debian12);
        let ubuntu = Facts {
            os_id: "ubuntu".into(),
            os_version: "24.04".into(),
            ..Facts::default()
        };
        assert_eq!(Distro::detect(&ubuntu).unwrap(), Distro::Ubuntu2404);
        let old = Facts {
            os_id: "debian".into(),
            os_version: "11".into(),
            os_pretty: "Debian GNU/Linux 11 (bullseye)".into(),
            ..Facts::default()
        };
        let e = Distro::detect(&old).unwrap_err().to_string();
        assert!(
            e.contains("bullseye") && e.contains("Debian 12 or Ubuntu 24.04"),
            "{e}"
        );
    }

    #[test]
    fn compose_comes_from_the_distribution() {
        assert_eq!(Distro::Debian12.compose_package(), "docker-compose");
        assert_eq!(Distro::Ubuntu2404.compose_package(), "docker-compose-v2");
        let mut f = debian();
        assert_eq!(ComposeFlavor::detect(&f), None);
        f.compose_v1 = Some("1.29.2".into());
        assert_eq!(
            ComposeFlavor::detect(&f),
            Some((ComposeFlavor::V1Standalone, "1.29.2".into()))
        );
        f.compose_v2 = Some("2.24.6".into());
        assert_eq!(
            ComposeFlavor::detect(&f).unwrap().0.command(),
            "docker compose"
        );
    }

    #[test]
    fn a_fresh_host_needs_everything_in_one_install() {
        let f = debian();
        let Plan::Apply(pkgs, _) = plan_packages(&f, Distro::Debian12) else {
            panic!("expected an install")
        };
        assert_eq!(
            pkgs,
            ["docker.io", "docker-compose", "unattended-upgrades", "ufw"]
        );
        assert!(plan_docker_service(&f).is_apply());
        assert!(plan_docker_group(&f, &goals()).is_apply());
        let Plan::Apply(files, _) = plan_unattended(&f, &goals()) else {
            panic!()
        };
        assert_eq!(files.len(), 2);
        assert!(plan_firewall(&f, &goals()).is_apply());
        assert_eq!(verify(&f, &goals(), Distro::Debian12, false).len(), 6);
    }

    #[test]
    fn a_configured_host_needs_nothing() {
        let f = configured();
        assert!(!plan_packages(&f, Distro::Debian12).is_apply());
        assert!(!plan_docker_service(&f).is_apply());
        assert!(!plan_docker_group(&f, &goals()).is_apply());
        assert!(!plan_unattended(&f, &goals()).is_apply());
        assert!(!plan_firewall(&f, &goals()).is_apply());
        assert!(verify(&f, &goals(), Distro::Debian12, false).is_empty());
    }

    #[test]
    fn a_new_reboot_time_rewrites_only_its_file() {
        let f = configured();
        let g = Goals {
            reboot_time: "04:30".into(),
            ..goals()
        };
        let Plan::Apply(files, text) = plan_unattended(&f, &g) else {
            panic!()
        };
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].remote_path, REBOOT_SETTINGS);
        assert!(String::from_utf8_lossy(&files[0].contents).contains("\"04:30\""));
        assert!(text.contains("04:30"));
    }

    #[test]
    fn the_firewall_rule_must_match_the_ssh_port() {
        let f = configured();
        let g = Goals {
            ssh_port: 2222,
            ..goals()
        };
        assert!(plan_firewall(&f, &g).is_apply());
        let ufw = f.ufw.clone().unwrap();
        assert!(firewall_ok(&ufw, 22));
        let inactive = UfwFacts {
            active: false,
            ..ufw.clone()
        };
        assert!(!firewall_ok(&inactive, 22));
        let accepting = UfwFacts {
            default_input: "ACCEPT".into(),
            ..ufw.clone()
        };
        assert!(!firewall_ok(&accepting, 22));
        // A rule for another port that contains "22" does not count.
        let other_port = UfwFacts {
            allowed_tcp: vec!["2222".into()],
            ..ufw
        };
        assert!(!firewall_ok(&other_port, 22));
    }

    #[test]
    fn an_interrupted_dpkg_is_repaired_before_anything_else() {
        let mut f = configured();
        assert!(!plan_dpkg_repair(&f).is_apply());
        f.dpkg_interrupted = true;
        assert!(plan_dpkg_repair(&f).is_apply());
        assert_eq!(
            verify(&f, &goals(), Distro::Debian12, false)[0].0,
            "repair dpkg"
        );
    }

    #[tokio::test]
    async fn a_failed_dpkg_repair_says_how_to_see_why() {
        use crate::host::fake::{FakeHost, Reply};
        let host = FakeHost::new();
        host.reply(
            "--configure -a",
            [Reply {
                stdout: "dpkg: error processing package x (--configure)\n".into(),
                ..Reply::fail(1, "")
            }],
        );
        let err = apply_dpkg_repair(&host).await.unwrap_err().to_string();
        assert!(err.contains("error processing package x"), "{err}");
        assert!(err.contains("sudo dpkg --configure -a"), "{err}");
    }

    #[test]
    fn a_refused_firewall_is_not_a_verification_failure() {
        let mut f = configured();
        f.ufw = Some(UfwFacts::default());
        assert!(verify(&f, &goals(), Distro::Debian12, true).is_empty());
        assert_eq!(verify(&f, &goals(), Distro::Debian12, false).len(), 1);
    }

    #[test]
    fn without_systemd_enabled_is_not_required() {
        let mut f = configured();
        f.systemd = false;
        f.docker_enabled = false;
        assert!(!plan_docker_service(&f).is_apply());
    }
}
