//! The bubblewrap command line of the process backend: new user, mount, PID, network,
//! IPC, UTS and cgroup namespaces; a read-only view of the system's programs and
//! libraries; the workspace as the only persistent writable place; a sized /tmp; the
//! socket directory read-only at /run/agora; nothing else of the host.

use std::ffi::OsString;
use std::path::Path;

use crate::spec::{ExecutionSpec, SOCKET_MOUNT, WORKSPACE_MOUNT};

/// The few files under /etc that Python and the C library read; the rest of /etc
/// (host configuration, possibly secrets) stays out of the sandbox.
const ETC_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/mime.types",
    "/etc/python3",
    "/etc/python3.11",
    "/etc/python3.12",
    "/etc/python3.13",
];

/// Top-level program and library directories; on merged-/usr systems they are
/// symlinks into /usr and are recreated as such.
const ROOT_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Arguments for `bwrap <args> -- <command>` (the `--` included).
pub(crate) fn args(spec: &ExecutionSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
        a.extend(items.iter().map(|s| s.as_ref().to_os_string()));
    };
    push(&[
        &"--unshare-all",
        &"--die-with-parent",
        &"--cap-drop",
        &"ALL",
        &"--hostname",
        &"agora",
    ]);
    push(&[&"--ro-bind", &"/usr", &"/usr"]);
    for d in ROOT_DIRS {
        let host = Path::new("/").join(d);
        let target = format!("/{d}");
        match std::fs::read_link(&host) {
            Ok(link) => push(&[&"--symlink", &link, &target]),
            Err(_) if host.is_dir() => push(&[&"--ro-bind", &host, &target]),
            Err(_) => {}
        }
    }
    for f in ETC_FILES {
        push(&[&"--ro-bind-try", f, f]);
    }
    let tmp_bytes = u64::from(spec.limits.tmp_mb) * 1024 * 1024;
    push(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
    push(&[&"--size", &tmp_bytes.to_string(), &"--tmpfs", &"/tmp"]);
    push(&[&"--bind", &spec.workspace, &WORKSPACE_MOUNT]);
    push(&[&"--ro-bind", &spec.socket_dir, &SOCKET_MOUNT]);
    for m in &spec.readonly_mounts {
        push(&[&"--ro-bind", &m.host, &m.target]);
    }
    // bwrap's root is a tmpfs; without this an agent could write anywhere outside the
    // bound directories for the length of its execution.
    push(&[&"--remount-ro", &"/", &"--chdir", &WORKSPACE_MOUNT, &"--"]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::{AgentId, ExecutionId};

    #[test]
    fn workspace_is_the_only_writable_bind() {
        let spec = ExecutionSpec::new(AgentId(1), ExecutionId(1), "/ws", "/sock", "/log");
        let a: Vec<String> = args(&spec)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let joined = a.join(" ");
        assert!(joined.contains("--unshare-all"));
        assert!(joined.contains("--bind /ws /workspace"));
        assert!(joined.contains("--ro-bind /sock /run/agora"));
        assert_eq!(a.iter().filter(|s| *s == "--bind").count(), 1);
        assert!(joined.contains("--size 67108864 --tmpfs /tmp"));
        assert_eq!(a.last().map(String::as_str), Some("--"));
        assert!(!joined.contains("--ro-bind /etc /etc"));
    }
}
