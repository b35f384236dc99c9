//! `agora events export`: the event log as JSON lines (one event object per line,
//! oldest first, exactly as `GET /admin/events` sends it), paged by id, and with
//! `--follow` the live stream after it until Ctrl-C.

use crate::client::{Client, ClientArgs, ClientError};
use crate::Globals;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// `agora events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Write events as JSON lines (oldest first) to stdout or --output, for
    /// analysis and replay. Pages through the whole log; --follow then streams new
    /// events until Ctrl-C.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Write to this file (created or truncated) instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Only events with an id above this (resume an earlier export from its last id).
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// Only events of this type (bid_placed, prompt_submitted, human_reward_issued, …).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Only events about this agent.
    #[arg(long, value_name = "AGENT_ID")]
    pub agent: Option<i64>,
    /// Events asked for per request (1-1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub page_size: i64,
    /// After the log, keep writing new events as they happen (Server-Sent Events)
    /// until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
}

pub async fn run(g: &Globals, c: &EventsCommand) -> anyhow::Result<ExitCode> {
    match c {
        EventsCommand::Export(a) => export(g, a).await,
    }
}

/// Where the lines go; a reader that went away (`| head`) ends the export quietly.
struct Sink {
    out: Box<dyn Write>,
    written: u64,
    last: i64,
}

impl Sink {
    /// Writes one event; false when the reader has gone.
    fn event(&mut self, e: &Value) -> anyhow::Result<bool> {
        let line = serde_json::to_string(e).context("cannot encode an event")?;
        match writeln!(self.out, "{line}") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e).context("cannot write the export"),
        }
        self.written += 1;
        if let Some(id) = e["id"].as_i64() {
            self.last = id;
        }
        Ok(true)
    }

    fn flush(&mut self) -> anyhow::Result<bool> {
        match self.out.flush() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("cannot write the export"),
        }
    }
}

/// The filter part of a query string.
fn filters(a: &ExportArgs) -> String {
    let mut q = String::new();
    if let Some(k) = &a.kind {
        // Event types are snake_case; anything else is refused by the server.
        q.push_str(&format!("&type={}", encode(k)));
    }
    if let Some(id) = a.agent {
        q.push_str(&format!("&agent={id}"));
    }
    q
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn export(g: &Globals, a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(g, &a.client)?;
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut sink = Sink {
        out,
        written: 0,
        last: a.after,
    };
    let q = filters(a);
    // A follower stops cleanly on Ctrl-C from its first moment, also while it is
    // still paging through what happened before it: the handler is installed
    // before the first request.
    let mut interrupt = if a.follow {
        Some(signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?)
    } else {
        None
    };
    let work = async {
        loop {
            let page: Vec<Value> = c
                .get(&format!(
                    "/admin/events?after={}&limit={}{q}",
                    sink.last, a.page_size
                ))
                .await?;
            for e in &page {
                if !sink.event(e)? {
                    return Ok(false);
                }
            }
            if !sink.flush()? {
                return Ok(false);
            }
            if (page.len() as i64) < a.page_size {
                break;
            }
        }
        if a.follow {
            eprintln!(
                "exported {} events; following new ones (Ctrl-C stops)",
                sink.written
            );
            follow(&c, &mut sink, &q).await?;
        }
        anyhow::Ok(true)
    };
    // `false`: the reader has gone (a closed pipe), nothing more to say.
    let go_on = match interrupt.as_mut() {
        Some(interrupt) => tokio::select! {
            r = work => r?,
            _ = interrupt.recv() => true,
        },
        None => work.await?,
    };
    if !go_on {
        return Ok(ExitCode::SUCCESS);
    }
    sink.flush()?;
    if a.output.is_some() || a.follow {
        eprintln!(
            "exported {} events, the last id {}",
            sink.written, sink.last
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the live stream after the last exported event; reconnects after the
/// server ends a stream (it does after `[server] event_stream_max_seconds`) or
/// restarts, resuming after the last id written so that nothing is missed or
/// repeated. Returns when the reader has gone.
async fn follow(c: &Client, sink: &mut Sink, q: &str) -> anyhow::Result<()> {
    let mut lost = false;
    loop {
        let path = format!("/admin/events/stream?after={}{q}", sink.last);
        let mut r = match c.stream(&path).await {
            Ok(r) => r,
            Err(e @ ClientError::Api { .. }) => return Err(e.into()),
            Err(e) => {
                if !lost {
                    eprintln!("{e}; retrying every 2 s");
                    lost = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if lost {
            eprintln!("reconnected; resuming after event {}", sink.last);
            lost = false;
        }
        let mut parser = SseParser::default();
        loop {
            let chunk = match r.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) | Err(_) => break,
            };
            for data in parser.feed(&chunk) {
                let Ok(e) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                // A reconnect may overlap what was written.
                if e["id"].as_i64().is_some_and(|id| id <= sink.last) {
                    continue;
                }
                if !sink.event(&e)? || !sink.flush()? {
                    return Ok(());
                }
            }
        }
    }
}

/// Splits a Server-Sent Events byte stream into the `data` of its records.
#[derive(Debug, Default)]
struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Takes the next bytes; returns the data of every record they complete.
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        // Records end with a blank line; a CR only ever ends a line (JSON escapes
        // its own), so dropping them turns CRLF line ends into LF.
        self.buf.extend(bytes.iter().filter(|b| **b != b'\r'));
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let record: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&record[..end]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_split_across_chunks_come_out_whole() {
        let mut p = SseParser::default();
        assert!(p
            .feed(b": keep-alive\n\nid: 1\nevent: x\ndata: {\"id\"")
            .is_empty());
        assert_eq!(
            p.feed(b":1}\n\nid: 2\r\ndata: {\"id\":2}\r\n\r\n"),
            ["{\"id\":1}", "{\"id\":2}"]
        );
        assert!(p.feed(b"data: a\ndata: b\n").is_empty());
        assert_eq!(p.feed(b"\n"), ["a\nb"]);
    }

    #[test]
    fn filters_are_encoded_into_the_query() {
        assert_eq!(encode("prompt_submitted"), "prompt_submitted");
        assert_eq!(encode("a&b=c"), "a%26b%3Dc");
    }
}
