//! The operator token (SPEC §11): created on first start, kept in
//! `<data dir>/operator.token` with mode 0600, shown once, rotated with
//! `agora token rotate`. It guards the human and admin endpoints.
//!
//! The running server holds only a hash and re-reads the file when it changes, so
//! a rotation takes effect at once without a restart.

use crate::store::{hash_token, random_token, TokenHash};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Prefix of the operator token.
pub const OPERATOR_TOKEN_PREFIX: &str = "agora_o_";

/// The file name inside the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// Where the operator token of a data directory lives.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(OPERATOR_TOKEN_FILE)
}

/// What [`ensure`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// A new token was written; this is the only time it is shown.
    Created(String),
    /// A token existed.
    Existing,
}

/// Creates the operator token if the data directory has none, and tightens the
/// file's mode to 0600 if it is looser.
pub fn ensure(data_dir: &Path) -> std::io::Result<Ensured> {
    let path = token_path(data_dir);
    match fs::metadata(&path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            }
            Ok(Ensured::Existing)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Ensured::Created(write_new(&path)?))
        }
        Err(e) => Err(e),
    }
}

/// Replaces the operator token with a new one and returns it. The old token stops
/// working at once, also in a running server.
pub fn rotate(data_dir: &Path) -> std::io::Result<String> {
    let path = token_path(data_dir);
    let tmp = path.with_extension("token.new");
    let _ = fs::remove_file(&tmp);
    let token = write_new(&tmp)?;
    fs::rename(&tmp, &path)?;
    Ok(token)
}

fn write_new(path: &Path) -> std::io::Result<String> {
    let token = random_token(OPERATOR_TOKEN_PREFIX);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

/// Identifies one version of the token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(meta: &fs::Metadata) -> Stamp {
    Stamp {
        inode: meta.ino(),
        len: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    }
}

/// Checks presented operator tokens against the token file.
#[derive(Debug)]
pub struct OperatorAuth {
    path: PathBuf,
    current: RwLock<Option<(Stamp, TokenHash)>>,
}

impl OperatorAuth {
    pub fn new(data_dir: &Path) -> OperatorAuth {
        OperatorAuth {
            path: token_path(data_dir),
            current: RwLock::new(None),
        }
    }

    /// True when `presented` is the current operator token.
    pub fn verify(&self, presented: &str) -> bool {
        if !presented.starts_with(OPERATOR_TOKEN_PREFIX) {
            return false;
        }
        let Some(expected) = self.current_hash() else {
            return false;
        };
        hash_token(presented) == expected
    }

    fn current_hash(&self) -> Option<TokenHash> {
        let meta = fs::metadata(&self.path).ok()?;
        let now = stamp(&meta);
        if let Ok(cur) = self.current.read() {
            if let Some((s, h)) = *cur {
                if s == now {
                    return Some(h);
                }
            }
        }
        let text = fs::read_to_string(&self.path).ok()?;
        let hash = hash_token(text.trim());
        if let Ok(mut cur) = self.current.write() {
            *cur = Some((now, hash));
        }
        Some(hash)
    }
}
