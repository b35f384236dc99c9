//! What an execution is told about itself (SPEC §6): `/workspace/env.json` and the
//! same values as environment variables, and the entry point a workspace's
//! `agent.toml` may choose.

use agora_core::{AgentId, Bundle, ExecutionId};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::Balance;

/// The file the Orchestrator writes into the workspace before every launch.
pub const ENV_FILE: &str = "env.json";
/// Where the previous execution's log is copied inside the workspace.
pub const PREVIOUS_LOG: &str = ".agora/previous_execution.log";
/// The optional manifest that overrides the entry point.
pub const MANIFEST: &str = "agent.toml";

/// The contents of env.json; field names are the contract agents code against
/// (documented in agents/README.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecutionEnv {
    pub agent_id: i64,
    pub execution_id: i64,
    pub cycle: i64,
    pub credits: Balance,
    pub bundle: agora_core::BundleSpec,
    /// RFC 3339, UTC.
    pub deadline: String,
    /// Seconds since the Unix epoch.
    pub deadline_unix: f64,
    pub system_service_url: String,
    pub token: String,
    pub openai_base_url: String,
    pub rules_path: String,
    pub api_description_path: String,
    /// Relative to the workspace; absent on a first execution.
    pub previous_log_path: String,
}

/// Everything the environment is made of.
pub struct EnvInput<'a> {
    pub agent: AgentId,
    pub execution: ExecutionId,
    pub cycle: i64,
    pub credits: Balance,
    pub bundle: &'a Bundle,
    pub wall: Duration,
    pub system_service_url: String,
    pub token: String,
    pub rules_path: String,
    pub api_description_path: String,
}

impl ExecutionEnv {
    /// The environment of an execution that starts about now.
    pub fn new(i: EnvInput<'_>) -> ExecutionEnv {
        let deadline = SystemTime::now() + i.wall;
        let unix = deadline
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        ExecutionEnv {
            agent_id: i.agent.0,
            execution_id: i.execution.0,
            cycle: i.cycle,
            credits: i.credits,
            bundle: i.bundle.to_spec(),
            deadline: agora_sandbox::rfc3339(deadline),
            deadline_unix: unix,
            openai_base_url: format!("{}/v1", i.system_service_url),
            system_service_url: i.system_service_url,
            token: i.token,
            rules_path: i.rules_path,
            api_description_path: i.api_description_path,
            previous_log_path: PREVIOUS_LOG.to_string(),
        }
    }

    /// The environment variables of §6, so off-the-shelf OpenAI clients and the
    /// agent's own code find the System Service without reading env.json.
    pub fn variables(&self) -> Vec<(String, String)> {
        [
            ("AGENT_ID", self.agent_id.to_string()),
            ("EXECUTION_ID", self.execution_id.to_string()),
            ("SYSTEM_SERVICE_URL", self.system_service_url.clone()),
            ("AGORA_TOKEN", self.token.clone()),
            ("OPENAI_BASE_URL", self.openai_base_url.clone()),
            ("OPENAI_API_KEY", self.token.clone()),
            ("AGORA_DEADLINE", self.deadline.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Writes env.json into the workspace, replacing any earlier one atomically so
    /// an agent never reads half a file.
    pub fn write(&self, workspace: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let tmp = workspace.join(".env.json.tmp");
        write_fresh(&tmp, &json)?;
        std::fs::rename(&tmp, workspace.join(ENV_FILE))
    }
}

/// Replaces `path` with a new file holding `contents`, never following a link at
/// `path`.
pub fn write_fresh(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(contents)
}

/// `agent.toml`: `command = ["python3", "bot.py"]` replaces `python3 main.py`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    command: Vec<String>,
}

/// The entry point of a workspace: its manifest's command, or `python3 main.py`.
/// A manifest that cannot be read or is malformed is an error the execution fails
/// with, rather than silently running something else.
pub fn entry_point(workspace: &Path) -> Result<Vec<String>, String> {
    let path = workspace.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec!["python3".into(), "main.py".into()])
        }
        Err(e) => return Err(format!("cannot read {MANIFEST}: {e}")),
    };
    let m: Manifest = toml::from_str(&text).map_err(|e| format!("{MANIFEST}: {e}"))?;
    if m.command.is_empty() || m.command.iter().any(|a| a.is_empty() || a.contains('\0')) {
        return Err(format!(
            "{MANIFEST}: command must be a non-empty list of arguments"
        ));
    }
    Ok(m.command)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entry_point_defaults_and_reads_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(entry_point(dir.path()).unwrap(), ["python3", "main.py"]);
        std::fs::write(
            dir.path().join(MANIFEST),
            "command = [\"sh\", \"run.sh\"]\n",
        )
        .unwrap();
        assert_eq!(entry_point(dir.path()).unwrap(), ["sh", "run.sh"]);
        std::fs::write(dir.path().join(MANIFEST), "command = []\n").unwrap();
        assert!(entry_point(dir.path()).is_err());
        std::fs::write(dir.path().join(MANIFEST), "cmd = 1\n").unwrap();
        assert!(entry_point(dir.path()).is_err());
    }
}
