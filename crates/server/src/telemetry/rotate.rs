//! `system.log` rotated by size: when the next line would take the file past its
//! limit, `system.log` becomes `system.log.1`, `.1` becomes `.2`, and so on up to
//! `max_files`; the oldest is deleted. The current file keeps its name, so the path
//! `agora up` prints stays right and `tail -F` follows it across rotations.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An append-only file that rotates itself by size. Each `write` is one whole log
/// line (the writer thread hands over one formatted event at a time), and a line is
/// never split across two files.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    written: u64,
    /// 0: never rotated.
    max_bytes: u64,
    /// Rotated files kept beside the current one.
    max_files: u32,
}

impl RotatingFile {
    /// Opens (or creates) `path` for appending; what it already holds counts
    /// towards `max_bytes`.
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            written,
            max_bytes,
            max_files,
        })
    }

    /// `system.log.<n>`.
    pub fn rotated_path(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            remove_if_exists(&self.rotated_path(self.max_files))?;
            for n in (1..self.max_files).rev() {
                let from = self.rotated_path(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated_path(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated_path(1))?;
        }
        self.file = open_append(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len() as u64;
        if self.max_bytes > 0 && self.written > 0 && self.written + len > self.max_bytes {
            // A file that cannot be rotated (renamed away, a full disk) is still
            // written to: losing the rotation is better than losing the log.
            if let Err(e) = self.rotate() {
                eprintln!("cannot rotate {}: {e}", self.path.display());
                self.written = 0;
            }
        }
        self.file.write_all(buf)?;
        self.written += len;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_keeping_whole_lines_and_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.log");
        std::fs::write(&path, "old-0\n").unwrap();
        // 7-byte lines, 14 bytes per file: two lines each.
        let mut f = RotatingFile::open(&path, 14, 2).unwrap();
        for i in 1..=6 {
            f.write_all(format!("line-{i}\n").as_bytes()).unwrap();
        }
        f.flush().unwrap();
        // The existing line counted: old-0 + line-1 filled the first file.
        assert_eq!(read(&path), "line-6\n");
        assert_eq!(read(&f.rotated_path(1)), "line-4\nline-5\n");
        assert_eq!(read(&f.rotated_path(2)), "line-2\nline-3\n");
        assert!(!f.rotated_path(3).exists(), "older files are deleted");
    }

    #[test]
    fn a_line_longer_than_the_limit_gets_a_file_of_its_own_and_zero_means_never() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.log");
        let mut f = RotatingFile::open(&path, 4, 3).unwrap();
        f.write_all(b"a very long line\n").unwrap();
        f.write_all(b"b\n").unwrap();
        assert_eq!(read(&path), "b\n");
        assert_eq!(read(&f.rotated_path(1)), "a very long line\n");

        let other = dir.path().join("never.log");
        let mut f = RotatingFile::open(&other, 0, 3).unwrap();
        for _ in 0..100 {
            f.write_all(b"0123456789\n").unwrap();
        }
        assert_eq!(read(&other).len(), 1100);
        assert!(!f.rotated_path(1).exists());
    }

    #[test]
    fn no_history_kept_when_max_files_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.log");
        let mut f = RotatingFile::open(&path, 4, 0).unwrap();
        f.write_all(b"one\n").unwrap();
        f.write_all(b"two\n").unwrap();
        assert_eq!(read(&path), "two\n");
        assert!(!f.rotated_path(1).exists());
    }
}
