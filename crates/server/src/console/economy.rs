//! The Economy page (SPEC §12, §13): population and credits (minted, burned, in
//! agents' hands, held) over the recent cycles as SVG charts, the totals now, and
//! a live feed of events: the latest are rendered with the page and `console.js`
//! appends new ones from `/console/events/stream` (Server-Sent Events, the same
//! stream as `/admin/events/stream`).

use super::auth::Human;
use super::charts::{line_chart, Series, MAX_POINTS};
use super::layout::{self, agent_link, micros, Nav};
use super::market::CHART_CYCLES;
use crate::api::admin::events::{last_event_id, live};
use crate::api::{ApiError, ApiState};
use crate::store::{EventFilter, StoreError, WorldPoint};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

/// How many recent events the page is rendered with.
const FEED_ROWS: i64 = 50;

/// The page.
pub(super) async fn page(_: Human, State(s): State<ApiState>) -> Response {
    match render(&s).await {
        Ok(m) => layout::page("Economy", Nav::Economy, m).into_response(),
        Err(e) => layout::failed(e, Nav::Economy),
    }
}

/// The live feed: events after the newest one the page showed (`Last-Event-ID`
/// on a reconnect).
pub(super) async fn stream(_: Human, State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let after = match last_event_id(&headers) {
        Ok(Some(id)) => id,
        Ok(None) => match s.store.last_event_id().await {
            Ok(id) => id,
            Err(e) => return ApiError::from(e).into_response(),
        },
        Err(e) => return e.into_response(),
    };
    live(
        s,
        EventFilter {
            after,
            ..EventFilter::default()
        },
    )
    .into_response()
}

fn series(points: &[WorldPoint], name: &str, y: impl Fn(&WorldPoint) -> i64, scale: f64) -> Series {
    Series::new(
        name,
        points
            .iter()
            .map(|p| (p.cycle as f64, y(p) as f64 / scale))
            .collect(),
    )
}

async fn render(s: &ApiState) -> Result<Markup, StoreError> {
    let stats = s.store.stats().await?;
    let history = s
        .store
        .world_history(CHART_CYCLES, MAX_POINTS as i64)
        .await?;
    let newest = s.store.last_event_id().await?;
    let events = s
        .store
        .events_matching(
            &EventFilter {
                after: (newest - FEED_ROWS).max(0),
                ..EventFilter::default()
            },
            FEED_ROWS,
        )
        .await?;
    let population = [
        series(&history, "alive", |p| p.agents_alive, 1.0),
        series(&history, "dead", |p| p.agents_dead, 1.0),
    ];
    let credits = [
        series(&history, "minted", |p| p.minted, 1e6),
        series(&history, "burned", |p| p.burned, 1e6),
        series(&history, "in agents' hands", |p| p.agent_balances, 1e6),
        series(&history, "held", |p| p.agent_held, 1e6),
    ];
    Ok(html! {
        h1 { "Economy" }
        dl.facts #totals {
            dt { "alive" } dd #alive { (stats.agents_alive) }
            dt { "dead" } dd { (stats.agents_dead) }
            dt { "minted" } dd { (micros(stats.minted)) }
            dt { "burned" } dd { (micros(stats.burned)) }
            dt { "in agents' hands" } dd { (micros(stats.agent_balances)) }
            dt { "held" } dd { (micros(stats.agent_held)) }
            dt { "pending bids" } dd { (stats.pending_bids) }
            dt { "prompts waiting" } dd { (stats.pending_prompts) }
        }
        div.charts {
            (line_chart("Population", "cycle", "agents", &population))
            (line_chart("Credits", "cycle", "credits", &credits))
        }
        section {
            h2 { "Events (live)" }
            table #feed data-stream="/console/events/stream" {
                thead { tr { th { "event" } th { "cycle" } th { "type" } th { "agent" } th { "data" } } }
                tbody {
                    @for e in events.iter().rev() {
                        tr {
                            td { (e.id) }
                            td { (e.cycle.map(|c| c.to_string()).unwrap_or_default()) }
                            td { (e.kind) }
                            td { @if let Some(a) = e.agent_id { (agent_link(a)) } }
                            td.data { (e.data.to_string()) }
                        }
                    }
                }
            }
        }
    })
}
