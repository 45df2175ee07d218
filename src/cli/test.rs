//! `test ENV [--timeout SECONDS] [--ca-cert PEM | --insecure] [--use-dns] [--skip CHECK]`: check
//! from here that the deployed tracker answers and that monitoring collects. Exit 1 if any check
//! fails.

use std::path::PathBuf;
use std::time::Duration;

use super::several::{self, Done, Jobs};
use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::monitoring::MonitoringCheck;
use crate::ops::test::{self, TestOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name; several are tested at once (`--jobs`), with a summary.
    #[arg(value_name = "ENV", required = true)]
    pub envs: Vec<String>,
    /// Seconds each request may take: an HTTP request, or a UDP request with its
    /// retransmissions.
    #[arg(long, value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
    /// Also trust the root certificate(s) of this PEM file. (For `.local` domains, the root of
    /// Caddy's internal CA is read from the host over SSH unless this or --insecure is given.)
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    pub ca_cert: Option<PathBuf>,
    /// INSECURE: accept any TLS certificate (the output says so).
    #[arg(long)]
    pub insecure: bool,
    /// Resolve the domains through DNS instead of answering them with the host's IP.
    #[arg(long)]
    pub use_dns: bool,
    /// Leave a monitoring check out (repeatable): `prometheus-targets` (every Prometheus target
    /// up) or `grafana-api` (Grafana's data source and dashboard provisioned).
    #[arg(long, value_name = "CHECK", value_enum)]
    pub skip: Vec<Skip>,
    #[command(flatten)]
    pub jobs: Jobs,
}

/// The checks `--skip` can leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Skip {
    PrometheusTargets,
    GrafanaApi,
}

impl From<Skip> for MonitoringCheck {
    fn from(s: Skip) -> Self {
        match s {
            Skip::PrometheusTargets => MonitoringCheck::PrometheusTargets,
            Skip::GrafanaApi => MonitoringCheck::GrafanaApi,
        }
    }
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let options = TestOptions {
        timeout: Duration::from_secs(args.timeout),
        ca_cert: args.ca_cert.clone(),
        insecure: args.insecure,
        use_dns: args.use_dns,
        skip: args.skip.iter().copied().map(Into::into).collect(),
    };
    let [env] = args.envs.as_slice() else {
        return several::run("test", &args.envs, args.jobs.jobs, out, |env| {
            let options = &options;
            async move {
                let t = test::test(&global.data(), env, options, global.lock_wait()).await?;
                Ok(Done {
                    text: text(&t),
                    failure: t.failure().map(Into::into),
                    value: t,
                })
            }
        });
    };
    let env = env_name(env)?;
    let t = block_on(test::test(
        &global.data(),
        env,
        &options,
        global.lock_wait(),
    ))?;
    match t.failure() {
        Some(e) => {
            out.failed_report(&t, || text(&t))?;
            Err(e.into())
        }
        None => {
            out.result(&t, || text(&t))?;
            Ok(())
        }
    }
}

fn text(t: &test::Tested) -> String {
    let mut text = format!("Testing environment '{}' at {}:\n", t.name, t.host);
    for r in &t.report.results {
        text.push_str(&format!("{r}\n"));
    }
    for note in &t.notes {
        text.push_str(&format!("  note: {note}\n"));
    }
    let took = t.elapsed_ms as f64 / 1000.0;
    if t.ok {
        text.push_str(&format!(
            "All {} checks passed in {took:.1} s: the tracker of '{}' works.\n",
            t.passed, t.name
        ));
    } else {
        text.push_str(&format!(
            "{} of {} checks FAILED ({took:.1} s).\n",
            t.failed,
            t.report.results.len()
        ));
    }
    text
}
