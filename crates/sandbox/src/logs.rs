//! Execution output: split into lines, sent to the caller as produced (for system.log,
//! §13) and appended to the per-execution log file the operator and the agent read.
//!
//! One writer task per execution owns the file and the caller's channel, so lines from
//! stdout, stderr and the sandbox itself are written in one order and never interleave
//! mid-line.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agora_core::lifecycle::ExecutionStatus;
use agora_core::{AgentId, ExecutionId};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::outcome::ended_line;
use crate::{IsolationReport, Outcome, SandboxError};
use tracing::Instrument;

/// A line longer than this is cut into pieces: an agent printing without newlines must
/// not grow the sandbox's memory without bound.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Buffer between the output readers and the caller. When the caller is slower, the
/// agent's writes block, just as with a full pipe.
const CHANNEL_CAPACITY: usize = 1024;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Written by the sandbox itself: the isolation it provides, how the execution ended.
    Sandbox,
}

impl LogStream {
    pub const fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Sandbox => "sandbox",
        }
    }
}

/// One line of output, tagged with its agent and execution.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub agent: AgentId,
    pub execution: ExecutionId,
    pub stream: LogStream,
    /// Without the trailing newline; invalid UTF-8 replaced.
    pub line: String,
    pub at: SystemTime,
}

/// Turns a byte stream into lines; keeps the unfinished tail between chunks.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk; calls `emit` for each complete (or over-long) line.
    pub(crate) fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(String)) {
        for &b in chunk {
            if b == b'\n' {
                emit(take_line(&mut self.buf));
            } else {
                self.buf.push(b);
                if self.buf.len() >= MAX_LINE_BYTES {
                    emit(take_line(&mut self.buf));
                }
            }
        }
    }

    /// Emits the unterminated last line, if any.
    pub(crate) fn finish(&mut self, mut emit: impl FnMut(String)) {
        if !self.buf.is_empty() {
            emit(take_line(&mut self.buf));
        }
    }
}

fn take_line(buf: &mut Vec<u8>) -> String {
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let line = String::from_utf8_lossy(buf).into_owned();
    buf.clear();
    line
}

/// Sends lines of one execution to its writer task.
#[derive(Clone)]
pub(crate) struct LineSender {
    tx: mpsc::Sender<(LogStream, String, SystemTime)>,
}

impl LineSender {
    /// Queues a line; waits when the caller is behind. A closed writer is ignored: the
    /// execution must not fail because its log consumer went away.
    pub(crate) async fn send(&self, stream: LogStream, line: String) {
        let _ = self.tx.send((stream, line, SystemTime::now())).await;
    }

    /// Reads `reader` to its end, line by line, showing each line to `inspect` first.
    pub(crate) async fn pump(
        &self,
        stream: LogStream,
        mut reader: impl tokio::io::AsyncRead + Unpin,
        mut inspect: impl FnMut(&str),
    ) {
        use tokio::io::AsyncReadExt;
        let mut split = LineSplitter::default();
        let mut chunk = vec![0u8; 8192];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut lines = Vec::new();
                    split.push(&chunk[..n], |l| lines.push(l));
                    for l in lines {
                        inspect(&l);
                        self.send(stream, l).await;
                    }
                }
            }
        }
        let mut last = None;
        split.finish(|l| last = Some(l));
        if let Some(l) = last {
            inspect(&l);
            self.send(stream, l).await;
        }
    }
}

/// The writer task of one execution: file and caller channel.
pub(crate) struct LogPump {
    sender: LineSender,
    task: JoinHandle<u64>,
}

impl LogPump {
    /// Opens (appending) the log file and starts the writer. Returns the pump and the
    /// receiver the caller reads lines from.
    pub(crate) async fn start(
        agent: AgentId,
        execution: ExecutionId,
        log_path: &Path,
    ) -> Result<(LogPump, mpsc::Receiver<LogLine>), SandboxError> {
        if let Some(parent) = log_path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| SandboxError::io(format!("create {}", parent.display()), e))?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .await
            .map_err(|e| SandboxError::io(format!("open {}", log_path.display()), e))?;
        let (tx, mut rx) = mpsc::channel::<(LogStream, String, SystemTime)>(CHANNEL_CAPACITY);
        let (out_tx, out_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let path = log_path.display().to_string();
        let task = tokio::spawn(
            async move {
            let mut file = tokio::io::BufWriter::new(file);
            let mut caller = Some(out_tx);
            let mut count = 0u64;
            let mut file_ok = true;
            while let Some((stream, line, at)) = rx.recv().await {
                count += 1;
                if file_ok {
                    let text = format!("{} {} {}\n", rfc3339(at), stream.as_str(), line);
                    if let Err(e) = file.write_all(text.as_bytes()).await {
                        tracing::warn!(component = "sandbox", path, error = %e, "execution log write failed");
                        file_ok = false;
                    }
                    // Flush whenever we are caught up, so the file is current while the
                    // execution runs without a syscall per line under heavy output.
                    if rx.is_empty() && file.flush().await.is_err() {
                        file_ok = false;
                    }
                }
                if let Some(tx) = &caller {
                    let msg = LogLine {
                        agent,
                        execution,
                        stream,
                        line,
                        at,
                    };
                    if tx.send(msg).await.is_err() {
                        caller = None;
                    }
                }
            }
            let _ = file.flush().await;
            count
        }
        .in_current_span(),
        );
        Ok((
            LogPump {
                sender: LineSender { tx },
                task,
            },
            out_rx,
        ))
    }

    pub(crate) fn sender(&self) -> LineSender {
        self.sender.clone()
    }

    /// Waits until every queued line is written; returns how many lines there were.
    /// Every other [`LineSender`] must have been dropped, or this waits for them.
    pub(crate) async fn finish(self) -> u64 {
        drop(self.sender);
        self.task.await.unwrap_or(0)
    }

    /// Ends an execution's log the way both backends do: the `ended:` line, then
    /// every queued line written; returns the [`Outcome`]. Every other
    /// [`LineSender`] must have been dropped.
    pub(crate) async fn conclude(self, e: Ending) -> Outcome {
        let line = ended_line(
            e.status,
            e.exit_code,
            &e.reason,
            e.cpu_used_ms,
            e.peak_memory_mb,
        );
        self.sender.send(LogStream::Sandbox, line).await;
        let log_lines = self.finish().await;
        Outcome {
            agent: e.agent,
            execution: e.execution,
            status: e.status,
            exit_code: e.exit_code,
            reason: e.reason,
            cpu_used_ms: e.cpu_used_ms,
            peak_memory_mb: e.peak_memory_mb,
            isolation: e.isolation,
            container_id: e.container_id,
            started_at: e.started_at,
            ended_at: SystemTime::now(),
            log_lines,
        }
    }
}

/// What a backend concluded about an execution that ended; [`LogPump::conclude`]
/// turns it into the [`Outcome`].
pub(crate) struct Ending {
    pub agent: AgentId,
    pub execution: ExecutionId,
    pub status: ExecutionStatus,
    pub exit_code: Option<i64>,
    pub reason: String,
    pub cpu_used_ms: Option<u64>,
    pub peak_memory_mb: Option<u64>,
    pub isolation: IsolationReport,
    pub container_id: Option<String>,
    pub started_at: SystemTime,
}

/// `2025-01-31T12:34:56.789Z`, without pulling in a date crate for one format.
pub fn rfc3339(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Howard Hinnant's days-since-epoch to proleptic Gregorian date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splitter_joins_chunks_and_cuts_long_lines() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"hel", |l| out.push(l));
        s.push(b"lo\r\nwor", |l| out.push(l));
        s.push(b"ld\n\ntail", |l| out.push(l));
        s.finish(|l| out.push(l));
        assert_eq!(out, ["hello", "world", "", "tail"]);

        let mut out = Vec::new();
        s.push(&vec![b'x'; MAX_LINE_BYTES + 5], |l| out.push(l));
        s.finish(|l| out.push(l));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE_BYTES);
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }

    #[tokio::test]
    async fn pump_writes_file_and_channel_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/exec.log");
        let (pump, mut rx) = LogPump::start(AgentId(1), ExecutionId(9), &path)
            .await
            .unwrap();
        let s = pump.sender();
        s.pump(LogStream::Stdout, &b"a\nb"[..], |_| {}).await;
        s.send(LogStream::Sandbox, "end".into()).await;
        drop(s);
        assert_eq!(pump.finish().await, 3);
        let mut got = Vec::new();
        while let Some(l) = rx.recv().await {
            assert_eq!(l.execution, ExecutionId(9));
            got.push((l.stream, l.line));
        }
        assert_eq!(got[1], (LogStream::Stdout, "b".to_string()));
        assert_eq!(got[2], (LogStream::Sandbox, "end".to_string()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines().nth(1).unwrap().ends_with(" stdout b"),
            "{text}"
        );
    }
}
