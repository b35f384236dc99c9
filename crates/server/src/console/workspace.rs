//! A read-only view of an agent's workspace (SPEC §12): the file list and one
//! file's text. The workspace belongs to the agent, which may plant links to
//! anywhere on the host, so nothing here follows a link: the list reads
//! `symlink_metadata` only, and a file is opened one component at a time with
//! `O_NOFOLLOW` from the workspace's own directory handle, so no swap of a
//! directory for a link can lead the read outside.

use super::auth::Human;
use super::layout::{self, Nav};
use crate::api::files::check_path;
use crate::api::ApiState;
use agora_core::AgentId;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use rustix::fs::{openat, Mode, OFlags, CWD};
use serde::Deserialize;
use std::io::Read;
use std::os::fd::OwnedFd;

/// The most entries the list shows.
const MAX_ENTRIES: usize = 1000;
/// The deepest folder the list descends into.
const MAX_DEPTH: usize = 16;
/// The most bytes of one file the view shows.
const MAX_VIEW_BYTES: u64 = 256 * 1024;

/// What a workspace entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    Other,
}

/// One entry of a workspace, its path relative to the workspace.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub size: u64,
}

/// The workspace's entries in path order, at most [`MAX_ENTRIES`], never
/// following a link.
pub fn list(root: &std::path::Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    'walk: while let Some((dir, prefix, depth)) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            if out.len() >= MAX_ENTRIES {
                break 'walk;
            }
            let path = dir.join(&name);
            let rel = format!("{prefix}{}", name.to_string_lossy());
            let meta = std::fs::symlink_metadata(&path)?;
            let kind = if meta.file_type().is_symlink() {
                Kind::Link
            } else if meta.is_dir() {
                Kind::Dir
            } else if meta.is_file() {
                Kind::File
            } else {
                Kind::Other
            };
            if kind == Kind::Dir && depth + 1 < MAX_DEPTH {
                stack.push((path, format!("{rel}/"), depth + 1));
            }
            out.push(Entry {
                path: rel,
                kind,
                size: meta.len(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The list as a table, files linking to their view.
pub fn table(agent: AgentId, entries: &[Entry]) -> Markup {
    html! {
        @if entries.is_empty() { p { "The workspace is empty." } }
        @else {
            table #files {
                thead { tr { th { "path" } th { "kind" } th.num { "bytes" } } }
                tbody { @for e in entries { tr {
                    td { @if e.kind == Kind::File {
                        a href={ "/console/agents/" (agent.0) "/files?path=" (encode(&e.path)) } { (e.path) }
                    } @else { (e.path) } }
                    td { (match e.kind { Kind::File => "file", Kind::Dir => "folder", Kind::Link => "link (not followed)", Kind::Other => "other" }) }
                    td.num { @if e.kind == Kind::File { (e.size) } }
                } } }
            }
            @if entries.len() >= MAX_ENTRIES { p.meta { "(the first " (MAX_ENTRIES) " entries)" } }
        }
    }
}

/// Percent-encodes a path for a query string.
fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Opens `rel` under `root` without following any link on the way.
fn open_beneath(root: &std::path::Path, rel: &std::path::Path) -> std::io::Result<std::fs::File> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir: OwnedFd = openat(CWD, root, dir_flags, Mode::empty())?;
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let flags = if last {
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK
        } else {
            dir_flags
        };
        dir = openat(&dir, part.as_os_str(), flags, Mode::empty())?;
    }
    let file = std::fs::File::from(dir);
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The first bytes of a file as text, whether it was cut, and whether it looked
/// binary.
fn read_text(
    root: &std::path::Path,
    rel: &std::path::Path,
) -> std::io::Result<(String, bool, bool)> {
    let file = open_beneath(root, rel)?;
    let len = file.metadata()?.len();
    let mut bytes = Vec::new();
    file.take(MAX_VIEW_BYTES).read_to_end(&mut bytes)?;
    let binary = bytes.contains(&0);
    Ok((
        String::from_utf8_lossy(&bytes).into_owned(),
        len > MAX_VIEW_BYTES,
        binary,
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct FileQuery {
    #[serde(default)]
    path: String,
}

/// One file of a workspace, as text.
pub(super) async fn file(
    _: Human,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
) -> Response {
    let id = match layout::path_id(&id, "an agent") {
        Ok(id) => id,
        Err(page) => return *page,
    };
    let rel = match check_path(&q.path) {
        Ok(p) => p,
        Err(e) => return layout::failed(e, Nav::Agents),
    };
    let agent = match s.store.agent(AgentId(id)).await {
        Ok(a) => a,
        Err(e) => return layout::failed(e, Nav::Agents),
    };
    let root = std::path::PathBuf::from(&agent.workspace);
    let read = {
        let rel = rel.clone();
        tokio::task::spawn_blocking(move || read_text(&root, &rel)).await
    };
    let (text, cut, binary) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let status = if e.kind() == std::io::ErrorKind::NotFound {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            return layout::error(
                status,
                Nav::Agents,
                &format!("cannot show {}: {e} (links are never followed)", q.path),
            );
        }
        Err(e) => {
            return layout::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Nav::Agents,
                &e.to_string(),
            )
        }
    };
    let body = html! {
        p { a href={ "/console/agents/" (id) } { "← agent #" (id) } }
        h1 { code { (q.path) } }
        @if binary { p.meta { "This file looks binary; its bytes are shown as text." } }
        @if cut { p.meta { "(the first " (MAX_VIEW_BYTES / 1024) " KiB)" } }
        pre.file #file { (text) }
    };
    layout::page(&q.path, Nav::Agents, body).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{list, open_beneath, Kind};
    use std::path::Path;

    #[test]
    fn links_are_listed_but_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("lib")).unwrap();
        std::fs::write(ws.join("main.py"), "print(1)").unwrap();
        std::fs::write(dir.path().join("secret"), "s3cret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), ws.join("lib/leak")).unwrap();
        std::os::unix::fs::symlink(dir.path(), ws.join("up")).unwrap();
        let entries = list(&ws).unwrap();
        let kinds: Vec<(&str, Kind)> = entries.iter().map(|e| (e.path.as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("lib", Kind::Dir),
                ("lib/leak", Kind::Link),
                ("main.py", Kind::File),
                ("up", Kind::Link)
            ]
        );
        assert!(open_beneath(&ws, Path::new("main.py")).is_ok());
        assert!(open_beneath(&ws, Path::new("lib/leak")).is_err());
        assert!(open_beneath(&ws, Path::new("up/secret")).is_err());
        assert!(open_beneath(&ws, Path::new("lib")).is_err());
    }
}
