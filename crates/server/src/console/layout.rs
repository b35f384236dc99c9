//! The frame every console page shares (navigation, stylesheet, script) and the
//! small formatting helpers pages use: credits, times, bundles, status badges,
//! error pages.

use agora_core::{Bundle, Credits};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use std::time::{Duration, UNIX_EPOCH};

/// The page a navigation link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Attention,
    Agents,
    Market,
    Economy,
}

const NAV: [(Nav, &str, &str); 4] = [
    (Nav::Attention, "/console", "Attention"),
    (Nav::Agents, "/console/agents", "Agents"),
    (Nav::Market, "/console/market", "Market"),
    (Nav::Economy, "/console/economy", "Economy"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · agora" }
            link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

/// A whole page with the navigation, `current` highlighted.
pub fn page(title: &str, current: Nav, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    header.top {
                        a.brand href="/console" { "agora" }
                        nav {
                            @for (nav, href, label) in NAV {
                                @if nav == current {
                                    a.current href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                        form.logout method="post" action="/console/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

/// A page without navigation (the login).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { main { (body) } }
            }
        }
        .into_string(),
    )
}

/// An error page with its status.
pub fn error(status: StatusCode, current: Nav, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        page(
            title,
            current,
            html! { h1 { (title) } p.error role="alert" { (message) } },
        ),
    )
        .into_response()
}

/// Credits as the API prints them, with the unit.
pub fn credits(c: Credits) -> Markup {
    html! { span.credits { (c) " cr" } }
}

/// Credits from micro-credits.
pub fn micros(m: i64) -> Markup {
    credits(Credits::from_micros(m))
}

/// A time in microseconds since the epoch as UTC, to the second.
pub fn time(micros: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    let text = agora_sandbox::rfc3339(at);
    text.get(..19).unwrap_or(&text).replace('T', " ")
}

/// An optional time, or a dash.
pub fn maybe_time(micros: Option<i64>) -> String {
    micros.map(time).unwrap_or_else(|| "—".into())
}

/// A duration between two times in microseconds, e.g. `1.25 s`.
pub fn duration(from: Option<i64>, to: Option<i64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => format!("{:.2} s", (b - a) as f64 / 1e6),
        _ => "—".into(),
    }
}

/// A bundle in a line: `cpu 2 s · 256 MB · 1000 tok · attention 0.1`.
pub fn bundle(b: &Bundle) -> String {
    let s = b.to_spec();
    let mut parts = vec![
        format!("cpu {} s", s.cpu_seconds),
        format!("{} MB", s.memory_mb),
    ];
    if s.tokens > 0.0 {
        parts.push(format!("{} tok", s.tokens));
    }
    if s.attention_share > 0.0 {
        parts.push(format!("attention {}", s.attention_share));
    }
    parts.join(" · ")
}

/// A status as a coloured badge (`alive`, `dead`, `finished`, `failed`, …).
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// An agent as a link to its page.
pub fn agent_link(id: i64) -> Markup {
    html! { a href={ "/console/agents/" (id) } { "#" (id) } }
}

/// A failed read or write as an error page with the status the API would give.
pub fn failed(e: impl Into<crate::api::ApiError>, current: Nav) -> Response {
    let e: crate::api::ApiError = e.into();
    error(e.status, current, &e.message)
}

/// A numeric id from a page's path, or the 400 page saying what it should be.
pub fn path_id(text: &str, what: &str) -> Result<i64, Box<Response>> {
    text.parse::<i64>().map_err(|_| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            Nav::Agents,
            &format!("{what} id is a number"),
        ))
    })
}
