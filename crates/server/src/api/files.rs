//! Workspace files sent over the API (SPEC §9): a list of `{path, content,
//! encoding}` entries or a copy of an existing workspace, checked against the
//! limits below and staged in a private folder next to the workspaces, so that a
//! new workspace appears whole (one rename) or not at all.
//!
//! Used by `POST /social/spawn` and by the operator's "create an agent" endpoint.
//!
//! **Rules.** Paths are relative, `/`-separated, without `.`, `..` or empty
//! components, backslashes, NUL or other control characters; at most
//! [`MAX_PATH_BYTES`] bytes and [`MAX_DEPTH`] levels. At most [`MAX_FILES`] files
//! and [`MAX_TOTAL_BYTES`] decoded bytes in all. No path twice, and no file where
//! another path needs a folder. The entry point [`ENTRY_POINT`] (`main.py`, run as
//! `python3 main.py`) must be among them; an `agent.toml` may sit beside it. A
//! copied workspace may hold only regular files and folders: a symbolic link, a
//! hard-linked file or a special file refuses the copy (`links_not_allowed`), so no
//! link can carry a file from outside the workspace into the new one.

use super::error::ApiError;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use utoipa::ToSchema;

/// The file a workspace must contain: the agent's entry point.
pub const ENTRY_POINT: &str = "main.py";
/// Name prefix of staging folders in the workspaces root; `world::open` removes
/// any a crash left behind.
pub const STAGING_PREFIX: &str = ".staging-";
/// Files in one workspace.
pub const MAX_FILES: usize = 1000;
/// Decoded bytes of all files of one workspace.
pub const MAX_TOTAL_BYTES: u64 = 2 * 1024 * 1024;
/// Bytes of one path.
pub const MAX_PATH_BYTES: usize = 255;
/// Components of one path (`a/b/c` has 3).
pub const MAX_DEPTH: usize = 16;
/// The file the Orchestrator writes into a workspace before each execution: it
/// holds that execution's token, so a copy leaves it out.
pub const ENV_FILE: &str = "env.json";

const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// How a file's `content` is written in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The content is the file's text.
    #[default]
    Utf8,
    /// The content is the file's bytes in standard base64 (with padding).
    Base64,
}

/// One file of a workspace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path with `/` separators, e.g. `main.py` or `lib/util.py`: no
    /// `.`, `..` or empty components, backslashes or control characters, at most
    /// 16 levels and 255 bytes of UTF-8.
    #[schema(
        min_length = 1,
        max_length = 255,
        example = "main.py",
        pattern = r"^(?:[^/\\.\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]*|\.[^/\\.\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]*|\.\.[^/\\\x00-\x1f\x7f-\x9f]+)(?:/(?:[^/\\.\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]*|\.[^/\\.\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]*|\.\.[^/\\\x00-\x1f\x7f-\x9f]+)){0,15}$"
    )]
    pub path: String,
    /// The file's content, as `encoding` says.
    pub content: String,
    /// `utf8` (default) or `base64`.
    #[serde(default)]
    pub encoding: Encoding,
}

/// Files that passed every rule, decoded: paths relative to the workspace.
#[derive(Debug, Clone, Default)]
pub struct Files {
    entries: Vec<(PathBuf, Vec<u8>)>,
}

fn refuse(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn invalid_path(path: &str, why: &str) -> ApiError {
    refuse("invalid_path", format!("path {path:?}: {why}"))
        .with_details(serde_json::json!({ "path": path }))
}

/// Checks one relative path and returns it as a [`PathBuf`].
pub fn check_path(path: &str) -> Result<PathBuf, ApiError> {
    if path.is_empty() {
        return Err(invalid_path(path, "is empty"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(invalid_path(
            path,
            &format!("is longer than {MAX_PATH_BYTES} bytes"),
        ));
    }
    if path.contains('\\') {
        return Err(invalid_path(
            path,
            "contains a backslash; separate with `/`",
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(invalid_path(path, "contains NUL or a control character"));
    }
    if path.starts_with('/') {
        return Err(invalid_path(path, "is absolute; paths are relative"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > MAX_DEPTH {
        return Err(invalid_path(
            path,
            &format!("is deeper than {MAX_DEPTH} levels"),
        ));
    }
    for part in &parts {
        match *part {
            "" => return Err(invalid_path(path, "has an empty component")),
            "." | ".." => return Err(invalid_path(path, "has a `.` or `..` component")),
            _ => {}
        }
    }
    let buf = PathBuf::from(path);
    // Belt and braces: the checks above leave only normal components.
    if !buf.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid_path(path, "is not a plain relative path"));
    }
    Ok(buf)
}

/// Checks the whole set: count, total size, duplicates, files that would have to
/// be folders, and the entry point.
fn check_set(files: &[(PathBuf, Vec<u8>)]) -> Result<(), ApiError> {
    let mut seen = HashSet::with_capacity(files.len());
    for (p, _) in files {
        if !seen.insert(p.as_path()) {
            return Err(invalid_path(&p.to_string_lossy(), "is given twice"));
        }
    }
    for (p, _) in files {
        if let Some(file) = p.ancestors().skip(1).find(|a| seen.contains(a)) {
            return Err(invalid_path(
                &p.to_string_lossy(),
                &format!("needs {:?} to be a folder, but it is a file", file),
            ));
        }
    }
    if !seen.contains(Path::new(ENTRY_POINT)) {
        return Err(refuse(
            "missing_entry_point",
            format!("a workspace must contain the entry point `{ENTRY_POINT}` at its top"),
        ));
    }
    Ok(())
}

fn too_many_files() -> ApiError {
    refuse(
        "too_many_files",
        format!("a workspace holds at most {MAX_FILES} files"),
    )
    .with_details(serde_json::json!({ "max_files": MAX_FILES }))
}

fn too_large() -> ApiError {
    refuse(
        "files_too_large",
        format!("a workspace holds at most {MAX_TOTAL_BYTES} bytes of files"),
    )
    .with_details(serde_json::json!({ "max_bytes": MAX_TOTAL_BYTES }))
}

/// Checks and decodes files sent in a request.
pub fn validate(entries: &[FileEntry]) -> Result<Files, ApiError> {
    if entries.len() > MAX_FILES {
        return Err(too_many_files());
    }
    let mut total: u64 = 0;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let path = check_path(&e.path)?;
        let bytes = match e.encoding {
            Encoding::Utf8 => e.content.as_bytes().to_vec(),
            Encoding::Base64 => {
                // Refuse before decoding what could not fit anyway.
                if (e.content.len() as u64 / 4) * 3 > MAX_TOTAL_BYTES + 3 {
                    return Err(too_large());
                }
                base64::engine::general_purpose::STANDARD
                    .decode(e.content.as_bytes())
                    .map_err(|err| {
                        refuse(
                            "invalid_encoding",
                            format!("{:?} is not valid base64: {err}", e.path),
                        )
                        .with_details(serde_json::json!({ "path": e.path }))
                    })?
            }
        };
        total = total.saturating_add(bytes.len() as u64);
        if total > MAX_TOTAL_BYTES {
            return Err(too_large());
        }
        out.push((path, bytes));
    }
    check_set(&out)?;
    Ok(Files { entries: out })
}

/// A new workspace being prepared in `<workspaces root>/.staging-<random>`. It
/// is removed when dropped, unless it was installed.
#[derive(Debug)]
pub struct Staged {
    dir: Option<PathBuf>,
}

fn io_fault(what: &str, path: &Path, e: std::io::Error) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("cannot {what} {}: {e}", path.display()),
    )
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 12];
    // A failing OS random source leaves zeros; `create_dir` then refuses a name
    // that is taken instead of sharing it.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn make_dir(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().mode(DIR_MODE).create(path)?;
    // The mode given above is filtered by the umask; say it exactly.
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
}

impl Staged {
    /// An empty staging folder under `workspaces_root` (created if missing).
    fn new(workspaces_root: &Path) -> Result<Staged, ApiError> {
        fs::create_dir_all(workspaces_root).map_err(|e| io_fault("create", workspaces_root, e))?;
        let dir = workspaces_root.join(format!("{STAGING_PREFIX}{}", random_suffix()));
        make_dir(&dir).map_err(|e| io_fault("create", &dir, e))?;
        Ok(Staged { dir: Some(dir) })
    }

    /// The staging folder.
    pub fn path(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new(""))
    }

    /// Writes one file (and its folders) below the staging folder.
    fn write(&self, rel: &Path, bytes: &[u8]) -> Result<(), ApiError> {
        let root = self.path();
        let mut dir = root.to_path_buf();
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                dir.push(c);
                match make_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_fault("create", &dir, e)),
                }
            }
        }
        let path = root.join(rel);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| io_fault("create", &path, e))?;
        f.write_all(bytes)
            .and_then(|()| f.set_permissions(fs::Permissions::from_mode(FILE_MODE)))
            .map_err(|e| io_fault("write", &path, e))
    }

    /// Moves the staged workspace to `dest` (on the same filesystem: one rename).
    /// Something already at `dest` (left by an earlier world whose database is
    /// gone) is moved aside to `<dest>.stale-<random>`, never deleted.
    pub fn install(mut self, dest: &Path) -> Result<(), ApiError> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        if fs::symlink_metadata(dest).is_ok() {
            let mut aside = dest.as_os_str().to_owned();
            aside.push(format!(".stale-{}", random_suffix()));
            tracing::warn!(component = "api", path = %dest.display(),
                "a workspace folder already exists for a new agent; moving it aside");
            if let Err(e) = fs::rename(dest, &aside) {
                self.dir = Some(dir);
                return Err(io_fault("move aside", dest, e));
            }
        }
        if let Err(e) = fs::rename(&dir, dest) {
            self.dir = Some(dir);
            return Err(io_fault("install the workspace at", dest, e));
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(component = "api", path = %dir.display(), error = %e,
                    "cannot remove a staging folder");
            }
        }
    }
}

/// Writes validated files into a new staging folder under `workspaces_root`.
pub fn stage(files: &Files, workspaces_root: &Path) -> Result<Staged, ApiError> {
    let staged = Staged::new(workspaces_root)?;
    for (rel, bytes) in &files.entries {
        staged.write(rel, bytes)?;
    }
    Ok(staged)
}

fn link_refused(rel: &Path, what: &str) -> ApiError {
    refuse(
        "links_not_allowed",
        format!(
            "the workspace holds {what} at {:?}; only regular files and folders can be copied",
            rel
        ),
    )
    .with_details(serde_json::json!({ "path": rel.to_string_lossy() }))
}

/// `O_NONBLOCK` (the same value on every Linux architecture agora builds for): a
/// file swapped for a FIFO after it was inspected must not hang the copy in
/// `open`.
const O_NONBLOCK: i32 = 0o4000;

/// Reads a file found to be regular, making sure the file opened is that one: a
/// regular file with a single link, inside `src` (a folder on the way swapped for
/// a symbolic link after the walk looked at it would lead elsewhere).
fn read_regular(src: &Path, abs: &Path, rel: &Path, budget: u64) -> Result<Vec<u8>, ApiError> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(abs)
        .map_err(|e| unreadable(rel, &e))?;
    let meta = f.metadata().map_err(|e| unreadable(rel, &e))?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return Err(link_refused(rel, "a link or special file"));
    }
    let real = opened_path(&f).or_else(|_| fs::canonicalize(abs));
    match real {
        Ok(real) if real.starts_with(src) => {}
        _ => return Err(link_refused(rel, "a path through a link")),
    }
    let mut bytes = Vec::new();
    f.take(budget + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(rel, &e))?;
    if bytes.len() as u64 > budget {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Where an open file really is, as the kernel resolved it.
fn opened_path(f: &fs::File) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// A file or folder of a copied workspace that could not be read.
fn unreadable(rel: &Path, e: &std::io::Error) -> ApiError {
    link_refused(rel, &format!("a file or folder that cannot be read ({e})"))
}

/// Reads the workspace at `src` without following any link, under the same rules
/// as sent files. The top-level [`ENV_FILE`] is left out, and so are empty
/// folders (a workspace is its files).
pub fn read_workspace(src: &Path) -> Result<Files, ApiError> {
    let src = fs::canonicalize(src).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "workspace_missing",
            format!("the workspace {} cannot be opened: {e}", src.display()),
        )
    })?;
    let mut out = Vec::new();
    let mut total: u64 = 0;
    // Entries looked at, folders included: bounds the walk of a tree of empty
    // folders, which holds no files to count.
    let mut visited = 0usize;
    // Folders still to read: (absolute, relative).
    let mut todo = vec![(src.clone(), PathBuf::new())];
    while let Some((dir, rel_dir)) = todo.pop() {
        let meta = fs::symlink_metadata(&dir).map_err(|e| unreadable(&rel_dir, &e))?;
        if !meta.file_type().is_dir() {
            return Err(link_refused(&rel_dir, "a link or special file"));
        }
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| unreadable(&rel_dir, &e))? {
            let entry = entry.map_err(|e| unreadable(&rel_dir, &e))?;
            visited += 1;
            if visited > 2 * MAX_FILES {
                return Err(too_many_files());
            }
            names.push(entry.file_name());
        }
        names.sort();
        for name in names {
            let rel = rel_dir.join(&name);
            if rel.as_os_str() == ENV_FILE {
                continue;
            }
            let text = rel
                .to_str()
                .ok_or_else(|| invalid_path(&rel.to_string_lossy(), "is not UTF-8"))?;
            check_path(text)?;
            let abs = dir.join(&name);
            let meta = fs::symlink_metadata(&abs).map_err(|e| unreadable(&rel, &e))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                todo.push((abs, rel));
            } else if kind.is_file() && meta.nlink() == 1 {
                if out.len() >= MAX_FILES {
                    return Err(too_many_files());
                }
                if total.saturating_add(meta.len()) > MAX_TOTAL_BYTES {
                    return Err(too_large());
                }
                let bytes = read_regular(&src, &abs, &rel, MAX_TOTAL_BYTES - total)?;
                total += bytes.len() as u64;
                out.push((rel, bytes));
            } else if kind.is_symlink() {
                return Err(link_refused(&rel, "a symbolic link"));
            } else if kind.is_file() {
                return Err(link_refused(&rel, "a hard-linked file"));
            } else {
                return Err(link_refused(&rel, "a special file"));
            }
        }
    }
    check_set(&out)?;
    Ok(Files { entries: out })
}

/// Copies the workspace at `src` into a new staging folder (see
/// [`read_workspace`]).
pub fn clone_workspace(src: &Path, workspaces_root: &Path) -> Result<Staged, ApiError> {
    stage(&read_workspace(src)?, workspaces_root)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            content: content.into(),
            encoding: Encoding::Utf8,
        }
    }

    #[test]
    fn paths_that_could_leave_the_workspace_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            "a\nb",
            "a\u{7f}b",
        ] {
            assert_eq!(check_path(bad).unwrap_err().code, "invalid_path", "{bad:?}");
        }
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert!(check_path(&deep).is_err());
        assert!(check_path(&vec!["d"; MAX_DEPTH].join("/")).is_ok());
        assert!(check_path(&"x".repeat(MAX_PATH_BYTES + 1)).is_err());
        assert!(check_path(&"x".repeat(MAX_PATH_BYTES)).is_ok());
        assert!(check_path("lib/util.py").is_ok());
        assert!(check_path(".hidden/..x").is_ok());
    }

    #[test]
    fn sets_need_an_entry_point_and_distinct_paths() {
        assert_eq!(
            validate(&[entry("lib.py", "")]).unwrap_err().code,
            "missing_entry_point"
        );
        assert_eq!(
            validate(&[entry("main.py", ""), entry("main.py", "")])
                .unwrap_err()
                .code,
            "invalid_path"
        );
        assert_eq!(
            validate(&[entry("main.py", ""), entry("a", ""), entry("a/b", "")])
                .unwrap_err()
                .code,
            "invalid_path"
        );
        let many: Vec<_> = (0..=MAX_FILES)
            .map(|i| entry(&format!("f{i}"), ""))
            .collect();
        assert_eq!(validate(&many).unwrap_err().code, "too_many_files");
        let big = "x".repeat(MAX_TOTAL_BYTES as usize);
        assert_eq!(
            validate(&[entry("main.py", &big), entry("b", "y")])
                .unwrap_err()
                .code,
            "files_too_large"
        );
        assert!(validate(&[entry("main.py", &big)]).is_ok());
    }

    #[test]
    fn base64_content_is_decoded_or_refused() {
        let mut e = entry("main.py", "aGk=");
        e.encoding = Encoding::Base64;
        let files = validate(&[e.clone()]).unwrap();
        assert_eq!(files.entries[0].1, b"hi");
        e.content = "not base64!".into();
        assert_eq!(validate(&[e]).unwrap_err().code, "invalid_encoding");
    }

    #[test]
    fn staging_writes_files_and_drop_removes_it() {
        let root = tempfile::tempdir().unwrap();
        let files = validate(&[entry("main.py", "print(1)"), entry("lib/a/b.py", "x")]).unwrap();
        let staged = stage(&files, root.path()).unwrap();
        let dir = staged.path().to_path_buf();
        assert_eq!(fs::read(dir.join("lib/a/b.py")).unwrap(), b"x");
        let mode = fs::metadata(dir.join("main.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, FILE_MODE);
        let mode = fs::metadata(dir.join("lib/a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, DIR_MODE);
        drop(staged);
        assert!(!dir.exists());

        let staged = stage(&files, root.path()).unwrap();
        let dest = root.path().join("agent-1");
        fs::create_dir(&dest).unwrap();
        staged.install(&dest).unwrap();
        assert_eq!(fs::read(dest.join("main.py")).unwrap(), b"print(1)");
        let names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("agent-1.stale-")),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with(".staging-")),
            "{names:?}"
        );
    }

    #[test]
    fn a_copy_refuses_links_and_leaves_env_json_out() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("src");
        fs::create_dir_all(src.join("lib")).unwrap();
        fs::write(src.join("main.py"), "print(1)").unwrap();
        fs::write(src.join("lib/x.py"), "x").unwrap();
        fs::write(src.join(ENV_FILE), "{\"token\": \"secret\"}").unwrap();
        let files = read_workspace(&src).unwrap();
        let paths: Vec<_> = files.entries.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            paths,
            vec![PathBuf::from("main.py"), PathBuf::from("lib/x.py")]
        );

        std::os::unix::fs::symlink("/etc/passwd", src.join("lib/passwd")).unwrap();
        assert_eq!(read_workspace(&src).unwrap_err().code, "links_not_allowed");
        fs::remove_file(src.join("lib/passwd")).unwrap();

        fs::hard_link(src.join("lib/x.py"), src.join("lib/y.py")).unwrap();
        assert_eq!(read_workspace(&src).unwrap_err().code, "links_not_allowed");
        fs::remove_file(src.join("lib/y.py")).unwrap();

        std::os::unix::fs::symlink(root.path(), src.join("up")).unwrap();
        assert_eq!(read_workspace(&src).unwrap_err().code, "links_not_allowed");
    }
}
