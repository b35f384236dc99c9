//! The line format of `system.log`: one flat JSON object per event with `timestamp`,
//! `level`, `target`, `message`, the event's fields, and the fields of every span
//! it happened in (the cycle, the execution, the request), so that each line
//! carries the ids in scope and `jq 'select(.execution == 7)'` finds all of one
//! execution. A field of an inner span overrides an outer one, and the event's own
//! fields override both.

use serde_json::{Map, Number, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Ids that are numbers in the store; written as JSON numbers whether a call site
/// recorded them as a number or with `%` (as text), so one query finds them all.
const NUMERIC_IDS: [&str; 3] = ["agent", "execution", "cycle"];

/// The event formatter of `system.log`; spans' fields must be recorded with
/// [`JsonFields`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        line.insert("timestamp".into(), Value::String(time));
        let meta = event.metadata();
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_string()));
        line.extend(flat_fields::<S, JsonFields>(ctx, event));
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// The fields of every span the event happened in, from the outermost, then the
/// event's own (`message` among them), each later one replacing an earlier one of
/// the same name; the ids as numbers. The spans' fields must have been recorded
/// as JSON objects by the layer's `N`.
pub(crate) fn flat_fields<S, N>(ctx: &FmtContext<'_, S, N>, event: &Event<'_>) -> Map<String, Value>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    let mut line = Map::new();
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            let extensions = span.extensions();
            let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                continue;
            };
            // A span without fields formats as an empty string, not `{}`.
            if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                line.extend(fields);
            }
        }
    }
    event.record(&mut Fields(&mut line));
    for key in NUMERIC_IDS {
        if let Some(v) = line.get_mut(key) {
            if let Some(n) = v.as_str().and_then(|s| s.parse::<i64>().ok()) {
                *v = Value::Number(n.into());
            }
        }
    }
    line
}

/// Collects an event's fields into the line.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.put(field, v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::Number(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::Number(value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}
