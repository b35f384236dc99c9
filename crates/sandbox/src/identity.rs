//! Which host uid an agent runs as, and handing its workspace and socket directory over
//! to that uid before launch.
//!
//! When the orchestrator runs as root, each agent gets its own unprivileged uid
//! (`base + agent id`, base 100000 unless configured, stable across executions). That buys three things no other
//! mechanism gives both backends: RLIMIT_NPROC counts per agent instead of host-wide,
//! another agent's 0700 workspace is unreadable even without a mount namespace, and a
//! process that escaped its process group can still be found and killed by uid.
//! When the orchestrator is not root it cannot switch uid, so agents run as the
//! orchestrator's own uid and the isolation report says so.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use agora_core::AgentId;

use crate::SandboxError;

/// First uid handed to agents when running as root; far above Debian's dynamic
/// ranges (1000–59999 users, 65534 nobody) so it never collides with a real account.
pub const AGENT_UID_BASE: u32 = 100_000;

/// The host identity an execution runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentUser {
    pub uid: u32,
    pub gid: u32,
    /// True when this uid belongs to this agent alone (orchestrator is root).
    pub separated: bool,
}

impl AgentUser {
    /// The identity for `agent` on this host, agents' uids starting at `base`. Two
    /// worlds on one host need disjoint ranges: the uid sweep of one would otherwise
    /// kill the other's agents.
    pub fn for_agent(agent: AgentId, base: u32) -> Result<AgentUser, SandboxError> {
        let euid = rustix::process::geteuid().as_raw();
        if euid != 0 {
            let gid = rustix::process::getegid().as_raw();
            return Ok(AgentUser {
                uid: euid,
                gid,
                separated: false,
            });
        }
        let id = u32::try_from(agent.0)
            .ok()
            .and_then(|a| a.checked_add(base))
            .filter(|uid| *uid < u32::MAX - 1)
            .ok_or_else(|| {
                SandboxError::InvalidSpec(format!("agent id {agent} has no uid mapping"))
            })?;
        Ok(AgentUser {
            uid: id,
            gid: id,
            separated: true,
        })
    }

    /// `uid:gid`, as Docker's `User` field wants it.
    pub fn docker_user(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }

    /// Makes the workspace (recursively) and the socket directory (one level, so the
    /// agent may connect to `api.sock`) owned by this uid. Only needed, and only
    /// possible, when the uid is separated; otherwise the agent already is the owner.
    pub(crate) fn hand_over(
        &self,
        workspace: &Path,
        socket_dir: &Path,
    ) -> Result<(), SandboxError> {
        if !self.separated {
            return Ok(());
        }
        self.chown_tree(workspace, true)?;
        self.chown_tree(socket_dir, false)?;
        Ok(())
    }

    fn chown_tree(&self, path: &Path, recurse: bool) -> Result<(), SandboxError> {
        let meta = fs::symlink_metadata(path)
            .map_err(|e| SandboxError::io(format!("stat {}", path.display()), e))?;
        self.chown_one(path, &meta)?;
        let entries = fs::read_dir(path)
            .map_err(|e| SandboxError::io(format!("read {}", path.display()), e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| SandboxError::io(format!("read {}", path.display()), e))?;
            let p = entry.path();
            // symlink_metadata, and lchown below: a symlink the agent planted in its
            // workspace must never make us chown the file it points to.
            let meta = fs::symlink_metadata(&p)
                .map_err(|e| SandboxError::io(format!("stat {}", p.display()), e))?;
            if meta.is_dir() && recurse {
                self.chown_tree(&p, true)?;
            } else {
                self.chown_one(&p, &meta)?;
            }
        }
        Ok(())
    }

    fn chown_one(&self, path: &Path, meta: &fs::Metadata) -> Result<(), SandboxError> {
        if meta.uid() == self.uid && meta.gid() == self.gid {
            return Ok(());
        }
        // A regular file with several links may be a hard link the agent planted to a
        // file it does not own; giving it away would hand over the host's file.
        if meta.is_file() && meta.nlink() > 1 {
            tracing::warn!(component = "sandbox", path = %path.display(), "not chowning a multiply-linked file");
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| SandboxError::io(format!("chown {}", path.display()), e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_each_agent_to_its_own_uid() {
        let u = AgentUser::for_agent(AgentId(7), AGENT_UID_BASE).unwrap();
        if rustix::process::geteuid().is_root() {
            assert_eq!(u.uid, AGENT_UID_BASE + 7);
            assert!(u.separated);
            assert!(AgentUser::for_agent(AgentId(-1), AGENT_UID_BASE).is_err());
        } else {
            assert!(!u.separated);
        }
    }

    #[test]
    fn hand_over_chowns_the_tree_but_not_symlink_targets() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let outside = tempfile::NamedTempFile::new().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let sock = tempfile::tempdir().unwrap();
        fs::create_dir(ws.path().join("sub")).unwrap();
        fs::write(ws.path().join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join("link")).unwrap();
        let u = AgentUser::for_agent(AgentId(3), AGENT_UID_BASE).unwrap();
        u.hand_over(ws.path(), sock.path()).unwrap();
        let uid = |p: &Path| fs::symlink_metadata(p).unwrap().uid();
        assert_eq!(uid(&ws.path().join("sub/f")), u.uid);
        assert_eq!(uid(sock.path()), u.uid);
        assert_eq!(uid(outside.path()), 0, "symlink target must keep its owner");
    }
}
