//! The console's login: the operator token, checked once on `/console/login` and
//! then carried by an `HttpOnly`, `SameSite=Strict` session cookie. [`Human`] is
//! the extractor every page takes; without a valid cookie the browser is sent to
//! the login page and back to where it was going afterwards. A rotated operator
//! token (`agora token rotate`) logs every browser out at once.

use super::layout;
use crate::api::ApiState;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::header::{COOKIE as COOKIE_HEADER, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

/// The session cookie's name.
pub const COOKIE: &str = "agora_console";

/// A browser logged in with the operator token.
#[derive(Debug, Clone, Copy)]
pub struct Human;

/// The value of the session cookie, if the request has one.
fn session(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(COOKIE_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

impl FromRequestParts<ApiState> for Human {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        match session(parts) {
            Some(token) if state.operator.verify(token) => Ok(Human),
            _ => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/console");
                let to = format!("/console/login?next={}", query_escape(here));
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after logging in: a console page, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/console",
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

fn login_form(next: &str, error: Option<&str>) -> maud::Markup {
    html! {
        section.login {
            h1 { "agora console" }
            p { "Sign in with the operator token (printed by " code { "agora up" } " on first start, kept in "
                code { "<data dir>/operator.token" } ")." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Operator token" }
                input #token type="password" name="token" autocomplete="current-password" autofocus required;
                button type="submit" { "Sign in" }
            }
        }
    }
}

pub(super) async fn login_page(
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    layout::bare("Sign in", login_form(next, None)).into_response()
}

pub(super) async fn login(State(s): State<ApiState>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref()).to_string();
    let token = f.token.trim();
    if token.is_empty() || !s.operator.verify(token) {
        let page = layout::bare(
            "Sign in",
            login_form(&next, Some("That is not the operator token.")),
        );
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

pub(super) async fn logout() -> Response {
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("agora_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{query_escape, safe_next};

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(
            safe_next(Some("/console/agents?x=1")),
            "/console/agents?x=1"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/console//evil",
            "/other",
            "/console\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn escapes_a_query() {
        assert_eq!(
            query_escape("/console/agents?sort=id&x=<"),
            "/console/agents%3Fsort%3Did%26x%3D%3C"
        );
    }
}
