//! The docker backend (SPEC §6): one hardened container per execution, driven over the
//! Engine API with bollard. Launch is create → attach → start; a supervisor task then
//! enforces the deadline and CPU budget from the host, reads state and logs, and
//! removes the container itself.

/// Reading CPU, memory and OOM kills from the container's cgroup.
mod cgroup;
/// The hardened container create body and the labels.
pub mod container;
/// The supervisor: deadline, CPU budget, wait, inspect, remove.
mod supervise;

use std::time::{Duration, Instant, SystemTime};

use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, RemoveContainerOptions,
};
use bollard::Docker;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::oneshot;
use tracing::Instrument;

pub use container::{DEBUG_PORT, LABEL_AGENT, LABEL_DEADLINE, LABEL_EXECUTION, LABEL_INSTANCE};

use crate::logs::{LogPump, LogStream};
use crate::reconcile::{self, Leftover};
use crate::spec::SandboxView;
use crate::{
    AgentUser, ExecutionSandbox, ExecutionSpec, IsolationReport, KillSwitch, RunningExecution,
    SandboxError,
};

/// Budget for Engine calls that should answer at once (create, start, inspect,
/// remove); measured at tens of milliseconds, so seconds mean the daemon is stuck.
pub(crate) const API_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run containers.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// The runtime image; `agora-runtime:<version>` by default.
    pub image: String,
    /// Names this orchestrator's containers (label and name prefix) so that two
    /// instances sharing a daemon never reconcile away each other's executions.
    pub instance: String,
    /// How often the CPU budget is checked; the budget can be overshot by at most this
    /// times the CPU rate.
    pub poll_interval: Duration,
    /// First uid of agents when running as root (see [`crate::AgentUser`]).
    pub agent_uid_base: u32,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            image: crate::runtime_image_tag(),
            instance: "default".into(),
            poll_interval: Duration::from_millis(100),
            agent_uid_base: crate::identity::AGENT_UID_BASE,
        }
    }
}

/// Connects to the local Docker Engine (`DOCKER_HOST` or the default socket) and
/// negotiates the API version: bollard's default can be newer than the daemon.
pub async fn connect_docker() -> Result<Docker, SandboxError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| SandboxError::DockerUnavailable(e.to_string()))?
        // Requests such as `wait` legitimately last as long as an execution; short
        // calls get their own tighter timeout from us.
        .with_timeout(Duration::from_secs(24 * 3600));
    let negotiated = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
        .await
        .map_err(|_| SandboxError::DockerUnavailable("no answer within 5 s".into()))?
        .map_err(|e| SandboxError::DockerUnavailable(e.to_string()))?;
    Ok(negotiated)
}

/// The docker backend.
#[derive(Debug, Clone)]
pub struct DockerSandbox {
    docker: Docker,
    opts: DockerOptions,
    /// The daemon applies its default seccomp profile to containers.
    seccomp: bool,
}

impl DockerSandbox {
    /// Connects and checks the options; does not require the image yet (`agora up`
    /// builds it on first use).
    pub async fn connect(opts: DockerOptions) -> Result<DockerSandbox, SandboxError> {
        if opts.instance.is_empty()
            || !opts
                .instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(SandboxError::InvalidSpec(format!(
                "instance name {:?} must be [A-Za-z0-9_-]+",
                opts.instance
            )));
        }
        let docker = connect_docker().await?;
        let info = tokio::time::timeout(Duration::from_secs(5), docker.info())
            .await
            .map_err(|_| SandboxError::DockerUnavailable("no answer to info within 5 s".into()))?
            .map_err(|e| SandboxError::DockerUnavailable(e.to_string()))?;
        let seccomp = info
            .security_options
            .unwrap_or_default()
            .iter()
            .any(|o| o.contains("name=seccomp"));
        Ok(DockerSandbox {
            docker,
            opts,
            seccomp,
        })
    }

    /// The Engine client, e.g. for [`crate::build_runtime_image`].
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    pub fn options(&self) -> &DockerOptions {
        &self.opts
    }

    fn report(&self, user: Option<&AgentUser>, debug: bool) -> IsolationReport {
        let mut notes = Vec::new();
        if debug {
            notes.push(format!(
                "debug mode: bridge network, debugpy published on 127.0.0.1:{DEBUG_PORT}"
            ));
        }
        let uid_per_agent = user.map_or(rustix::process::geteuid().is_root(), |u| u.separated);
        if !uid_per_agent {
            notes.push("orchestrator is not root: agents share its uid".into());
        }
        if !self.seccomp {
            notes.push(
                "the Docker daemon applies no seccomp profile: system calls are not filtered"
                    .into(),
            );
        }
        IsolationReport {
            backend: "docker",
            uid: user.map(|u| u.uid),
            non_root: !matches!(user, Some(u) if u.uid == 0),
            uid_per_agent,
            no_privileges: true,
            memory_limit: "cgroup",
            cpu_limit: "cgroup",
            process_limit: "pids_cgroup",
            network_isolated: !debug,
            filesystem_isolated: true,
            pid_isolated: true,
            bwrap: false,
            seccomp: self.seccomp,
            notes,
        }
    }

    async fn launch_inner(&self, spec: ExecutionSpec) -> Result<RunningExecution, SandboxError> {
        spec.validate()?;
        let user = AgentUser::for_agent(spec.agent, self.opts.agent_uid_base)?;
        if user.uid == 0 {
            return Err(SandboxError::InvalidSpec(
                "refusing to run an agent as root".into(),
            ));
        }
        {
            let (ws, sock) = (spec.workspace.clone(), spec.socket_dir.clone());
            tokio::task::spawn_blocking(move || user.hand_over(&ws, &sock))
                .await
                .map_err(|_| SandboxError::SupervisorGone)??;
        }
        let isolation = self.report(Some(&user), spec.debug);
        let (pump, log_rx) = LogPump::start(spec.agent, spec.execution, &spec.log_path).await?;

        let name = container::container_name(&self.opts.instance, &spec);
        // The deadline label is an estimate made before start; the enforced deadline
        // counts from the moment start returns.
        let label_deadline = SystemTime::now() + spec.limits.wall + Duration::from_secs(5);
        let body = container::create_body(
            &spec,
            &user,
            &self.opts.image,
            &self.opts.instance,
            label_deadline,
        );
        let id = self.create(&name, body).await?;

        match self.attach_and_start(&id).await {
            Ok((output, started, started_at)) => {
                let deadline = started + spec.limits.wall;
                pump.sender()
                    .send(
                        LogStream::Sandbox,
                        format!("isolation: {}", isolation.summary()),
                    )
                    .await;
                tracing::info!(
                    component = "sandbox",
                    agent = %spec.agent, execution = %spec.execution, container = %id,
                    "execution created -> running"
                );
                let (tx, rx) = oneshot::channel();
                let kill = KillSwitch::default();
                let sup = supervise::Supervisor {
                    docker: self.docker.clone(),
                    id: id.clone(),
                    agent: spec.agent,
                    execution: spec.execution,
                    limits: spec.limits.clone(),
                    deadline,
                    started_at,
                    poll_interval: self.opts.poll_interval,
                    kill: kill.clone(),
                    isolation,
                };
                // In the caller's span: the supervisor's lines carry its ids.
                tokio::spawn(
                    async move {
                        let outcome = sup.run(output, pump).await;
                        let _ = tx.send(outcome);
                    }
                    .in_current_span(),
                );
                Ok(RunningExecution::new(
                    spec.agent,
                    spec.execution,
                    Some(id),
                    log_rx,
                    rx,
                    kill,
                ))
            }
            Err(e) => {
                let _ = remove(&self.docker, &id).await;
                pump.sender()
                    .send(LogStream::Sandbox, format!("launch failed: {e}"))
                    .await;
                pump.finish().await;
                Err(e)
            }
        }
    }

    async fn create(
        &self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<String, SandboxError> {
        let opts = || CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let first = timed(
            "create container",
            self.docker.create_container(Some(opts()), body.clone()),
        )
        .await?;
        match first {
            Ok(r) => Ok(r.id),
            // A container of the same name is a leftover of this very execution from
            // a crashed run: it is not running anything we track, so replace it.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                remove(&self.docker, name).await?;
                timed(
                    "create container",
                    self.docker.create_container(Some(opts()), body),
                )
                .await?
                .map(|r| r.id)
                .map_err(SandboxError::docker("create container"))
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("image") => {
                Err(SandboxError::ImageMissing(self.opts.image.clone()))
            }
            Err(e) => Err(SandboxError::docker("create container")(e)),
        }
    }

    /// Attaches before starting so not a byte of output is missed, then starts.
    async fn attach_and_start(
        &self,
        id: &str,
    ) -> Result<(supervise::Output, Instant, SystemTime), SandboxError> {
        let attach = timed(
            "attach",
            self.docker.attach_container(
                id,
                Some(AttachContainerOptions {
                    stdout: true,
                    stderr: true,
                    stream: true,
                    logs: false,
                    ..Default::default()
                }),
            ),
        )
        .await?
        .map_err(SandboxError::docker("attach"))?;
        timed(
            "start container",
            self.docker
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>),
        )
        .await?
        .map_err(SandboxError::docker("start container"))?;
        Ok((attach.output, Instant::now(), SystemTime::now()))
    }
}

/// Runs an Engine call under [`API_TIMEOUT`].
pub(crate) async fn timed<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, SandboxError> {
    tokio::time::timeout(API_TIMEOUT, fut)
        .await
        .map_err(|_| SandboxError::Timeout(what))
}

/// Force-removes a container (and its anonymous volumes); a missing one is fine.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<(), SandboxError> {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match timed("remove container", docker.remove_container(id, Some(opts))).await? {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // 409 "removal already in progress": someone else is finishing the job.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(SandboxError::docker("remove container")(e)),
    }
}

impl ExecutionSandbox for DockerSandbox {
    fn backend(&self) -> &'static str {
        "docker"
    }

    fn isolation(&self) -> IsolationReport {
        self.report(None, false)
    }

    fn view(&self, _spec: &ExecutionSpec) -> SandboxView {
        SandboxView::mounted()
    }

    fn launch(&self, spec: ExecutionSpec) -> BoxFuture<'_, Result<RunningExecution, SandboxError>> {
        self.launch_inner(spec).boxed()
    }

    fn reconcile(&self) -> BoxFuture<'_, Result<Vec<Leftover>, SandboxError>> {
        reconcile::remove_leftover_containers(&self.docker, &self.opts.instance).boxed()
    }
}
