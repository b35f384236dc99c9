//! What the binary carries for agents: the genesis agent's workspace template
//! (`agents/genesis/`) and the game rules (`agents/RULES.md`), compiled in so that
//! `agora up` works from any directory, and the shared read-only folder every
//! sandbox sees at `/agora` (the rules and the API description).

use std::io;
use std::path::{Path, PathBuf};

/// The genesis workspace template: (relative path, contents).
pub const GENESIS_FILES: [(&str, &str); 3] = [
    (
        "main.py",
        include_str!("../../../../agents/genesis/main.py"),
    ),
    (
        "services.py",
        include_str!("../../../../agents/genesis/services.py"),
    ),
    (
        "strategy.json",
        include_str!("../../../../agents/genesis/strategy.json"),
    ),
];

/// The game rules agents read inside their sandbox.
pub const RULES: &str = include_str!("../../../../agents/RULES.md");

/// Where the shared folder is mounted inside a sandbox with its own mount namespace.
pub const SHARED_MOUNT: &str = "/agora";
/// The rules' file name in the shared folder.
pub const RULES_FILE: &str = "RULES.md";
/// The API description's file name in the shared folder.
pub const API_FILE: &str = "openapi.json";

/// Fills an empty genesis workspace from the template. A workspace that already has
/// files is left alone: the genesis agent may have rewritten itself. Returns whether
/// it installed anything.
pub fn install_genesis(workspace: &Path) -> io::Result<bool> {
    std::fs::create_dir_all(workspace)?;
    if std::fs::read_dir(workspace)?.next().is_some() {
        return Ok(false);
    }
    for (name, contents) in GENESIS_FILES {
        let tmp = workspace.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, workspace.join(name))?;
    }
    Ok(true)
}

/// Writes the shared folder (`<data dir>/shared`): RULES.md and the OpenAPI
/// document, world-readable, rewritten on every start so they match this binary.
pub fn write_shared(data_dir: &Path, openapi_json: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir.join("shared");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    for (name, contents) in [(RULES_FILE, RULES), (API_FILE, openapi_json)] {
        let path = dir.join(name);
        std::fs::write(&path, contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_installed_once_and_never_over_the_agents_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        assert!(install_genesis(&ws).unwrap());
        assert!(ws.join("main.py").is_file() && ws.join("services.py").is_file());
        std::fs::write(ws.join("main.py"), "print('rewritten')").unwrap();
        assert!(!install_genesis(&ws).unwrap());
        assert_eq!(
            std::fs::read_to_string(ws.join("main.py")).unwrap(),
            "print('rewritten')"
        );
    }
}
