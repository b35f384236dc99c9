//! The hardened container of SPEC §6, as an Engine API create body: non-root, no
//! capabilities, no-new-privileges, read-only root with a sized noexec /tmp, memory =
//! memory+swap, CPU rate, PIDs and nofile limits, `Init`, no network, typed mounts,
//! and labels that let a later run find it.

use std::collections::HashMap;
use std::time::SystemTime;

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, PortBinding, ResourcesUlimits,
};

use crate::spec::{ExecutionSpec, SOCKET_MOUNT, WORKSPACE_MOUNT};
use crate::AgentUser;

/// Label keys; every container the sandbox creates carries all four.
pub const LABEL_AGENT: &str = "agora.agent";
pub const LABEL_EXECUTION: &str = "agora.execution";
/// Unix milliseconds after which the container should no longer exist.
pub const LABEL_DEADLINE: &str = "agora.deadline";
/// Which orchestrator instance owns it; `reconcile()` only touches its own.
pub const LABEL_INSTANCE: &str = "agora.instance";

/// The debugpy port inside the container and on 127.0.0.1 outside (ADR 006).
pub const DEBUG_PORT: u16 = 5678;

const MB: i64 = 1024 * 1024;

/// `agora-<instance>-<agent>-<execution>`: unique per execution and readable in
/// `docker ps`.
pub(crate) fn container_name(instance: &str, spec: &ExecutionSpec) -> String {
    format!("agora-{instance}-{}-{}", spec.agent, spec.execution)
}

/// The create body for `spec`.
pub(crate) fn create_body(
    spec: &ExecutionSpec,
    user: &AgentUser,
    image: &str,
    instance: &str,
    deadline: SystemTime,
) -> ContainerCreateBody {
    let limits = &spec.limits;
    let deadline_ms = deadline
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let labels = HashMap::from([
        (LABEL_AGENT.to_string(), spec.agent.to_string()),
        (LABEL_EXECUTION.to_string(), spec.execution.to_string()),
        (LABEL_DEADLINE.to_string(), deadline_ms.to_string()),
        (LABEL_INSTANCE.to_string(), instance.to_string()),
    ]);

    let mut env = crate::spec::base_env("/tmp");
    env.extend(spec.env.iter().cloned());
    let env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    let mut mounts = vec![
        bind(&spec.workspace.to_string_lossy(), WORKSPACE_MOUNT, false),
        // The directory, not the socket file: a file bind would pin the inode of a
        // socket the System Service may recreate. Read-only still lets the agent
        // connect (sockets are exempt from the read-only check) but not replace it.
        bind(&spec.socket_dir.to_string_lossy(), SOCKET_MOUNT, true),
    ];
    for m in &spec.readonly_mounts {
        mounts.push(bind(&m.host.to_string_lossy(), &m.target, true));
    }

    let memory = i64::try_from(limits.memory_mb).unwrap_or(i64::MAX / MB) * MB;
    let mut host = HostConfig {
        // memory+swap equal to memory: no swap, so the limit is the real one.
        memory: Some(memory),
        memory_swap: Some(memory),
        nano_cpus: Some((limits.cpu_rate * 1e9) as i64),
        pids_limit: Some(i64::from(limits.pids)),
        ulimits: Some(vec![ResourcesUlimits {
            name: Some("nofile".into()),
            soft: Some(i64::from(limits.nofile)),
            hard: Some(i64::from(limits.nofile)),
        }]),
        init: Some(true),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_string(),
            format!("rw,noexec,nosuid,nodev,size={}m,mode=1777", limits.tmp_mb),
        )])),
        mounts: Some(mounts),
        network_mode: Some("none".into()),
        // We read state and logs first and remove the container ourselves: AutoRemove
        // races with inspect and logs (§6 pitfalls).
        auto_remove: Some(false),
        ..Default::default()
    };
    let mut exposed = None;
    if spec.debug {
        // Debug only: a bridge network so the published port works; bound to
        // loopback so nothing off the host can attach.
        host.network_mode = Some("bridge".into());
        let port = format!("{DEBUG_PORT}/tcp");
        host.port_bindings = Some(HashMap::from([(
            port.clone(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(DEBUG_PORT.to_string()),
            }]),
        )]));
        exposed = Some(vec![port]);
    }

    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(spec.effective_command()),
        env: Some(env),
        user: Some(user.docker_user()),
        working_dir: Some(WORKSPACE_MOUNT.into()),
        labels: Some(labels),
        hostname: Some("agora".into()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        exposed_ports: exposed,
        host_config: Some(host),
        ..Default::default()
    }
}

/// A typed bind mount: unlike the legacy `Binds` form it fails on a missing source
/// instead of creating it as a root-owned directory.
fn bind(source: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(source.to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agora_core::{AgentId, ExecutionId};

    fn spec() -> ExecutionSpec {
        let mut s = ExecutionSpec::new(AgentId(4), ExecutionId(8), "/ws", "/sock", "/log");
        s.env.push(("AGENT_ID".into(), "4".into()));
        s
    }

    fn user() -> AgentUser {
        AgentUser {
            uid: 100_004,
            gid: 100_004,
            separated: true,
        }
    }

    #[test]
    fn container_is_hardened() {
        let body = create_body(&spec(), &user(), "img:1", "main", SystemTime::now());
        let h = body.host_config.unwrap();
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(h.cap_drop.unwrap(), ["ALL"]);
        assert_eq!(h.security_opt.unwrap(), ["no-new-privileges:true"]);
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.init, Some(true));
        assert_eq!(h.memory, h.memory_swap);
        assert_eq!(h.memory, Some(256 * MB));
        assert!(h.tmpfs.unwrap()["/tmp"].contains("noexec"));
        let mounts = h.mounts.unwrap();
        assert!(mounts.iter().all(|m| m.typ == Some(MountType::BIND)));
        assert_eq!(mounts[1].read_only, Some(true));
        assert_eq!(body.user.as_deref(), Some("100004:100004"));
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_EXECUTION], "8");
        assert_eq!(labels[LABEL_INSTANCE], "main");
        assert!(body.env.unwrap().contains(&"AGENT_ID=4".to_string()));
        assert!(h.port_bindings.is_none());
    }

    #[test]
    fn debug_publishes_debugpy_on_loopback_only() {
        let mut s = spec();
        s.debug = true;
        let body = create_body(&s, &user(), "img:1", "main", SystemTime::now());
        let h = body.host_config.unwrap();
        let b = &h.port_bindings.unwrap()["5678/tcp"];
        assert_eq!(b.as_ref().unwrap()[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(body.cmd.unwrap()[2], "debugpy");
    }
}
