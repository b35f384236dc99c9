//! Choosing the ExecutionSandbox backend at start-up (SPEC §6): docker when an
//! Engine answers and the runtime image is there or can be built, otherwise the
//! process backend — and saying which, and why, in words the operator sees. On a
//! first start the image build takes minutes; `auto` then runs agents as processes
//! meanwhile and hands over an upgrade to docker for when the image is ready.

use agora_sandbox::runtime_image::runtime_image_present;
use agora_sandbox::{
    build_runtime_image, connect_docker, BuildPreference, DockerOptions, DockerSandbox,
    ExecutionSandbox, ProcessOptions, ProcessSandbox, SandboxError,
};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// Which backend to run executions with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxChoice {
    /// Docker if it works here, else the process backend.
    #[default]
    Auto,
    Docker,
    Process,
}

impl std::str::FromStr for SandboxChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SandboxChoice::Auto),
            "docker" => Ok(SandboxChoice::Docker),
            "process" => Ok(SandboxChoice::Process),
            other => Err(format!(
                "unknown sandbox {other:?}: auto, docker or process"
            )),
        }
    }
}

/// The backend chosen and, when it is not the one asked for, why.
pub struct ChosenSandbox {
    pub sandbox: Arc<dyn ExecutionSandbox>,
    /// A sentence for the operator when auto fell back to the process backend.
    pub fallback_reason: Option<String>,
    /// `auto` on a host with Docker but no runtime image yet: the build, resolving
    /// to the docker backend to switch to once it is done.
    pub upgrade: Option<BoxFuture<'static, Result<Arc<dyn ExecutionSandbox>, SandboxError>>>,
}

/// The docker instance name of a data directory: containers are labelled with it,
/// so two worlds sharing one Docker Engine never reconcile away each other's.
pub fn instance_name(data_dir: &Path) -> String {
    let canonical = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("agora-{hex}")
}

/// Opens the backend `choice` names. Docker needs the runtime image; it is built
/// on first use (progress lines go to `progress`).
pub async fn choose(
    choice: SandboxChoice,
    data_dir: &Path,
    agent_uid_base: u32,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<ChosenSandbox, SandboxError> {
    let process = || -> Result<Arc<dyn ExecutionSandbox>, SandboxError> {
        Ok(Arc::new(ProcessSandbox::new(ProcessOptions {
            agent_uid_base,
            ..ProcessOptions::default()
        })?))
    };
    match choice {
        SandboxChoice::Process => Ok(ChosenSandbox {
            sandbox: process()?,
            fallback_reason: None,
            upgrade: None,
        }),
        SandboxChoice::Docker => Ok(ChosenSandbox {
            sandbox: docker(data_dir, agent_uid_base, progress).await?,
            fallback_reason: None,
            upgrade: None,
        }),
        SandboxChoice::Auto => {
            let fallback = |why: String| -> Result<ChosenSandbox, SandboxError> {
                Ok(ChosenSandbox {
                    sandbox: process()?,
                    fallback_reason: Some(why),
                    upgrade: None,
                })
            };
            let engine = match connect_docker().await {
                Ok(e) => e,
                Err(e) => return fallback(not_usable(&e)),
            };
            if !runtime_image_present(&engine).await.unwrap_or(false) {
                let mut chosen = fallback(
                    "the agent runtime image is being built (a first start takes a few \
                     minutes); agents run as local processes until it is ready, then in docker"
                        .into(),
                )?;
                let dir = data_dir.to_path_buf();
                chosen.upgrade = Some(Box::pin(async move {
                    let mut log =
                        |line: &str| tracing::info!(component = "sandbox", "runtime image: {line}");
                    docker(&dir, agent_uid_base, &mut log).await
                }));
                return Ok(chosen);
            }
            match docker(data_dir, agent_uid_base, progress).await {
                Ok(sandbox) => Ok(ChosenSandbox {
                    sandbox,
                    fallback_reason: None,
                    upgrade: None,
                }),
                Err(e) => fallback(not_usable(&e)),
            }
        }
    }
}

/// Why auto did not choose docker, as the operator reads it.
fn not_usable(e: &SandboxError) -> String {
    format!(
        "docker is not usable here ({e}); agents run as local processes with the isolation above"
    )
}

async fn docker(
    data_dir: &Path,
    agent_uid_base: u32,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Arc<dyn ExecutionSandbox>, SandboxError> {
    let engine = connect_docker().await?;
    build_runtime_image(&engine, BuildPreference::from_env(), progress).await?;
    let sandbox = DockerSandbox::connect(DockerOptions {
        instance: instance_name(data_dir),
        agent_uid_base,
        ..DockerOptions::default()
    })
    .await?;
    Ok(Arc::new(sandbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_differ_per_data_dir_and_are_valid_labels() {
        let a = instance_name(Path::new("/tmp/world-a"));
        let b = instance_name(Path::new("/tmp/world-b"));
        assert_ne!(a, b);
        assert_eq!(a, instance_name(Path::new("/tmp/world-a")));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
