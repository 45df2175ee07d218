//! `logs`: the services' logs, streamed from the host over SSH until Compose ends or the
//! caller stops it (Ctrl-C): the [`logs`](crate::tasks::logs) task. Nothing is recorded, and
//! the environment's lock is held only while the state is read, so a long `--follow` never
//! blocks another command.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::host::{connect, released_host};
use super::services::known_services;
use crate::host::StopSignal;
use crate::state::DataDir;
use crate::tasks::logs::{self, LineSink, LogsRequest};

/// How the stream ended.
#[derive(Debug, Serialize)]
pub struct LogsDone {
    pub name: String,
    pub host: String,
    /// Ended by the caller (Ctrl-C) rather than by Compose.
    pub stopped: bool,
    /// Log lines shown.
    pub lines: u64,
    pub elapsed_ms: u64,
}

pub async fn logs(
    data: &DataDir,
    env: &str,
    request: &LogsRequest,
    sink: LineSink,
    stop: StopSignal,
    lock_wait: Duration,
) -> Result<LogsDone, OpsError> {
    let started = Instant::now();
    let state = {
        let _lock = data.lock(env, "logs", lock_wait)?;
        data.load(env)?
    };
    let (_, known) = known_services(&state, &request.services)?;
    let (record, setup) = released_host(&state, "logs")?;
    let session = connect(data, &state, &record)
        .await
        .map_err(OpsError::typed)?;
    let result = logs::stream(
        &session,
        &setup.compose_command,
        request,
        &known,
        sink,
        stop,
    )
    .await;
    session.close().await;
    let end = result.map_err(OpsError::typed)?;
    Ok(LogsDone {
        name: state.name.clone(),
        host: record.ip,
        stopped: end.stopped,
        lines: end.lines,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
