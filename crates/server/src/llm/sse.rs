//! The upstream's event stream, passed through event by event: each event is
//! forwarded byte for byte as soon as its closing blank line arrives, except the
//! usage-only chunk the proxy asked for on behalf of a client that did not. On the
//! way it notes the usage and what was generated, for the settlement.

use super::usage::{Observed, Usage};
use serde::Deserialize;
use std::borrow::Cow;

/// An upstream line longer than the configured limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// Splits an event stream into events and filters them.
#[derive(Debug)]
pub struct SseFilter {
    /// Bytes of the event not yet complete.
    pending: Vec<u8>,
    /// Where the scan for line ends resumes in `pending`.
    scanned: usize,
    /// Where the current line starts in `pending`.
    line_start: usize,
    hide_usage: bool,
    max_line: usize,
    /// The last usage seen.
    pub usage: Option<Usage>,
    pub observed: Observed,
    /// `data: [DONE]` was seen.
    pub done: bool,
}

#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceView<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaView<'a>>,
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCallView<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallView<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionView<'a>>,
}

#[derive(Deserialize)]
struct FunctionView<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

fn len(s: &Option<Cow<'_, str>>) -> u64 {
    s.as_ref().map_or(0, |s| s.len() as u64)
}

impl SseFilter {
    /// `hide_usage`: drop the usage-only chunk (the client did not ask for it).
    pub fn new(hide_usage: bool, max_line: usize) -> SseFilter {
        SseFilter {
            pending: Vec::new(),
            scanned: 0,
            line_start: 0,
            hide_usage,
            max_line,
            usage: None,
            observed: Observed::default(),
            done: false,
        }
    }

    /// Takes the next bytes from the upstream and appends to `out` every event
    /// they complete, in order, minus a hidden usage chunk.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), LineTooLong> {
        self.pending.extend_from_slice(bytes);
        let mut event_start = 0;
        while let Some(off) = memchr(b'\n', &self.pending[self.scanned..]) {
            let nl = self.scanned + off;
            let line = &self.pending[self.line_start..nl];
            let blank = line.is_empty() || line == b"\r";
            self.scanned = nl + 1;
            self.line_start = nl + 1;
            if blank {
                let end = nl + 1;
                let keep = self.inspect(event_start, end);
                if keep {
                    out.extend_from_slice(&self.pending[event_start..end]);
                }
                event_start = end;
            }
        }
        self.scanned = self.pending.len();
        if self.pending.len() - self.line_start > self.max_line {
            return Err(LineTooLong);
        }
        if event_start > 0 {
            self.pending.drain(..event_start);
            self.scanned -= event_start;
            self.line_start -= event_start;
        }
        Ok(())
    }

    /// The upstream ended: forwards whatever incomplete event is left, as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            return;
        }
        let end = self.pending.len();
        if self.inspect(0, end) {
            out.extend_from_slice(&self.pending);
        }
        self.pending.clear();
        self.scanned = 0;
        self.line_start = 0;
    }

    /// Looks at the event `pending[start..end]`; false when it is to be hidden.
    fn inspect(&mut self, start: usize, end: usize) -> bool {
        let data = event_data(&self.pending[start..end]);
        if data.is_empty() {
            return true;
        }
        if data.as_ref() == b"[DONE]" {
            self.done = true;
            return true;
        }
        let Ok(chunk) = serde_json::from_slice::<ChunkView<'_>>(&data) else {
            return true;
        };
        let choices = chunk.choices.as_deref().unwrap_or(&[]);
        if !choices.is_empty() {
            self.observed.chunks += 1;
            for c in choices {
                if let Some(d) = &c.delta {
                    self.observed.content_bytes += len(&d.content) + len(&d.reasoning_content);
                    for t in d.tool_calls.iter().flatten() {
                        if let Some(f) = &t.function {
                            self.observed.content_bytes += len(&f.name) + len(&f.arguments);
                        }
                    }
                }
            }
        }
        match chunk.usage {
            Some(u) => {
                self.usage = Some(u);
                // Only the chunk the proxy added is hidden: usage on a chunk that
                // also carries choices (some servers do that) stays.
                !(self.hide_usage && chunk.choices.is_some() && choices.is_empty())
            }
            None => true,
        }
    }
}

/// The `data:` field of an event: its `data` lines joined by `\n`.
fn event_data(event: &[u8]) -> Cow<'_, [u8]> {
    let mut lines = event
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter_map(|l| l.strip_prefix(b"data:"))
        .map(|l| l.strip_prefix(b" ").unwrap_or(l));
    let Some(first) = lines.next() else {
        return Cow::Borrowed(&[]);
    };
    match lines.next() {
        None => Cow::Borrowed(first),
        Some(second) => {
            let mut joined = first.to_vec();
            for l in std::iter::once(second).chain(lines) {
                joined.push(b'\n');
                joined.extend_from_slice(l);
            }
            Cow::Owned(joined)
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n\
        : a comment\n\n\
        data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":null}\r\n\r\n\
        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n\
        data: [DONE]\n\n";

    const USAGE_EVENT: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n";

    fn run(pieces: &[&[u8]], hide: bool) -> (Vec<u8>, SseFilter) {
        let mut f = SseFilter::new(hide, 1 << 20);
        let mut out = Vec::new();
        for p in pieces {
            f.push(p, &mut out).unwrap();
        }
        f.finish(&mut out);
        (out, f)
    }

    #[test]
    fn the_usage_chunk_is_hidden_only_when_asked() {
        let (out, f) = run(&[STREAM.as_bytes()], true);
        assert_eq!(out, STREAM.replace(USAGE_EVENT, "").as_bytes());
        assert_eq!(f.usage.unwrap().total(), Some(7));
        assert!(f.done);
        assert_eq!(f.observed.chunks, 2);
        assert_eq!(f.observed.content_bytes, 5);
        let (out, _) = run(&[STREAM.as_bytes()], false);
        assert_eq!(out, STREAM.as_bytes());
    }

    #[test]
    fn an_overlong_line_is_refused() {
        let mut f = SseFilter::new(true, 8);
        assert_eq!(
            f.push(b"data: 0123456789", &mut Vec::new()),
            Err(LineTooLong)
        );
    }

    #[test]
    fn an_unterminated_tail_is_forwarded_at_the_end() {
        let (out, f) = run(&[b"data: [DONE]\n"], true);
        assert_eq!(out, b"data: [DONE]\n");
        assert!(f.done);
    }

    proptest! {
        #[test]
        fn any_chunking_forwards_the_same_bytes(cuts in proptest::collection::vec(0usize..STREAM.len(), 0..12), hide: bool) {
            let bytes = STREAM.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts { pieces.push(&bytes[at..c.max(at)]); at = c.max(at); }
            pieces.push(&bytes[at..]);
            let (out, f) = run(&pieces, hide);
            let want = if hide { STREAM.replace(USAGE_EVENT, "") } else { STREAM.to_string() };
            prop_assert_eq!(out, want.into_bytes());
            prop_assert_eq!(f.usage.and_then(|u| u.total()), Some(7));
        }
    }
}
