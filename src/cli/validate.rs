//! `validate --env-file F`: every check `create environment` makes; writes nothing.

use std::path::PathBuf;

use super::{CliError, Output};
use crate::ops::environment;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment file (JSON).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub env_file: PathBuf,
}

pub fn run(args: &Args, out: &Output) -> Result<(), CliError> {
    let v = environment::validate(&args.env_file)?;
    out.result(&v, || {
        let mut text = format!(
            "{} is valid: environment '{}' on {}.",
            v.file.display(),
            v.name,
            v.provider
        );
        for w in &v.warnings {
            text.push_str(&format!("\n  warning: {w}"));
        }
        text
    })?;
    Ok(())
}
