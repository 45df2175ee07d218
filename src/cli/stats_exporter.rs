//! `stats-exporter [--listen ADDR] [--api URL] [--token-file FILE] [--healthcheck]`: serve the
//! tracker API's JSON statistics in the Prometheus text format (the stack runs it as the
//! `stats-exporter` service; see [`crate::exporter`]). The token comes from `--token-file` or
//! the `TORRUST_STATS_EXPORTER_TOKEN` environment variable, never from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::CliError;
use crate::exporter::{self, ExporterConfig};
use crate::ops::OpsError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to answer `GET /metrics` and `GET /healthz`.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9101")]
    pub listen: SocketAddr,
    /// The tracker API's base URL.
    #[arg(long, value_name = "URL", default_value = "http://tracker:1212")]
    pub api: String,
    /// A file holding the API's admin token (else the environment variable
    /// TORRUST_STATS_EXPORTER_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Check that an exporter answers on --listen's port here, and exit 0 (healthy) or 1.
    #[arg(long)]
    pub healthcheck: bool,
}

fn failed(e: exporter::ExporterError) -> CliError {
    CliError::Ops(OpsError::typed(e))
}

pub fn run(args: &Args) -> Result<(), CliError> {
    if args.healthcheck {
        return super::block_on(exporter::healthcheck(args.listen)).map_err(failed);
    }
    let config = ExporterConfig {
        listen: args.listen,
        api: exporter::api_url(&args.api).map_err(failed)?,
        token: exporter::read_token(args.token_file.as_deref()).map_err(failed)?,
    };
    super::block_on(async move {
        let listener = exporter::bind(&config).await?;
        exporter::serve(listener, config).await;
        Ok::<_, exporter::ExporterError>(())
    })
    .map_err(failed)
}
