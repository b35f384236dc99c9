//! Finding and removing what a crashed orchestrator left behind (§8 crash safety, §14
//! "no container or process leaked"): every container labelled with this instance is a
//! leftover at start-up, running or not, because nothing supervises it any more.

use std::collections::HashMap;

use agora_core::{AgentId, ExecutionId};
use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;

use crate::docker::{remove, timed, LABEL_AGENT, LABEL_EXECUTION, LABEL_INSTANCE};
use crate::SandboxError;

/// A leftover that was removed; the orchestrator marks its execution `lost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Container id (docker) or pid (process).
    pub id: String,
    pub agent: Option<AgentId>,
    pub execution: Option<ExecutionId>,
}

/// Removes every container carrying `agora.instance=<instance>`.
pub(crate) async fn remove_leftover_containers(
    docker: &Docker,
    instance: &str,
) -> Result<Vec<Leftover>, SandboxError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    )]);
    let opts = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let list = timed("list containers", docker.list_containers(Some(opts)))
        .await?
        .map_err(SandboxError::docker("list containers"))?;
    let mut removed = Vec::new();
    for c in list {
        let Some(id) = c.id else { continue };
        let labels = c.labels.unwrap_or_default();
        let label = |k: &str| labels.get(k).and_then(|v| v.parse::<i64>().ok());
        remove(docker, &id).await?;
        tracing::info!(component = "sandbox", container = %id, "leftover container removed");
        removed.push(Leftover {
            id,
            agent: label(LABEL_AGENT).map(AgentId),
            execution: label(LABEL_EXECUTION).map(ExecutionId),
        });
    }
    Ok(removed)
}
