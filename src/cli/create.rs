//! `create environment | template | schema`.

use std::path::PathBuf;

use serde::Serialize;

use super::{CliError, GlobalArgs, Output};
use crate::config::{self, ProviderKind};
use crate::ops::environment;
use crate::state::fsutil;

#[derive(Debug, clap::Subcommand)]
pub enum CreateCommand {
    /// Validate an environment file and persist the environment in state `created`.
    Environment(EnvironmentArgs),
    /// Write a complete environment file with safe defaults and fresh random secrets.
    Template(TemplateArgs),
    /// Write the environment file's JSON Schema (draft 2020-12), for editors.
    Schema(SchemaArgs),
}

#[derive(Debug, clap::Args)]
pub struct EnvironmentArgs {
    /// The environment file (JSON).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub env_file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct TemplateArgs {
    /// Where to write the template; stdout when omitted.
    pub path: Option<PathBuf>,
    /// Which provider the environment uses.
    #[arg(long, value_enum, default_value_t = ProviderArg::Lxd)]
    pub provider: ProviderArg,
    /// Write every section: also Grafana, HTTPS (the HTTP tracker and Grafana behind the TLS
    /// proxy), backups, the images, the announce policy. Its domains and e-mail are
    /// placeholders to replace.
    #[arg(long)]
    pub full: bool,
    /// Overwrite PATH if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Where to write the schema; stdout when omitted.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProviderArg {
    Lxd,
    Hetzner,
}

#[derive(Serialize)]
struct Written<'a> {
    written: &'a PathBuf,
    what: &'a str,
    /// The JSON paths of the placeholders left to replace (templates only).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    placeholders: &'a [&'a str],
}

pub fn run(cmd: &CreateCommand, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    match cmd {
        CreateCommand::Environment(args) => {
            let data = global.data();
            let created =
                environment::create_environment(&data, &args.env_file, global.lock_wait())?;
            out.result(&created, || {
                let mut text = match created.outcome {
                    "created" => format!("Environment '{}' created.", created.name),
                    "updated" => format!(
                        "Environment '{}' updated with the new file (nothing was deployed yet).",
                        created.name
                    ),
                    _ => format!(
                        "Environment '{}' already exists with this configuration; nothing changed.",
                        created.name
                    ),
                };
                text.push_str(&format!(
                    "\n  state:     {} ({})",
                    created.lifecycle,
                    created.state_file.display()
                ));
                if let Some(key) = &created.generated_ssh_key {
                    text.push_str(&format!(
                        "\n  SSH key:   {} ({})",
                        key.private_key_path.display(),
                        key.fingerprint
                    ));
                }
                text.push_str(&format!(
                    "\n  next:      torrust-tracker-deployer show {}",
                    created.name
                ));
                text
            })?;
        }
        CreateCommand::Template(args) => {
            let kind = match args.provider {
                ProviderArg::Lxd => ProviderKind::Lxd,
                ProviderArg::Hetzner => ProviderKind::Hetzner,
            };
            let text = if args.full {
                config::full_template(kind)
            } else {
                config::template(kind)
            };
            let placeholders = config::template_placeholders(kind, args.full);
            write_or_print(
                args.path.as_ref(),
                &text,
                args.force,
                0o600,
                "template",
                &placeholders,
                out,
            )?;
        }
        CreateCommand::Schema(args) => {
            let text = serde_json::to_string_pretty(&config::schema()).expect("schema serializes");
            write_or_print(args.path.as_ref(), &text, true, 0o644, "schema", &[], out)?;
        }
    }
    Ok(())
}

/// What to say about the placeholders left in a template, if any.
fn placeholders_note(placeholders: &[&str]) -> Option<String> {
    (!placeholders.is_empty()).then(|| {
        format!(
            "Replace the REPLACE_WITH_... placeholders before you use it: {}. `validate` names \
             each one left.",
            placeholders.join(", ")
        )
    })
}

/// Writes `text` to `path`, or prints it when there is no path. Templates hold fresh secrets,
/// hence their mode 0600. The placeholders left to fill are named (on stderr when the text goes
/// to stdout).
fn write_or_print(
    path: Option<&PathBuf>,
    text: &str,
    force: bool,
    mode: u32,
    what: &str,
    placeholders: &[&str],
    out: &Output,
) -> Result<(), CliError> {
    let Some(path) = path else {
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
        if let Some(note) = placeholders_note(placeholders) {
            eprintln!("{note}");
        }
        return Ok(());
    };
    if path.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} already exists; pass --force to overwrite it, or choose another path",
            path.display()
        )));
    }
    let mut contents = text.to_string();
    if !contents.ends_with('\n') {
        contents.push('\n');
    }
    fsutil::write_atomic(path, contents.as_bytes(), mode).map_err(|e| {
        CliError::Ops(crate::ops::OpsError::Io {
            context: format!("cannot write {}", path.display()),
            source: e,
        })
    })?;
    out.result(
        &Written {
            written: path,
            what,
            placeholders,
        },
        || {
            let mut text = format!("Wrote the {what} to {}", path.display());
            if let Some(note) = placeholders_note(placeholders) {
                text.push('\n');
                text.push_str(&note);
            }
            text
        },
    )?;
    Ok(())
}
