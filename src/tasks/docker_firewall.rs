//! The firewall of Docker's published ports (ADR 32): rules in Docker's `DOCKER-USER` chain so
//! that only the ports the stack publishes for other machines are reachable from outside.
//!
//! Docker publishes a port with a DNAT rule, so the traffic to it is forwarded (`FORWARD`) and
//! never meets ufw's `INPUT` rules. `DOCKER-USER` is the chain Docker runs first in `FORWARD`
//! and leaves to its user. The rules, in order:
//!
//! 1. replies (`RELATED,ESTABLISHED`) pass;
//! 2. traffic from Docker's own bridges (`docker0`, `br-+`: the containers' outgoing traffic
//!    and traffic between them) passes;
//! 3. each public port passes: matched on the port *before* Docker's DNAT
//!    (`-m conntrack --ctorigdstport`; `--dport` would see the container's port), and on the
//!    host address it is published on when that is not every interface (`--ctorigdst`);
//! 4. anything else new is dropped; what is left returns to Docker's chains.
//!
//! Ports published on the host's loopback get no rule: nothing from outside reaches them.
//!
//! - facts: [`read`], one round trip: the chain as `iptables -S` prints it and the block this
//!   task keeps in `/etc/ufw/after.rules`;
//! - plan: [`plan`], pure: apply when either differs from [`rules`];
//! - apply: [`apply`], one `iptables-restore --noflush` (the chain is replaced at once) and the
//!   same block written to `/etc/ufw/after.rules`, which ufw loads at boot and at each reload,
//!   before Docker starts (Docker keeps the rules it finds in `DOCKER-USER`);
//! - verify: [`verify`] reads the facts again: nothing may be left to do.

use std::net::IpAddr;

use crate::host::Host;
use crate::ssh::shell_quote;
use crate::stack::{Protocol, PublishedPort, RenderedStack};

use super::{Plan, TaskError};

/// The task's name in reports.
pub const TASK: &str = "docker firewall";
/// ufw's rules file loaded after its own rules, at boot and at each `ufw reload`.
pub const AFTER_RULES: &str = "/etc/ufw/after.rules";
const BEGIN: &str = "# BEGIN torrust-tracker-deployer DOCKER-USER";
const END: &str = "# END torrust-tracker-deployer DOCKER-USER";

/// A port reachable from other machines: its protocol, port and, when published on one address
/// only, that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub protocol: Protocol,
    pub port: u16,
    pub address: Option<IpAddr>,
}

/// The IPv4 ports of the stack reachable from other machines, each once, in service order.
/// (Docker 20.10 publishes on IPv6 through its userland proxy, which ufw's `INPUT` rules see.)
pub fn open_ports(rendered: &RenderedStack) -> Vec<Open> {
    let mut out: Vec<Open> = Vec::new();
    let ports = rendered.services.iter().flat_map(|s| s.ports.iter());
    for p in ports.filter(|p| p.is_public()) {
        if p.host_ip.is_some_and(|ip| ip.is_ipv6()) {
            continue;
        }
        let open = open_of(p);
        if !out.contains(&open) {
            out.push(open);
        }
    }
    out
}

fn open_of(p: &PublishedPort) -> Open {
    Open {
        protocol: p.protocol,
        port: p.host_port,
        address: p.host_ip,
    }
}

/// The chain's rules, as `iptables -S DOCKER-USER` prints them.
pub fn rules(open: &[Open]) -> Vec<String> {
    let mut r = vec![
        "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN".to_string(),
        "-A DOCKER-USER -i docker0 -j RETURN".to_string(),
        "-A DOCKER-USER -i br-+ -j RETURN".to_string(),
    ];
    for o in open {
        let proto = match o.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let dst = o
            .address
            .map(|ip| format!(" --ctorigdst {ip}"))
            .unwrap_or_default();
        r.push(format!(
            "-A DOCKER-USER -p {proto} -m conntrack{dst} --ctorigdstport {} -j RETURN",
            o.port
        ));
    }
    r.push("-A DOCKER-USER -m conntrack --ctstate NEW -j DROP".to_string());
    r.push("-A DOCKER-USER -j RETURN".to_string());
    r
}

/// The block kept in [`AFTER_RULES`]: an `iptables-restore` table section between markers.
pub fn block(rules: &[String]) -> Vec<String> {
    let mut b = vec![
        BEGIN.to_string(),
        "# Written by `release`: only the stack's public ports reach Docker's containers."
            .to_string(),
        "*filter".to_string(),
        ":DOCKER-USER - [0:0]".to_string(),
    ];
    b.extend(rules.iter().cloned());
    b.push("COMMIT".to_string());
    b.push(END.to_string());
    b
}

/// What the host has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `iptables-restore` is there.
    pub iptables: bool,
    /// The rules of `DOCKER-USER` (`-A ...` lines); empty when the chain does not exist.
    pub live: Vec<String>,
    /// [`AFTER_RULES`] exists (ufw is installed).
    pub after_rules: bool,
    /// The lines of this task's block in [`AFTER_RULES`], markers included.
    pub persisted: Vec<String>,
}

/// The facts script: `iptables=yes`, `live=RULE` and `persisted=LINE` lines.
pub fn facts_script() -> String {
    format!(
        "command -v iptables-restore >/dev/null 2>&1 || exit 0\n\
         echo iptables=yes\n\
         iptables -S DOCKER-USER 2>/dev/null | grep '^-A ' | sed 's/^/live=/'\n\
         if [ -f {after} ]; then\n\
           echo after_rules=yes\n\
           sed -n '/^{BEGIN}$/,/^{END}$/p' {after} | sed 's/^/persisted=/'\n\
         fi\n\
         true\n",
        after = AFTER_RULES
    )
}

impl Facts {
    pub fn parse(text: &str) -> Facts {
        let mut f = Facts::default();
        for line in text.lines() {
            if line == "iptables=yes" {
                f.iptables = true;
            } else if line == "after_rules=yes" {
                f.after_rules = true;
            } else if let Some(rule) = line.strip_prefix("live=") {
                f.live.push(rule.trim_end().to_string());
            } else if let Some(l) = line.strip_prefix("persisted=") {
                f.persisted.push(l.trim_end().to_string());
            }
        }
        f
    }
}

pub async fn read(host: &dyn Host) -> Result<Facts, TaskError> {
    let out = host.sudo(&facts_script()).await?.check()?;
    Ok(Facts::parse(&out.stdout_str()))
}

/// What to write: the rules, and whether to persist them in [`AFTER_RULES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub rules: Vec<String>,
    pub persist: bool,
}

fn describe(open: &[Open]) -> String {
    if open.is_empty() {
        return "no public port".into();
    }
    open.iter()
        .map(|o| {
            let proto = match o.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            match o.address {
                Some(ip) => format!("{ip}:{}/{proto}", o.port),
                None => format!("{}/{proto}", o.port),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Apply when the live chain or the persisted block differs from the model.
pub fn plan(open: &[Open], facts: &Facts) -> Plan<Fix> {
    if !facts.iptables {
        return Plan::Nothing(
            "no iptables on the host: Docker's published ports are not filtered".into(),
        );
    }
    let rules = rules(open);
    let live_ok = facts.live == rules;
    let persisted_ok = !facts.after_rules || facts.persisted == block(&rules);
    let ports = describe(open);
    if live_ok && persisted_ok {
        let where_ = if facts.after_rules {
            "kept in /etc/ufw/after.rules"
        } else {
            "not persisted: no ufw"
        };
        return Plan::Nothing(format!("DOCKER-USER lets in only {ports} ({where_})"));
    }
    let text = format!("DOCKER-USER: let in only {ports}, drop other new connections");
    Plan::Apply(
        Fix {
            rules,
            persist: facts.after_rules,
        },
        text,
    )
}

/// Replaces the chain at once and writes the block into [`AFTER_RULES`] (replacing its own
/// earlier block; the rest of the file is kept, with its mode).
pub async fn apply(host: &dyn Host, fix: &Fix) -> Result<(), TaskError> {
    let restore = block(&fix.rules)[2..].join("\n");
    let mut script =
        format!("set -e\niptables-restore --noflush <<'TORRUST_RULES'\n{restore}\nTORRUST_RULES\n");
    if fix.persist {
        let text = block(&fix.rules).join("\n");
        script.push_str(&format!(
            "f={after}\n\
             tmp=$(mktemp \"$f.XXXXXX\")\n\
             sed '/^{BEGIN}$/,/^{END}$/d' \"$f\" > \"$tmp\"\n\
             printf '%s\\n' {text} >> \"$tmp\"\n\
             chmod --reference=\"$f\" \"$tmp\"\n\
             mv \"$tmp\" \"$f\"\n",
            after = AFTER_RULES,
            text = shell_quote(&text)
        ));
    }
    let out = host.sudo(&script).await?;
    if !out.success() {
        return Err(TaskError::failed(
            TASK,
            format!(
                "could not write Docker's DOCKER-USER rules ({}): {}",
                out.status,
                super::host::last_lines(&out.stderr_str(), 4)
            ),
            "check that Docker runs on the host (`sudo iptables -S DOCKER-USER`) and that the \
             kernel accepts iptables rules (an LXD container needs `security.nesting=true`); \
             then run release again",
        ));
    }
    Ok(())
}

/// Reads the facts again: the chain and the persisted block must be the model's.
pub async fn verify(host: &dyn Host, open: &[Open]) -> Result<(), TaskError> {
    let facts = read(host).await?;
    if let Plan::Apply(..) = plan(open, &facts) {
        return Err(TaskError::NotVerified {
            task: TASK.into(),
            found: format!(
                "DOCKER-USER holds {:?}{}",
                facts.live,
                if facts.after_rules {
                    format!(" and /etc/ufw/after.rules {:?}", facts.persisted)
                } else {
                    String::new()
                }
            ),
            fix: "look at `sudo iptables -S DOCKER-USER` on the host: another tool may rewrite \
                  the chain; then run release again"
                .into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    fn open() -> Vec<Open> {
        vec![
            Open {
                protocol: Protocol::Udp,
                port: 6969,
                address: None,
            },
            Open {
                protocol: Protocol::Tcp,
                port: 7070,
                address: Some("192.0.2.5".parse().unwrap()),
            },
        ]
    }

    #[test]
    fn the_rules_allow_replies_the_containers_and_each_public_port_then_drop() {
        assert_eq!(
            rules(&open()),
            [
                "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
                "-A DOCKER-USER -i docker0 -j RETURN",
                "-A DOCKER-USER -i br-+ -j RETURN",
                "-A DOCKER-USER -p udp -m conntrack --ctorigdstport 6969 -j RETURN",
                "-A DOCKER-USER -p tcp -m conntrack --ctorigdst 192.0.2.5 --ctorigdstport 7070 -j RETURN",
                "-A DOCKER-USER -m conntrack --ctstate NEW -j DROP",
                "-A DOCKER-USER -j RETURN",
            ]
        );
    }

    #[test]
    fn loopback_ports_get_no_rule_and_each_port_comes_once() {
        let config = crate::config::minimal_test_file("fw", "Firewall-Token-0123456789");
        let mut v = config;
        v["tracker"]["http_api"]["bind_address"] = serde_json::json!("127.0.0.1:1212");
        let c = crate::config::parse(&v.to_string(), std::path::Path::new("/"))
            .unwrap()
            .config;
        let rendered = crate::stack::render(&c).unwrap();
        let ports: Vec<(Protocol, u16)> = open_ports(&rendered)
            .iter()
            .map(|o| (o.protocol, o.port))
            .collect();
        assert_eq!(ports, [(Protocol::Udp, 6969), (Protocol::Tcp, 7070)]);
    }

    #[test]
    fn plan_is_nothing_only_when_the_chain_and_the_block_are_the_model() {
        let open = open();
        let rules = rules(&open);
        let good = Facts {
            iptables: true,
            live: rules.clone(),
            after_rules: true,
            persisted: block(&rules),
        };
        assert!(!plan(&open, &good).is_apply(), "{:?}", plan(&open, &good));
        // Docker's fresh chain: only its RETURN.
        let fresh = Facts {
            live: vec!["-A DOCKER-USER -j RETURN".into()],
            persisted: Vec::new(),
            ..good.clone()
        };
        assert_eq!(
            plan(&open, &fresh),
            Plan::Apply(
                Fix {
                    rules: rules.clone(),
                    persist: true
                },
                "DOCKER-USER: let in only 6969/udp, 192.0.2.5:7070/tcp, drop other new \
                 connections"
                    .into()
            )
        );
        // Live rules right, the block lost (after.rules rewritten by a ufw upgrade).
        let lost = Facts {
            persisted: Vec::new(),
            ..good.clone()
        };
        assert!(plan(&open, &lost).is_apply());
        // No ufw: live rules only.
        let no_ufw = Facts {
            after_rules: false,
            persisted: Vec::new(),
            ..good.clone()
        };
        assert!(plan(&open, &no_ufw).text().contains("not persisted"));
        assert!(!plan(&open, &Facts::default()).is_apply());
    }

    #[test]
    fn facts_parse_the_script_output() {
        let text = "iptables=yes\nlive=-A DOCKER-USER -j RETURN\nafter_rules=yes\n\
                    persisted=# BEGIN torrust-tracker-deployer DOCKER-USER\npersisted=COMMIT\n";
        let f = Facts::parse(text);
        assert!(f.iptables && f.after_rules);
        assert_eq!(f.live, ["-A DOCKER-USER -j RETURN"]);
        assert_eq!(f.persisted.len(), 2);
    }

    #[tokio::test]
    async fn apply_restores_the_chain_at_once_and_persists_the_block() {
        let host = FakeHost::new();
        host.reply("iptables-restore --noflush", [Reply::ok("")]);
        let rules = rules(&open());
        apply(
            &host,
            &Fix {
                rules: rules.clone(),
                persist: true,
            },
        )
        .await
        .unwrap();
        let calls = host.calls();
        let Call::Sudo(script) = &calls[0] else {
            panic!("{calls:?}")
        };
        assert!(
            script.contains("*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -m conntrack"),
            "{script}"
        );
        assert!(script.contains("sed '/^# BEGIN torrust-tracker-deployer DOCKER-USER$/,"));
        assert!(script.contains("/etc/ufw/after.rules"));
        // The facts script finds the same block the apply writes.
        let facts_script = facts_script();
        assert!(facts_script.contains(BEGIN) && facts_script.contains(END));

        let failing = FakeHost::new();
        failing.reply("iptables-restore", [Reply::fail(1, "iptables: No chain")]);
        let e = apply(
            &failing,
            &Fix {
                rules,
                persist: false,
            },
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("DOCKER-USER"), "{e}");
    }
}
