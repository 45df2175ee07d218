//! `docs`: the command-line structure as JSON, generated from the clap definitions.

use clap::CommandFactory;
use serde_json::{Value, json};

use super::{Cli, CliError, Output};

pub fn run(_out: &Output) -> Result<(), CliError> {
    let doc = describe(&Cli::command());
    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    Ok(())
}

fn describe(cmd: &clap::Command) -> Value {
    let args: Vec<Value> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version")
        .map(|a| {
            let values: Vec<String> = a
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            json!({
                "name": a.get_id().as_str(),
                "long": a.get_long(),
                "short": a.get_short().map(|c| c.to_string()),
                "positional": a.is_positional(),
                "required": a.is_required_set(),
                "global": a.is_global_set(),
                "help": a.get_help().map(|h| h.to_string()),
                "default": a.get_default_values().iter().map(|v| v.to_string_lossy().to_string()).collect::<Vec<_>>(),
                "possible_values": values,
            })
        })
        .collect();
    let subcommands: Vec<Value> = cmd
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
        .map(describe)
        .collect();
    json!({
        "name": cmd.get_name(),
        "about": cmd.get_about().map(|a| a.to_string()),
        "arguments": args,
        "subcommands": subcommands,
    })
}
