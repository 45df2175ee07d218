//! configure against a real LXD container: Docker runs a container afterwards, a second run
//! changes nothing, and `--dry-run` on a fresh container changes nothing on it.
//!
//! Needs LXD, the test images and the Debian mirror (apt inside the container); see
//! tests/lxd_provision.rs.

use crate::common;

use common::Sandbox;
use common::lxd::*;

/// What configure could change on a host, read through LXD (not through configure's own code).
fn host_fingerprint(instance: &str) -> String {
    let (code, out) = exec_out(
        instance,
        "dpkg-query -W -f='${Package} ${Status}\\n' | sort | md5sum; \
         ls -la --time-style=full-iso /etc/apt/apt.conf.d | md5sum; \
         id -nG torrust; \
         (command -v ufw && ufw status) || echo no-ufw",
    );
    assert_eq!(code, 0, "{out}");
    out
}

#[test]
#[ignore = "needs LXD: provisioning/test.sh prepares it and runs it"]
fn configure_installs_docker_then_changes_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let name = &unique("lxd-configure");
    env(&sb, name, IMAGE);
    let _cleanup = Cleanup(&sb, name);
    let instance = provision(&sb, name).ok().json()["instance"]
        .as_str()
        .unwrap()
        .to_string();

    // --dry-run on a fresh container: says what it would do, changes nothing.
    let before = host_fingerprint(&instance);
    let dry = sb
        .run(&["-o", "json", "configure", name, "--dry-run"])
        .ok()
        .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["changed"], true, "{dry:#}");
    let packages = dry["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "packages")
        .unwrap();
    assert_eq!(packages["status"], "would_change");
    assert!(
        packages["detail"]
            .as_str()
            .unwrap()
            .contains("docker-compose"),
        "{packages}"
    );
    assert_eq!(
        host_fingerprint(&instance),
        before,
        "--dry-run changed the host"
    );
    assert_eq!(state(&sb, name)["lifecycle"], "provisioned");

    // configure: Docker and Compose from Debian's packages, recorded in the state.
    let run = sb.run(&["configure", name]).ok();
    assert!(run.stdout.contains("configured (Debian 12)"), "{run:?}");
    let st = state(&sb, name);
    assert_eq!(st["lifecycle"], "configured");
    assert_eq!(st["host_setup"]["compose_command"], "docker-compose");
    assert_eq!(st["host_setup"]["os"], "debian-12");

    // Docker runs a container, as the SSH user (docker group), from an image made on the host
    // (no registry here): /bin/true and what it links against.
    let out = ssh(
        &sb,
        name,
        "set -e; cd /tmp; \
         tar -ch -C / bin/true bin/echo lib64/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/libc.so.6 \
           2>/dev/null | sg docker -c 'docker import - torrust-test/true:1' >/dev/null; \
         sg docker -c 'docker run --rm torrust-test/true:1 /bin/echo hello-from-docker'",
    );
    assert_eq!(out.trim(), "hello-from-docker");
    let (code, compose) = exec_out(&instance, "docker-compose version --short");
    assert_eq!(code, 0);
    assert!(compose.starts_with("1."), "{compose}");

    // A second run changes nothing, and says so.
    let again = sb.run(&["-o", "json", "configure", name]).ok().json();
    assert_eq!(again["changed"], false, "{again:#}");
    for task in again["tasks"].as_array().unwrap() {
        assert_eq!(task["status"], "unchanged", "{task}");
    }
    let text = sb.run(&["configure", name]).ok();
    assert!(text.stdout.contains("nothing changed"), "{text:?}");

    // An interrupted dpkg (what a kill -9 leaves: a journal entry in /var/lib/dpkg/updates, here
    // ufw's record, half-configured) stops apt; configure finishes dpkg's work first.
    exec_in(
        &instance,
        "awk -v RS= -v ORS='\\n\\n' '/^Package: ufw\\n/' /var/lib/dpkg/status \
           | sed 's/^Status: install ok installed$/Status: install ok half-configured/' \
           > /var/lib/dpkg/updates/0000",
    );
    let (code, apt) = exec_out(&instance, "apt-get install -y ufw 2>&1");
    assert_ne!(code, 0, "apt still runs: {apt}");
    assert!(apt.contains("dpkg --configure -a"), "{apt}");
    let repaired = sb.run(&["-o", "json", "configure", name]).ok().json();
    let repair = repaired["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "repair dpkg")
        .unwrap_or_else(|| panic!("no repair task: {repaired:#}"));
    assert_eq!(repair["status"], "changed", "{repair}");
    let (code, audit) = exec_out(
        &instance,
        "ls -A /var/lib/dpkg/updates; dpkg --audit; apt-get install -y ufw >/dev/null",
    );
    assert_eq!((code, audit.trim()), (0, ""), "{audit}");
}

#[test]
fn configure_refuses_an_environment_without_a_host() {
    let sb = Sandbox::new();
    let name = "no-host";
    env(&sb, name, IMAGE);
    let run = sb.run(&["configure", name]).code(2);
    assert!(run.stderr.contains("has no host yet"), "{run:?}");
    assert!(run.stderr.contains(&format!("provision {name}")), "{run:?}");
}
