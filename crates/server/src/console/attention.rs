//! The Attention page (SPEC §7, §12): the prompt the human is asked to rate now,
//! with its agent, bid and content, the rating form (interesting, useful,
//! understandable 0–10 and a reason; Tab between fields, Enter rates), and the
//! queue behind it. A rating goes through the same path as `POST /human/reward`
//! and answers with a redirect to the page, which then shows what the rating paid
//! and the next prompt; `console.js` reloads the page when the active prompt
//! changes by itself (a new prompt, an expiry), so nothing needs a manual reload.

use super::auth::Human;
use super::content;
use super::layout::{self, agent_link, badge, credits, Nav};
use crate::api::human::rate as rate_prompt;
use crate::api::{ApiError, ApiState};
use crate::store::{PromptRecord, StoreError};
use agora_core::{PromptId, PromptStatus};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use maud::{html, Markup};
use serde::Deserialize;

/// How many waiting prompts the page lists.
const QUEUE_ROWS: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Flash {
    /// The prompt just rated.
    rated: Option<i64>,
}

/// What the human typed, kept when a rating is refused so nothing is lost.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct RatingForm {
    #[serde(default)]
    prompt_id: String,
    #[serde(default)]
    interesting: String,
    #[serde(default)]
    useful: String,
    #[serde(default)]
    understandable: String,
    #[serde(default)]
    reason: String,
}

/// The page.
pub(super) async fn page(_: Human, State(s): State<ApiState>, Query(f): Query<Flash>) -> Response {
    match render(&s, f.rated, &RatingForm::default(), None).await {
        Ok(page) => page.into_response(),
        Err(e) => layout::failed(e, Nav::Attention),
    }
}

/// The active prompt's id and the queue's length, for `console.js` to notice a
/// change.
pub(super) async fn state(_: Human, State(s): State<ApiState>) -> Response {
    match s.store.attention_state().await {
        Ok(st) => {
            Json(serde_json::json!({"active": st.active.map(|p| p.0), "waiting": st.waiting}))
                .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A rating from the form.
pub(super) async fn rate(
    _: Human,
    State(s): State<ApiState>,
    Form(f): Form<RatingForm>,
) -> Response {
    let Ok(prompt) = f.prompt_id.trim().parse::<i64>() else {
        return layout::error(
            StatusCode::BAD_REQUEST,
            Nav::Attention,
            "the form names no prompt",
        );
    };
    let scores = [&f.interesting, &f.useful, &f.understandable].map(|v| score(v));
    let reason = Some(f.reason.clone()).filter(|r| !r.trim().is_empty());
    match rate_prompt(&s, prompt, scores, reason).await {
        Ok(out) => Redirect::to(&format!("/console?rated={}", out.prompt)).into_response(),
        Err(e) => {
            let status = e.status;
            match render(&s, None, &f, Some(&e.message)).await {
                Ok(page) => (status, page).into_response(),
                Err(e) => layout::failed(e, Nav::Attention),
            }
        }
    }
}

/// A typed score: empty is missing, anything but a number is not finite (and
/// refused with the API's message).
fn score(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.parse::<f64>().unwrap_or(f64::NAN))
    }
}

async fn render(
    s: &ApiState,
    rated: Option<i64>,
    form: &RatingForm,
    error: Option<&str>,
) -> Result<axum::response::Html<String>, StoreError> {
    let queue = s.store.attention_queue(QUEUE_ROWS + 1).await?;
    let waiting_total = s.store.attention_state().await?.waiting;
    let (active, waiting): (Vec<&PromptRecord>, Vec<&PromptRecord>) =
        queue.iter().partition(|p| p.status == PromptStatus::Active);
    let active = active.first().copied();
    let just_rated = match rated {
        Some(id) => match s.store.response(PromptId(id)).await {
            Ok(r) => r.map(|r| (id, r)),
            Err(StoreError::Rejected(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let agent = match active {
        Some(p) => Some(s.store.agent(p.agent).await?),
        None => None,
    };
    let rated_agent = match &just_rated {
        Some((id, _)) => s.store.prompt(PromptId(*id)).await.ok().map(|p| p.agent.0),
        None => None,
    };
    let body = html! {
        div #attention data-active=(active.map(|p| p.id.0.to_string()).unwrap_or_default()) {
            @if let Some((id, r)) = &just_rated {
                p.flash role="status" {
                    "Prompt #" (id) " rated "
                    (r.interesting) "/" (r.useful) "/" (r.understandable)
                    @if let Some(a) = rated_agent { ": agent " (agent_link(a)) " received " }
                    @else { ": " }
                    (credits(r.credits_awarded)) "."
                }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            @match (active, &agent) {
                (Some(p), Some(a)) => {
                    section.prompt aria-labelledby="active-heading" {
                        h1 #active-heading { "Prompt #" (p.id.0) }
                        p.meta {
                            "from agent " (agent_link(p.agent.0)) " " (badge(a.status.as_str()))
                            " · bid " (credits(p.bid_amount))
                            " · submitted " (layout::time(p.submitted_at))
                        }
                        @if a.status.as_str() != "alive" {
                            p.warning { "This agent has died since it asked. A rating still mints its reward, to a dead account." }
                        }
                        div.content #prompt-content { (content::render(&p.content)) }
                    }
                    (rating_form(p, form))
                }
                _ => {
                    section.empty-queue {
                        h1 { "Nothing to rate" }
                        p { "No agent is asking for attention right now. This page shows the next prompt as soon as one arrives." }
                    }
                }
            }
            (queue_table(&waiting, waiting_total))
        }
    };
    Ok(layout::page("Attention", Nav::Attention, body))
}

fn rating_form(p: &PromptRecord, form: &RatingForm) -> Markup {
    // What was typed is kept only for the prompt it was typed for: a rating
    // refused because its prompt is gone must not carry over to the next one.
    let same = form.prompt_id.trim() == p.id.0.to_string();
    let value = |v: &str| if same { v.to_string() } else { String::new() };
    html! {
        form #rating method="post" action="/console/rate" {
            input type="hidden" name="prompt_id" value=(p.id.0);
            fieldset {
                legend { "Your rating (0–10 each; Tab moves on, Enter rates)" }
                div.scores {
                    label { "Interesting"
                        input #interesting type="number" name="interesting" min="0" max="10" step="1"
                            required autofocus inputmode="numeric" value=(value(&form.interesting)); }
                    label { "Useful"
                        input #useful type="number" name="useful" min="0" max="10" step="1"
                            required inputmode="numeric" value=(value(&form.useful)); }
                    label { "Understandable"
                        input #understandable type="number" name="understandable" min="0" max="10" step="1"
                            required inputmode="numeric" value=(value(&form.understandable)); }
                }
                label.reason { "Reason (optional, the agent reads it)"
                    input #reason type="text" name="reason" maxlength="2000" value=(value(&form.reason)); }
                button #rate type="submit" { "Rate" }
            }
        }
    }
}

fn queue_table(waiting: &[&PromptRecord], total: i64) -> Markup {
    html! {
        section.queue {
            h2 { "Waiting (" (total) ")"
                @if total > QUEUE_ROWS { " " span.meta { "the first " (QUEUE_ROWS) ", best bid first" } } }
            @if waiting.is_empty() {
                p { "No other prompt is waiting." }
            } @else {
                table {
                    thead { tr { th { "prompt" } th { "agent" } th.num { "bid" } th { "submitted" } th { "content" } } }
                    tbody {
                        @for p in waiting.iter().take(QUEUE_ROWS as usize) {
                            tr {
                                td { "#" (p.id.0) }
                                td { (agent_link(p.agent.0)) }
                                td.num { (credits(p.bid_amount)) }
                                td { (layout::time(p.submitted_at)) }
                                td.preview { (content::preview(&p.content, 120)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
