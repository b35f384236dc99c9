//! The Market page (SPEC §5, §12): each market's price and utilisation over the
//! recent cycles as SVG charts, the markets now, and the bid book in clearing
//! order.

use super::auth::Human;
use super::charts::{line_chart, Series, MAX_POINTS};
use super::layout::{self, agent_link, badge, credits, micros, Nav};
use crate::api::ApiState;
use crate::store::{HistoryRow, StoreError};
use agora_core::Resource;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

/// How many recent cycles the charts cover.
pub const CHART_CYCLES: i64 = 2_000;
/// How many pending bids the book lists.
const BOOK_ROWS: i64 = 100;

/// The page.
pub(super) async fn page(_: Human, State(s): State<ApiState>) -> Response {
    match render(&s).await {
        Ok(m) => layout::page("Market", Nav::Market, m).into_response(),
        Err(e) => layout::failed(e, Nav::Market),
    }
}

/// One resource's points from the history rows.
fn series_of(rows: &[HistoryRow], r: Resource, y: impl Fn(&HistoryRow) -> f64) -> Vec<(f64, f64)> {
    rows.iter()
        .filter(|h| h.resource == r.as_str())
        .map(|h| (h.cycle as f64, y(h)))
        .collect()
}

async fn render(s: &ApiState) -> Result<Markup, StoreError> {
    let markets = s.store.markets().await?;
    let history = s
        .store
        .recent_market_history(CHART_CYCLES, MAX_POINTS as i64)
        .await?;
    let book = s.store.bid_book(BOOK_ROWS).await?;
    let pending = s.store.pending_bid_count().await?;
    let utilisation: Vec<Series> = Resource::ALL
        .iter()
        .map(|r| Series::new(r.as_str(), series_of(&history, *r, |h| h.utilisation)))
        .collect();
    Ok(html! {
        h1 { "Market" }
        table #markets {
            thead { tr { th { "resource" } th.num { "price (per unit)" } th.num { "utilisation" }
                th.num { "supply" } th.num { "in use" } th.num { "min" } th.num { "max" } th.num { "cycle" } } }
            tbody { @for m in &markets { tr {
                td { (m.resource) }
                td.num { (micros(m.price)) }
                td.num { (format!("{:.0}%", m.utilisation * 100.0)) }
                td.num { (m.capacity) }
                td.num { (m.in_use) }
                td.num { (micros(m.min_price)) }
                td.num { (micros(m.max_price)) }
                td.num { (m.updated_cycle) }
            } } }
        }
        div.charts {
            (line_chart("Utilisation by market", "cycle", "share of supply", &utilisation))
            @for r in Resource::ALL {
                (line_chart(
                    &format!("Price of {}", r.as_str()),
                    "cycle",
                    "credits per unit",
                    &[Series::new(r.as_str(), series_of(&history, r, |h| h.price as f64 / 1e6))],
                ))
            }
        }
        section {
            h2 { "Bid book (" (pending) " pending"
                @if pending > BOOK_ROWS { ", the first " (BOOK_ROWS) " in clearing order" } ")" }
            table #bid-book {
                thead { tr { th { "bid" } th { "for agent" } th { "payer" } th.num { "amount" } th { "bundle" }
                    th.num { "placed" } th.num { "expires" } th { "status" } } }
                tbody { @for b in &book { tr {
                    td { "#" (b.id.0) }
                    td { (agent_link(b.beneficiary.0)) }
                    td { (agent_link(b.payer.0)) }
                    td.num { (credits(b.amount)) }
                    td { (layout::bundle(&b.bundle)) }
                    td.num { (b.placed_cycle) }
                    td.num { (b.expiry_cycle) }
                    td { (badge(b.status.as_str())) }
                } } }
            }
        }
    })
}
