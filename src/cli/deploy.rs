//! `deploy ENV [--env-file F] [--dry-run]`: create the environment if needed, then provision,
//! configure, release and run, resuming wherever it stands; or show every phase's plan.
//! `deploy A B C [--env-file FA --env-file FB ...] [--jobs N]`: several at once ([`several`]).

use std::path::PathBuf;
use std::time::Duration;

use super::several::{self, Done, Jobs};
use super::{CliError, GlobalArgs, Output, block_on, env_name, plan};
use crate::ops::deploy::{self, DeployOptions, Deployed};
use crate::ops::provision::ProvisionOptions;
use crate::ops::run::RunOptions;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name; several are deployed at once (`--jobs`), each under its own
    /// lock, with a summary at the end.
    #[arg(value_name = "ENV", required = true)]
    pub envs: Vec<String>,
    /// The environment file: creates the environment, or applies a changed tracker stack or
    /// `host` section to an existing one. With several environments: once per environment, in
    /// the same order, or not at all.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Seconds to wait for every service to be healthy.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub run_timeout: u64,
    /// Show every phase's plan (files with a diff, secrets masked; images; services) and
    /// change nothing: no instance, no state, no file on the host.
    #[arg(long)]
    pub dry_run: bool,
    /// Adopt an existing instance or profile of this environment's name that carries another
    /// environment's id (or none, and the state does not record it), and mark it as this one's.
    #[arg(long)]
    pub adopt_foreign: bool,
    /// Leave a monitoring check out of the final `test` (repeatable): `prometheus-targets` or
    /// `grafana-api`.
    #[arg(long, value_name = "CHECK", value_enum)]
    pub skip: Vec<super::test::Skip>,
    #[command(flatten)]
    pub jobs: Jobs,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    if !args.env_file.is_empty() && args.env_file.len() != args.envs.len() {
        return Err(CliError::Usage(format!(
            "{} environments and {} --env-file: give one file per environment, in the same \
             order, or none",
            args.envs.len(),
            args.env_file.len()
        )));
    }
    if let [env] = args.envs.as_slice() {
        return run_one(args, env, args.env_file.first(), global, out);
    }
    several::run(
        "deploy",
        &args.envs,
        args.jobs.jobs,
        out,
        |env| async move {
            let i = args.envs.iter().position(|e| e == env);
            let file = i.and_then(|i| args.env_file.get(i));
            let d = deploy::deploy(
                &global.data(),
                env,
                &options(args, file),
                global.lock_wait(),
            )
            .await?;
            let text = if d.dry_run {
                dry_run_text(&d)
            } else {
                text(&d)
            };
            Ok(Done {
                value: d,
                text,
                failure: None,
            })
        },
    )
}

fn run_one(
    args: &Args,
    env: &str,
    env_file: Option<&PathBuf>,
    global: &GlobalArgs,
    out: &Output,
) -> Result<(), CliError> {
    let env = env_name(env)?;
    let options = options(args, env_file);
    let d = block_on(deploy::deploy(
        &global.data(),
        env,
        &options,
        global.lock_wait(),
    ))?;
    out.result(&d, || {
        if d.dry_run {
            dry_run_text(&d)
        } else {
            text(&d)
        }
    })?;
    Ok(())
}

fn options(args: &Args, env_file: Option<&PathBuf>) -> DeployOptions {
    DeployOptions {
        env_file: env_file.cloned(),
        // deploy connects right after provision and checks the pinned key then.
        provision: ProvisionOptions {
            trust_recorded_host: true,
            adopt_foreign: args.adopt_foreign,
            ..ProvisionOptions::default()
        },
        ready_timeout: Duration::from_secs(600),
        run: RunOptions {
            timeout: Duration::from_secs(args.run_timeout),
            dry_run: false,
        },
        dry_run: args.dry_run,
        test_skip: args.skip.iter().copied().map(Into::into).collect(),
    }
}

fn text(d: &Deployed) -> String {
    let mut t = if d.changed {
        format!("Environment '{}' deployed.\n", d.name)
    } else {
        format!(
            "Environment '{}' was already deployed; nothing changed.\n",
            d.name
        )
    };
    for p in &d.phases {
        t.push_str(&format!(
            "  {} {:<12} {:>6.1} s  {}\n",
            if p.changed { "changed  " } else { "unchanged" },
            p.phase,
            p.elapsed_ms as f64 / 1000.0,
            p.detail
        ));
    }
    if !d.announce_urls.is_empty() {
        t.push_str("\n  announce URLs:\n");
        for u in &d.announce_urls {
            t.push_str(&format!("    {u}\n"));
        }
    }
    if !d.test.is_empty() {
        t.push_str("\n  test (from this machine):\n");
        for line in &d.test {
            t.push_str(&format!("    {line}\n"));
        }
    }
    t.push_str(&format!(
        "  took:      {:.1} s\n",
        d.elapsed_ms as f64 / 1000.0
    ));
    t
}

fn dry_run_text(d: &Deployed) -> String {
    let mut t = if d.changed {
        format!("Environment '{}': deploy would change:\n", d.name)
    } else {
        format!(
            "Environment '{}' is deployed: nothing would change.\n",
            d.name
        )
    };
    for p in &d.phases {
        t.push_str(&format!(
            "  {} {:<12} {}\n",
            if p.changed {
                "would change"
            } else {
                "unchanged   "
            },
            p.phase,
            p.detail
        ));
    }
    if let Some(r) = d.release.as_ref().filter(|r| r.changed) {
        t.push_str("\n  release:\n");
        t.push_str(&plan::release(r));
    }
    if let Some(r) = d.run.as_ref().filter(|r| r.changed) {
        t.push_str("\n  run:\n");
        t.push_str(&plan::steps(&r.steps));
    }
    t.push_str("  (dry run: nothing was changed)\n");
    t
}
