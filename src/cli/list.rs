//! `list`: every environment with its state.

use super::{CliError, GlobalArgs, Output};
use crate::ops::environment;

pub fn run(global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let data = global.data();
    let rows = environment::list(&data)?;
    out.result(&rows, || {
        if rows.is_empty() {
            return format!(
                "No environments in {}.\n  Create one with `torrust-tracker-deployer create environment --env-file FILE`",
                data.root().display()
            );
        }
        let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        let mut t = format!("{:<width$}  {:<11}  PROVIDER\n", "NAME", "STATE");
        for r in &rows {
            match &r.error {
                None => t.push_str(&format!(
                    "{:<width$}  {:<11}  {}\n",
                    r.name,
                    r.lifecycle.map(|l| l.as_str()).unwrap_or("-"),
                    r.provider.unwrap_or("-")
                )),
                Some(e) => t.push_str(&format!(
                    "{:<width$}  {:<11}  -\n    {}\n",
                    r.name,
                    "unreadable",
                    e.replace('\n', "\n    ")
                )),
            }
        }
        t
    })?;
    Ok(())
}
