//! `history` and `rollback` through the real binary, where no LXD is needed: an environment
//! without a host, and one registered on a real OpenSSH server (tests/support/sshd.rs) whose
//! host history is read over SSH. Putting releases back is tested end to end on LXD
//! (tests/lxd_history.rs) and in the unit tests of `ops::rollback`.

use crate::common;
use crate::support::sshd;

use common::{Sandbox, minimal};
use serde_json::json;
use sshd::{Sshd, require_test_user};

#[test]
fn without_a_host_history_is_this_machines_and_rollback_is_refused() {
    let sb = Sandbox::new();
    let file = sb.env_file("hist.json", &minimal("hist"));
    sb.run(&["create", "environment", "--env-file", &file]).ok();

    let doc = sb.run(&["-o", "json", "history", "hist"]).ok().json();
    assert_eq!(doc["releases"], json!([]), "{doc:#}");
    assert_eq!(doc["host"], json!({ "status": "no_host" }));
    let text = sb.run(&["history", "hist"]).ok();
    assert!(
        text.stdout
            .contains("0 release(s) (this machine's history)")
            && text.stdout.contains("No release recorded yet"),
        "{}",
        text.stdout
    );
    let local = sb
        .run(&["-o", "json", "history", "hist", "--local"])
        .ok()
        .json();
    assert_eq!(local["host"], json!({ "status": "not_asked" }));

    let refused = sb.run(&["-o", "json", "rollback", "hist"]).code(2);
    assert_eq!(refused.json()["error"]["kind"], "refused");
    assert!(refused.stdout.contains("has no host"), "{}", refused.stdout);
    let missing = sb.run(&["history", "nope"]).code(2);
    assert!(missing.stderr.contains("does not exist"), "{missing:?}");
}

#[test]
fn on_a_registered_host_history_reads_the_hosts_log() {
    require_test_user();
    let sb = Sandbox::new();
    let sshd = Sshd::start();
    sb.register_on_sshd(&sshd, "hist-ssh", minimal("hist-ssh"));

    // This machine stands for the host: it has no release log, so none is listed.
    let doc = sb.run(&["-o", "json", "history", "hist-ssh"]).ok().json();
    assert_eq!(
        doc["host"],
        json!({ "status": "read", "records": 0 }),
        "{doc:#}"
    );
    assert_eq!(doc["releases"], json!([]));

    // Registered but not even configured: nothing to put back.
    let refused = sb.run(&["rollback", "hist-ssh"]).code(2);
    assert!(
        refused.stderr.contains("is not configured yet"),
        "{refused:?}"
    );
}
