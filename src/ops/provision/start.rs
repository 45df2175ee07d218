//! Step "start instance" of provision, with its retries.
//!
//! LXD's start hooks call back into the daemon; on a loaded host they can time out
//! (`forkstart ... exit status 1`). A start is safe to repeat, so it is tried again; an instance
//! that has never started is made again before the next try (with LXD 5.0.2, once an instance's
//! first start fails, its later starts fail the same way).

use std::time::Duration;

use super::{ProvisionError, Wanted};
use crate::lxd::{InstanceStatus, LxdClient, LxdError, LxdTransport, StateAction};
use crate::ops::lxd_host::{self, WHILE_BUSY};
use crate::retry::Schedule;

/// How many times provision tries to start an instance. LXD 5.0.2 failed first starts in bursts
/// (its start hook timing out) while a client held a silent connection to its socket (ADR 12);
/// the retries stay for a daemon that is slow for other reasons. The failures come in bursts (a
/// busy host), so tries are 10 s apart.
const START_ATTEMPTS: u32 = 5;
const START: Schedule = Schedule::attempts(START_ATTEMPTS, Duration::from_secs(10));

/// Why one start attempt did not leave the instance running.
enum StartFailure {
    /// LXD's start operation failed, and another attempt may follow.
    Again(LxdError),
    /// Nothing more to try.
    Fatal(ProvisionError),
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartFailure::Again(e) => e.fmt(f),
            StartFailure::Fatal(e) => e.fmt(f),
        }
    }
}

impl From<LxdError> for StartFailure {
    fn from(e: LxdError) -> Self {
        StartFailure::Fatal(e.into())
    }
}

/// Step "start instance": starts it unless it runs. LXD's start hooks call back into the
/// daemon; on a loaded host they can time out (`forkstart ... exit status 1`). The start is safe
/// to repeat, so it is tried [`START`] times. Returns whether it started the instance.
pub(super) async fn start_instance(
    client: &LxdClient<LxdTransport>,
    w: &Wanted<'_>,
) -> Result<bool, ProvisionError> {
    let instance = &w.instance;
    if client.instance_state(instance).await?.status == InstanceStatus::Running {
        return Ok(false);
    }
    let outcome = START
        .retry(
            async |attempt| start_attempt(client, w, attempt).await,
            |e| matches!(e, StartFailure::Again(_)),
        )
        .await;
    match outcome {
        Ok(()) => Ok(true),
        Err(StartFailure::Fatal(e)) => Err(e),
        Err(StartFailure::Again(e)) => {
            // Say why, from LXD's own log of the instance.
            let log = client
                .instance_log_tail(instance, "lxc.log", 15)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            Err(ProvisionError::StartFailed {
                instance: instance.to_string(),
                log: indent(&log, "    "),
                source: e,
            })
        }
    }
}

/// One try of starting the instance. When LXD's start operation fails and another try
/// follows, it gets the instance ready for it first.
async fn start_attempt(
    client: &LxdClient<LxdTransport>,
    w: &Wanted<'_>,
    attempt: u32,
) -> Result<(), StartFailure> {
    let instance = &w.instance;
    let e = match client
        .change_state(instance, StateAction::Start, false)
        .await
    {
        Ok(()) => return Ok(()),
        Err(e @ (LxdError::Operation { .. } | LxdError::Busy { .. })) => e,
        Err(e) => return Err(e.into()),
    };
    if attempt == START_ATTEMPTS {
        return Err(StartFailure::Again(e));
    }
    if client.instance_state(instance).await?.status == InstanceStatus::Running {
        return Ok(());
    }
    // Seen with LXD 5.0.2: once an instance's FIRST start fails on a hook timeout, every later
    // start of it fails the same way, while a new instance usually starts. A never-started
    // instance holds nothing, so make it again.
    let never_started = client
        .instance(instance)
        .await?
        .is_some_and(|i| i.never_started());
    tracing::warn!(
        "starting '{instance}' failed (attempt {attempt} of {START_ATTEMPTS}), {}: {e}",
        if never_started {
            "creating it again and retrying"
        } else {
            "retrying"
        }
    );
    client.wait_instance_operations(instance).await?;
    if never_started {
        // The failed start's stop hooks keep the instance busy for a while.
        WHILE_BUSY
            .retry(
                async |_| client.delete_instance(instance).await,
                LxdError::is_busy,
            )
            .await?;
        let request = lxd_host::instance_request(&w.provider, instance, &w.owner_id);
        WHILE_BUSY
            .retry(
                async |_| client.create_instance(&request).await,
                LxdError::is_busy,
            )
            .await?;
    }
    Err(StartFailure::Again(e))
}

/// Indents every line of `text`.
fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
