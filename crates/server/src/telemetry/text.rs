//! The readable form of the log on stderr: one line per event with the time of day,
//! the level, the component, the message, then the ids in scope (cycle, agent,
//! execution, request) and the event's other fields, each once:
//!
//! ```text
//! 18:26:34.477  INFO sandbox: execution created -> running cycle=1 agent=1 execution=1 pid=32398
//! ```
//!
//! The fields are the same flat set `system.log` carries ([`super::json`]), so span
//! names and the fields every span repeats never reach the terminal. The level is
//! coloured when stderr is a terminal.

use super::json::flat_fields;
use serde_json::{Map, Value};
use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The ids shown first, in this order, when they are in scope.
const IDS: [&str; 4] = ["cycle", "agent", "execution", "request"];

/// Span fields for the stderr layer, recorded as JSON like the file's but stored
/// under a type of their own, so the two layers never write into each other's
/// span extensions.
#[derive(Debug, Default)]
pub struct ScopeFields(JsonFields);

impl<'w> FormatFields<'w> for ScopeFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        self.0.format_fields(writer, fields)
    }

    /// Merges fields recorded after the span was created (`span.record`) into its
    /// JSON object, a later value replacing an earlier one.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        self.0.format_fields(Writer::new(&mut added), fields)?;
        let Ok(Value::Object(added)) = serde_json::from_str::<Value>(&added) else {
            return Ok(());
        };
        let mut merged = match serde_json::from_str::<Value>(&current.fields) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        merged.extend(added);
        current.fields = Value::Object(merged).to_string();
        Ok(())
    }
}

/// The event formatter of stderr; spans' fields must be recorded with
/// [`ScopeFields`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Readable {
    /// Colour the level (stderr is a terminal).
    pub ansi: bool,
}

impl<S> FormatEvent<S, ScopeFields> for Readable
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, ScopeFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = flat_fields::<S, ScopeFields>(ctx, event);
        let meta = event.metadata();
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        // RFC 3339 (`2026-11-26T18:26:34.477123Z`): the time of day to the millisecond.
        let time = time.get(11..23).unwrap_or(&time);
        let component = match fields.remove("component") {
            Some(Value::String(c)) => c,
            _ => meta.target().to_string(),
        };
        let message = match fields.remove("message") {
            Some(Value::String(m)) => m,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let level = meta.level();
        if self.ansi {
            write!(
                writer,
                "\x1b[2m{time}\x1b[0m {}{level:>5}\x1b[0m",
                colour(*level)
            )?;
        } else {
            write!(writer, "{time} {level:>5}")?;
        }
        write!(writer, " {component}: {message}")?;
        for key in IDS {
            if let Some(v) = fields.remove(key) {
                write!(writer, " {key}={}", show(&v))?;
            }
        }
        for (key, v) in &fields {
            write!(writer, " {key}={}", show(v))?;
        }
        writeln!(writer)
    }
}

/// A field's value as `key=value` shows it: text bare unless it has spaces or
/// quotes (then quoted), anything else as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() && !s.contains([' ', '"', '=']) => s.clone(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::telemetry::json::FlatJson;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn a_line_has_the_component_message_and_each_id_once() {
        let (text, json) = (Buffer::default(), Buffer::default());
        let (t, j) = (text.clone(), json.clone());
        // Both layers, as `init` installs them: neither may disturb the other.
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(ScopeFields::default())
                    .event_format(Readable { ansi: false })
                    .with_writer(move || t.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(FlatJson)
                    .with_writer(move || j.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let cycle = tracing::info_span!(
                "cycle",
                component = "orchestrator",
                cycle = tracing::field::Empty
            );
            cycle.record("cycle", 7);
            let _c = cycle.enter();
            let exec = tracing::info_span!(
                "execution",
                component = "orchestrator",
                agent = 3,
                execution = 9
            );
            let _e = exec.enter();
            tracing::info!(
                component = "sandbox",
                pid = 42,
                note = "two words",
                "execution started"
            );
            tracing::warn!(agent = 4, "an id of its own");
            drop(_e);
            drop(_c);
            tracing::info!("outside every span");
        });
        let text = text.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let (time, rest) = lines[0].split_at(12);
        assert!(
            time.len() == 12 && time.as_bytes()[2] == b':' && time.as_bytes()[8] == b'.',
            "{time}"
        );
        assert_eq!(
            rest,
            r#"  INFO sandbox: execution started cycle=7 agent=3 execution=9 note="two words" pid=42"#
        );
        // The spans' component applies; the event's own id wins over theirs.
        assert!(
            lines[1].ends_with("  WARN orchestrator: an id of its own cycle=7 agent=4 execution=9"),
            "{}",
            lines[1]
        );
        // Without a component, the target names the line.
        assert!(
            lines[2].ends_with("  INFO agora_server::telemetry::text::tests: outside every span"),
            "{}",
            lines[2]
        );
        // The file's lines are unchanged by the second layer: one JSON object each,
        // with the recorded cycle and every id once.
        let json = json.text();
        let first: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["cycle"], 7);
        assert_eq!(first["agent"], 3);
        assert_eq!(first["component"], "sandbox");
        assert_eq!(first["message"], "execution started");
    }
}
