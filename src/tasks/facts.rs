//! The host's facts, read by one script in one round trip.
//!
//! The script prints `key=value` lines; [`Facts::parse`] turns them into typed fields. Keeping
//! the parser pure makes every decision testable without a host.

use std::collections::BTreeMap;

use crate::ssh::shell_quote;

/// The packages configure may install, whose state the facts report.
pub const KNOWN_PACKAGES: &[&str] = &[
    "docker.io",
    "docker-compose",
    "docker-compose-v2",
    "unattended-upgrades",
    "ufw",
];

/// Everything configure's tasks decide from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `ID` of `/etc/os-release`, e.g. `debian`, `ubuntu`.
    pub os_id: String,
    /// `VERSION_ID`, e.g. `12`, `24.04`.
    pub os_version: String,
    /// `PRETTY_NAME`.
    pub os_pretty: String,
    /// Whether systemd runs the host (`/run/systemd/system` exists).
    pub systemd: bool,
    /// Installed packages (dpkg status `installed`) among [`KNOWN_PACKAGES`], with versions.
    pub installed: BTreeMap<String, String>,
    /// `systemctl is-active docker`.
    pub docker_active: bool,
    /// `systemctl is-enabled docker`.
    pub docker_enabled: bool,
    /// The SSH user is in the `docker` group.
    pub user_in_docker_group: bool,
    /// sha256 of files tasks manage, by path (absent files are not listed).
    pub file_sha256: BTreeMap<String, String>,
    /// dpkg was interrupted (its journal in `/var/lib/dpkg/updates` is not empty, or `dpkg
    /// --audit` lists half-installed packages): apt refuses to run until `dpkg --configure -a`.
    pub dpkg_interrupted: bool,
    /// ufw's state, when ufw is installed.
    pub ufw: Option<UfwFacts>,
    /// `docker compose version --short`, when the v2 plugin answers.
    pub compose_v2: Option<String>,
    /// `docker-compose version --short`, when the v1 command answers.
    pub compose_v1: Option<String>,
}

/// What `ufw status verbose` would say, read without starting ufw's Python (about 0.2 s): its
/// chains loaded in the kernel (what ufw itself checks), its default input policy, and the TCP
/// ports its user rules allow from anywhere (IPv4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UfwFacts {
    /// ufw's chains are loaded (`ufw status` says `active`).
    pub active: bool,
    /// `DEFAULT_INPUT_POLICY` of `/etc/default/ufw`: `DROP` is "deny (incoming)".
    pub default_input: String,
    /// Destination ports of the `allow tcp ... in` rules from anywhere, as ufw writes them
    /// (`22`, `8000:8010`).
    pub allowed_tcp: Vec<String>,
}

impl UfwFacts {
    /// Parses the script's `ufw=` value: `active|inactive input=POLICY allow=PORT,PORT,`.
    fn parse(value: &str) -> UfwFacts {
        let mut ufw = UfwFacts::default();
        for word in value.split_whitespace() {
            match word.split_once('=') {
                Some(("input", policy)) => ufw.default_input = policy.to_string(),
                Some(("allow", ports)) => {
                    ufw.allowed_tcp = ports
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                _ => ufw.active |= word == "active",
            }
        }
        ufw
    }
}

/// The fact-gathering script, run as root. `user` is the SSH user; `files` the files whose
/// hashes the tasks compare.
pub fn script(user: &str, files: &[&str]) -> String {
    let user = shell_quote(user);
    let mut s = String::from(
        "exec 2>/dev/null\n\
         . /etc/os-release\n\
         echo \"os_id=$ID\"\n\
         echo \"os_version=$VERSION_ID\"\n\
         echo \"os_pretty=$PRETTY_NAME\"\n\
         [ -d /run/systemd/system ] && echo systemd=yes || echo systemd=no\n",
    );
    s.push_str(
        "if [ -n \"$(ls -A /var/lib/dpkg/updates)\" ] || [ -n \"$(dpkg --audit)\" ]; then \
         echo dpkg_interrupted=yes; fi\n",
    );
    // One dpkg-query for all (a package dpkg never heard of prints nothing).
    s.push_str(&format!(
        "dpkg-query -W -f='pkg.${{Package}}=${{db:Status-Status}} ${{Version}}\\n' {}\n",
        KNOWN_PACKAGES.join(" ")
    ));
    s.push_str(&format!(
        "echo \"docker_active=$(systemctl is-active docker)\"\n\
         echo \"docker_enabled=$(systemctl is-enabled docker)\"\n\
         id -nG {user} | tr ' ' '\\n' | grep -qx docker && echo in_docker_group=yes || echo in_docker_group=no\n"
    ));
    if !files.is_empty() {
        // One sha256sum for all; an absent file prints nothing.
        let quoted: Vec<String> = files.iter().map(|f| shell_quote(f)).collect();
        s.push_str(&format!(
            "sha256sum {} | while read -r h f; do echo \"sha256.$f=$h\"; done\n",
            quoted.join(" ")
        ));
    }
    s.push_str(
        "if command -v ufw >/dev/null; then\n\
           iptables -n -L ufw-user-input >/dev/null && a=active || a=inactive\n\
           p=$(sed -n 's/^DEFAULT_INPUT_POLICY=\"*\\([A-Z]*\\)\"*$/\\1/p' /etc/default/ufw)\n\
           r=$(awk '$2 == \"tuple\" && $4 == \"allow\" && $5 == \"tcp\" && $9 == \"0.0.0.0/0\" && $10 == \"in\" { printf \"%s,\", $6 }' /etc/ufw/user.rules)\n\
           echo \"ufw=$a input=$p allow=$r\"\n\
         fi\n\
         for d in /usr/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins /usr/local/lib/docker/cli-plugins \"$HOME/.docker/cli-plugins\"; do\n\
           [ -x \"$d/docker-compose\" ] && v=$(docker compose version --short) && echo \"compose_v2=$v\" && break\n\
         done\n\
         if command -v docker-compose >/dev/null; then\n\
           v=$(dpkg-query -W -f='${Version}' docker-compose | sed 's/-[^-]*$//')\n\
           [ -n \"$v\" ] || v=$(docker-compose version --short)\n\
           echo \"compose_v1=$v\"\n\
         fi\n\
         true\n",
    );
    s
}

impl Facts {
    /// Parses the script's output. Unknown keys are ignored; a missing `os_id` is an error (the
    /// script did not run as expected).
    pub fn parse(output: &str) -> Result<Facts, String> {
        let mut f = Facts::default();
        for line in output.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key {
                "os_id" => f.os_id = value.to_string(),
                "os_version" => f.os_version = value.to_string(),
                "os_pretty" => f.os_pretty = value.to_string(),
                "systemd" => f.systemd = value == "yes",
                "docker_active" => f.docker_active = value == "active",
                "docker_enabled" => f.docker_enabled = value == "enabled",
                "in_docker_group" => f.user_in_docker_group = value == "yes",
                "dpkg_interrupted" => f.dpkg_interrupted = value == "yes",
                "ufw" => f.ufw = Some(UfwFacts::parse(value)),
                "compose_v2" if !value.is_empty() => f.compose_v2 = Some(value.to_string()),
                "compose_v1" if !value.is_empty() => f.compose_v1 = Some(value.to_string()),
                _ => {
                    if let Some(pkg) = key.strip_prefix("pkg.") {
                        if let Some(version) = value.strip_prefix("installed ") {
                            f.installed.insert(pkg.to_string(), version.to_string());
                        }
                    } else if let Some(path) = key.strip_prefix("sha256.")
                        && !value.is_empty()
                    {
                        f.file_sha256.insert(path.to_string(), value.to_string());
                    }
                }
            }
        }
        if f.os_id.is_empty() {
            return Err(format!(
                "no `ID` from /etc/os-release in the facts script's output: {:?}",
                output.chars().take(300).collect::<String>()
            ));
        }
        Ok(f)
    }

    pub fn is_installed(&self, package: &str) -> bool {
        self.installed.contains_key(package)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH_DEBIAN: &str = "os_id=debian\nos_version=12\nos_pretty=Debian GNU/Linux 12 (bookworm)\nsystemd=yes\n\
        pkg.docker.io=\npkg.docker-compose=\npkg.docker-compose-v2=\npkg.unattended-upgrades=\npkg.ufw=\n\
        docker_active=inactive\ndocker_enabled=\nin_docker_group=no\n";

    #[test]
    fn parses_a_fresh_host() {
        let f = Facts::parse(FRESH_DEBIAN).unwrap();
        assert_eq!(f.os_id, "debian");
        assert_eq!(f.os_version, "12");
        assert!(f.systemd);
        assert!(f.installed.is_empty());
        assert!(!f.docker_active && !f.docker_enabled && !f.user_in_docker_group);
        assert_eq!(f.ufw, None);
        assert_eq!(f.compose_v1, None);
    }

    #[test]
    fn parses_a_configured_host() {
        let out = "os_id=ubuntu\nos_version=24.04\nsystemd=yes\n\
            pkg.docker.io=installed 24.0.7-0ubuntu4\npkg.docker-compose-v2=installed 2.24.6\n\
            pkg.ufw=config-files 0.36\n\
            docker_active=active\ndocker_enabled=enabled\nin_docker_group=yes\n\
            sha256./etc/x=abc\n\
            ufw=active input=DROP allow=22,8000:8010,\ncompose_v2=2.24.6\n";
        let f = Facts::parse(out).unwrap();
        assert_eq!(f.installed["docker.io"], "24.0.7-0ubuntu4");
        assert!(f.is_installed("docker-compose-v2"));
        // Removed but not purged is not installed.
        assert!(!f.is_installed("ufw"));
        assert!(f.docker_active && f.docker_enabled && f.user_in_docker_group);
        assert_eq!(f.file_sha256["/etc/x"], "abc");
        assert_eq!(
            f.ufw,
            Some(UfwFacts {
                active: true,
                default_input: "DROP".into(),
                allowed_tcp: vec!["22".into(), "8000:8010".into()],
            })
        );
        assert_eq!(f.compose_v2.as_deref(), Some("2.24.6"));
    }

    #[test]
    fn output_without_os_release_is_an_error() {
        assert!(Facts::parse("sh: 1: .: cannot open /etc/os-release").is_err());
    }

    #[test]
    fn the_script_quotes_the_user_and_reads_every_package() {
        let s = script("to'rrust", &["/etc/a b"]);
        assert!(s.contains("id -nG 'to'\\''rrust'"), "{s}");
        for p in KNOWN_PACKAGES {
            assert!(s.contains(&format!(" {p}")), "{p}");
        }
        assert!(s.contains("sha256sum '/etc/a b'"), "{s}");
    }

    /// The script in a real shell: this machine's facts parse, and the hashes of files that
    /// exist (and only those) are read.
    #[test]
    fn the_script_runs_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("present file");
        std::fs::write(&present, "x").unwrap();
        let absent = dir.path().join("absent");
        let (present, absent) = (present.to_str().unwrap(), absent.to_str().unwrap());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script("root", &[present, absent]))
            .output()
            .unwrap();
        let facts = Facts::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(!facts.os_id.is_empty());
        assert_eq!(
            facts.file_sha256.get(present).map(String::as_str),
            Some("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
        );
        assert!(!facts.file_sha256.contains_key(absent));
    }
}
