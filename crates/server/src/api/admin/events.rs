//! The event log for operators (SPEC §13): pages of events by id, filtered by type
//! and agent, and a live Server-Sent Events stream of them that resumes after the
//! `Last-Event-ID` a reconnecting client sends.

use crate::api::auth::Operator;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{limit, ApiQuery};
use crate::api::schema::Errors;
use crate::api::state::ApiState;
use crate::api::views::EventView;
use crate::store::{EventFilter, EventRecord};
use agora_core::AgentId;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::IntoParams;

/// How often the stream asks the store for new events.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often an idle stream sends a comment, so that proxies and clients can tell
/// a quiet world from a dead connection.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read from the store per poll.
const BATCH: i64 = 500;
/// Longest accepted event type filter.
const MAX_TYPE: usize = 64;

/// Which events to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with an id above this (the last id of the previous page).
    after: Option<i64>,
    /// At most this many (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only events of this type (bid_placed, credits_minted, …); an unknown type
    /// matches nothing.
    #[serde(rename = "type")]
    #[param(pattern = "^[a-z_]{1,64}$")]
    kind: Option<String>,
    /// Only events about this agent.
    agent: Option<i64>,
}

fn filter(after: i64, kind: Option<String>, agent: Option<i64>) -> ApiResult<EventFilter> {
    if let Some(k) = &kind {
        let ok = !k.is_empty()
            && k.len() <= MAX_TYPE
            && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !ok {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("type must be a snake_case event type (at most {MAX_TYPE} characters)"),
            ));
        }
    }
    Ok(EventFilter {
        after,
        kind,
        agent: agent.map(AgentId),
    })
}

/// Events in the order they happened, oldest first.
#[utoipa::path(get, path = "/admin/events", tag = "admin",
    security(("operator_token" = [])), params(EventsQuery),
    responses((status = 200, body = Vec<EventView>), Errors))]
pub(super) async fn list(
    _: Operator,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<Vec<EventView>>> {
    let n = limit(q.limit, 100, 1000)?;
    let f = filter(q.after.unwrap_or(0), q.kind, q.agent)?;
    let rows = s.store.events_matching(&f, n).await?;
    Ok(Json(rows.iter().map(EventView::from).collect()))
}

/// Where a live stream starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Send events with an id above this first (0: the whole log); without it the
    /// stream starts with the next event. A `Last-Event-ID` header wins.
    after: Option<i64>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(pattern = "^[a-z_]{1,64}$")]
    kind: Option<String>,
    /// Only events about this agent.
    agent: Option<i64>,
}

/// One record of the live stream as a Server-Sent Events client parses it (the
/// OpenAPI document describes an event stream by one event).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SseRecord {
    /// The event's id; a reconnecting client sends it back as `Last-Event-ID`.
    pub id: String,
    /// The event's type, e.g. `credits_transferred`.
    pub event: String,
    /// The event as EventView JSON.
    pub data: String,
}

/// The `Last-Event-ID` header a reconnecting EventSource sends.
pub(crate) fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID must be the id of an event (an integer)",
            )
        })
}

/// Live events as Server-Sent Events: each is `id: <event id>`, `event: <type>`,
/// `data: <EventView JSON>`. The store is polled every 250 ms; an idle stream sends
/// a keep-alive comment every 15 s. A client that reconnects with `Last-Event-ID`
/// misses nothing. The stream ends after `[server] event_stream_max_seconds`
/// (default an hour) or when the service stops; clients reconnect.
#[utoipa::path(get, path = "/admin/events/stream", tag = "admin",
    security(("operator_token" = [])),
    params(StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "resume after this event id")),
    responses(
        (status = 200, description = "a stream of `id:`, `event:` and `data:` (EventView JSON) records; it ends after `[server] event_stream_max_seconds`",
            content_type = "text/event-stream", body = SseRecord),
        Errors))]
pub(super) async fn stream(
    _: Operator,
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let after = match (last_event_id(&headers)?, q.after) {
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => s.store.last_event_id().await?,
    };
    Ok(live(s, filter(after, q.kind, q.agent)?))
}

/// The live stream of the events `f` matches, from `f.after` on: the operator's
/// `/admin/events/stream` and the console's feed.
pub(crate) fn live(
    s: ApiState,
    f: EventFilter,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let max = s.config.server.event_stream_max_seconds;
    let tail = Tail {
        ends_at: (max > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(max)),
        state: s,
        filter: f,
        pending: VecDeque::new(),
        polled: false,
    };
    let events = futures_util::stream::unfold(tail, |mut t| async move {
        let e = t.next().await?;
        Some((Ok(sse_event(&e)), t))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The state of one live stream: what is read but not yet sent, and where to read
/// from next.
struct Tail {
    state: ApiState,
    /// When the stream ends (`[server] event_stream_max_seconds`); the client
    /// reconnects with `Last-Event-ID`.
    ends_at: Option<tokio::time::Instant>,
    filter: EventFilter,
    pending: VecDeque<EventRecord>,
    /// False until the first read, which happens without waiting.
    polled: bool,
}

impl Tail {
    /// The next event, waiting for one as long as it takes; `None` ends the stream
    /// (the service is stopping or the store failed; the client may reconnect and
    /// resume).
    async fn next(&mut self) -> Option<EventRecord> {
        loop {
            if self
                .ends_at
                .is_some_and(|at| tokio::time::Instant::now() >= at)
            {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.polled {
                let end = self.ends_at;
                let expired = async move {
                    match end {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = self.state.stopped() => return None,
                    _ = expired => return None,
                }
            }
            self.polled = true;
            match self.state.store.events_matching(&self.filter, BATCH).await {
                Ok(rows) => {
                    if let Some(last) = rows.last() {
                        self.filter.after = last.id;
                    }
                    self.pending.extend(rows);
                }
                Err(e) => {
                    tracing::warn!(component = "api", error = %e, "event stream ends: store read failed");
                    return None;
                }
            }
        }
    }
}

fn sse_event(e: &EventRecord) -> Event {
    let data = serde_json::to_string(&EventView::from(e)).unwrap_or_else(|_| "{}".into());
    // A field with a line break would end the record early (and axum refuses it).
    let kind = e.kind.replace(['\n', '\r'], " ");
    Event::default().id(e.id.to_string()).event(kind).data(data)
}
