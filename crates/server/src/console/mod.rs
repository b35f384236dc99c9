//! The console (SPEC §12): server-rendered pages for the human and the operator,
//! served by the System Service's own router under `/console`.
//!
//! - **Attention** (`/console`): the active prompt, the queue behind it and the
//!   rating form; the next prompt appears after a rating without a reload.
//! - **Agents** (`/console/agents`, `/console/agents/{id}`,
//!   `/console/executions/{id}`): the population, one agent in full, an
//!   execution's log, a read-only view of a workspace.
//! - **Market** (`/console/market`) and **Economy** (`/console/economy`): charts
//!   drawn by the server as SVG, the bid book, a live feed of events.
//!
//! Pages are `maud` templates compiled into the binary, which escape every value
//! they print; the only script is `static/console.js` (no build step). Every page
//! sits behind the operator token: `/console/login` checks it and sets it as an
//! `HttpOnly`, `SameSite=Strict` cookie. Answers carry a Content-Security-Policy
//! that allows scripts, styles and connections from this origin only, so even
//! markup that slipped through could not run.

mod agents;
mod attention;
mod auth;
mod charts;
mod content;
mod economy;
mod layout;
mod market;
mod workspace;

use crate::api::ApiState;
use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

pub use auth::COOKIE;

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");
const ICON: &str = include_str!("static/favicon.svg");

/// The largest form the console accepts (a rating, a login).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// What the browser may load for a console page: this origin only, no inline
/// script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, to be merged into the System Service router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(attention::page))
        .route("/console/attention/state", get(attention::state))
        .route("/console/rate", post(attention::rate))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/agents", get(agents::list))
        .route("/console/agents/{id}", get(agents::detail))
        .route("/console/agents/{id}/files", get(workspace::file))
        .route("/console/executions/{id}", get(agents::execution))
        .route("/console/market", get(market::page))
        .route("/console/economy", get(economy::page))
        .route("/console/events/stream", get(economy::stream))
        .route(
            "/console/static/console.css",
            get(|| asset(CSS, "text/css")),
        )
        .route(
            "/console/static/favicon.svg",
            get(|| asset(ICON, "image/svg+xml")),
        )
        .route(
            "/console/static/console.js",
            get(|| asset(JS, "text/javascript")),
        )
        .layer(middleware::from_fn(headers))
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (CACHE_CONTROL, HeaderValue::from_static("max-age=300")),
        ],
        body,
    )
        .into_response()
}

/// The security headers of every console answer.
async fn headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
