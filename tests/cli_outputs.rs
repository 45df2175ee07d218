//! Whole outputs of the commands whose output is stable, compared exactly (after the sandbox's
//! placeholders for paths and times): what a person or a script sees, not only fragments of it.

use crate::common::{Sandbox, minimal};

const NEXT_CREATE: &str = "  List environments with `torrust-tracker-deployer list`, or create it with \
`torrust-tracker-deployer create environment --env-file FILE`";

#[test]
fn list_and_exists_of_an_empty_data_directory() {
    let sb = Sandbox::new();
    sb.cmd(&["list"])
        .stdout(
            "No environments in [TMP]/data.\n  \
             Create one with `torrust-tracker-deployer create environment --env-file FILE`\n",
        )
        .stderr("")
        .run();
    sb.cmd(&["exists", "alpha"])
        .stdout("false\n")
        .stderr("")
        .run();
    sb.cmd(&["-o", "json", "list"]).stdout("[]\n").run();
}

#[test]
fn an_unknown_environment_in_text_and_json() {
    let sb = Sandbox::new();
    sb.cmd(&["show", "nope"])
        .status(2)
        .stdout("")
        .stderr(&format!(
            "error: environment 'nope' does not exist.\n{NEXT_CREATE}\n"
        ))
        .run();
    let message = format!("environment 'nope' does not exist.\n{NEXT_CREATE}");
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "error": { "kind": "not_found", "message": message, "problems": [] }
    }))
    .unwrap();
    sb.cmd(&["-o", "json", "show", "nope"])
        .status(2)
        .stdout(&format!("{json}\n"))
        .run();
}

#[test]
fn validate_lists_every_missing_section_with_its_fix() {
    let sb = Sandbox::new();
    let file = sb.env_file(
        "x.json",
        &serde_json::json!({ "environment": { "name": "x" } }),
    );
    sb.cmd(&["validate", "--env-file", &file])
        .status(2)
        .stdout("")
        .stderr(
            "error: 3 problem(s) in the environment file\n\
             \x20 provider: required field `provider` is missing\n\
             \x20     fix: add `provider`: Where the instance runs (`lxd` or `hetzner`).\n\
             \x20 ssh_credentials: required field `ssh_credentials` is missing\n\
             \x20     fix: add `ssh_credentials`: How the deployer reaches the instance over SSH.\n\
             \x20 tracker: required field `tracker` is missing\n\
             \x20     fix: add `tracker`: The tracker's configuration.\n",
        )
        .run();
}

#[test]
fn template_then_validate_then_create_then_list() {
    let sb = Sandbox::new();
    sb.cmd(&["create", "template", "t.json", "--provider", "lxd"])
        .stdout("Wrote the template to t.json\n")
        .run();
    sb.cmd(&["validate", "--env-file", "t.json"])
        .stdout("t.json is valid: environment 'my-tracker' on lxd.\n")
        .run();
    let file = sb.env_file("alpha.json", &minimal("alpha"));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    sb.cmd(&["list"])
        .stdout("NAME   STATE        PROVIDER\nalpha  created      lxd\n")
        .stderr("")
        .run();
    sb.cmd(&["exists", "alpha"]).stdout("true\n").run();
}
