//! The release step that puts this deployer's binary on the host for the `stats-exporter`
//! service ([`crate::tasks::deployer_binary`]): only when the stack has the exporter, only when
//! the host's copy differs, refused when the binary cannot run there. A changed binary owes a
//! restart of the exporter to `run` (recorded durably before the upload, like a changed file).

use super::release::owe_restarts;
use super::steps::{Done, StepRun};
use super::{OpsError, StepReport};
use crate::host::Host;
use crate::stack::{RenderedStack, Service};
use crate::state::{DataDir, EnvironmentState};
use crate::tasks::deployer_binary::{self, LocalBinary, TASK};
use crate::tasks::{Plan, TaskError};

/// Whether the stack runs the exporter (and so needs the binary on the host).
fn needed(rendered: &RenderedStack) -> bool {
    rendered
        .services
        .iter()
        .any(|s| s.name == Service::StatsExporter)
}

fn local(data: &DataDir) -> Result<LocalBinary, TaskError> {
    LocalBinary::current(&data.root().join("cache"))
}

/// Dry run: what the step would do. `None` when the stack has no exporter.
pub(crate) async fn plan(
    data: &DataDir,
    host: &dyn Host,
    rendered: &RenderedStack,
) -> Result<Option<StepReport>, TaskError> {
    if !needed(rendered) {
        return Ok(None);
    }
    let local = local(data)?;
    let remote = deployer_binary::read(host).await?;
    deployer_binary::check_compatible(&local, &remote)?;
    let plan = deployer_binary::plan(&local, &remote);
    Ok(Some(StepReport {
        step: TASK.into(),
        changed: plan.is_apply(),
        detail: plan.text().to_string(),
    }))
}

/// The step: reads, refuses an incompatible binary, uploads a different one. `None` when the
/// stack has no exporter.
pub(crate) async fn step(
    run: &mut StepRun<'_>,
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    rendered: &RenderedStack,
) -> Result<Option<StepReport>, OpsError> {
    if !needed(rendered) {
        return Ok(None);
    }
    let (detail, changed) = run
        .step_changed(state, TASK, async |s| {
            let local = local(data).map_err(OpsError::typed)?;
            let remote = deployer_binary::read(host).await.map_err(OpsError::typed)?;
            deployer_binary::check_compatible(&local, &remote).map_err(OpsError::typed)?;
            let detail = match deployer_binary::plan(&local, &remote) {
                Plan::Nothing(text) => return Ok(Done::new((text, false), false)),
                Plan::Apply((), _) => {
                    owe_restarts(data, s, vec![Service::StatsExporter.as_str().to_string()])?;
                    let done = deployer_binary::apply(host, &local)
                        .await
                        .map_err(OpsError::typed)?;
                    deployer_binary::verify(host, &local)
                        .await
                        .map_err(OpsError::typed)?;
                    done
                }
            };
            Ok::<_, OpsError>(Done::new((detail, true), true))
        })
        .await?;
    Ok(Some(StepReport {
        step: TASK.into(),
        changed,
        detail,
    }))
}
