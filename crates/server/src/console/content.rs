//! What an agent shows the human, rendered so that it can only ever be read, never
//! run (SPEC §12). A prompt's content is any JSON:
//!
//! - a string is plain text;
//! - an object may have a `title` (a heading), a `text` (plain text) and a
//!   `markdown` (Markdown, rendered; raw HTML in it is shown as text, images as
//!   links, and only `http`, `https` and `mailto` links are kept); its other fields
//!   follow as JSON;
//! - anything else is shown as indented JSON.
//!
//! Every string reaches the page through maud, which escapes it; the Markdown
//! renderer is given no raw HTML to pass through.

use maud::{html, Markup, PreEscaped};
use pulldown_cmark::{CowStr, Event, LinkType, Parser, Tag, TagEnd};
use serde_json::Value;

/// The whole content of a prompt.
pub fn render(content: &Value) -> Markup {
    match content {
        Value::String(s) => html! { pre.text { (s) } },
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str);
            let text = map.get("text").and_then(Value::as_str);
            let markdown = map.get("markdown").and_then(Value::as_str);
            let rest: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, v)| {
                    !(matches!(k.as_str(), "title" | "text" | "markdown") && v.is_string())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            html! {
                @if let Some(t) = title { h2.prompt-title { (t) } }
                @if let Some(t) = text { pre.text { (t) } }
                @if let Some(m) = markdown { div.markdown { (self::markdown(m)) } }
                @if !rest.is_empty() { pre.json { (pretty(&Value::Object(rest))) } }
            }
        }
        other => html! { pre.json { (pretty(other)) } },
    }
}

/// A one-line preview of a prompt's content, at most `max` characters.
pub fn preview(content: &Value, max: usize) -> String {
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .get("title")
            .or_else(|| map.get("text"))
            .or_else(|| map.get("markdown"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| content.to_string()),
        other => other.to_string(),
    };
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > max {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

/// Markdown to HTML with raw HTML turned into text, images into links, and
/// unsafe links into their text.
fn markdown(source: &str) -> Markup {
    let mut dropped_links = 0usize;
    let events = Parser::new(source).filter_map(|e| match e {
        Event::Html(s) | Event::InlineHtml(s) => Some(Event::Text(s)),
        Event::Start(Tag::Image {
            dest_url, title, ..
        }) => Some(Event::Start(Tag::Link {
            link_type: LinkType::Inline,
            dest_url: if safe_url(&dest_url) {
                dest_url
            } else {
                CowStr::Borrowed("#")
            },
            title,
            id: CowStr::Borrowed(""),
        })),
        Event::End(TagEnd::Image) => Some(Event::End(TagEnd::Link)),
        Event::Start(Tag::Link { ref dest_url, .. }) if !safe_url(dest_url) => {
            dropped_links += 1;
            None
        }
        Event::End(TagEnd::Link) if dropped_links > 0 => {
            dropped_links -= 1;
            None
        }
        other => Some(other),
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    PreEscaped(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{preview, render};
    use serde_json::json;

    #[test]
    fn markup_in_any_field_is_text() {
        let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        for content in [
            json!(evil),
            json!({"title": evil, "text": evil}),
            json!({"markdown": evil}),
            json!({"markdown": format!("# hi\n\n{evil}\n\n[x](javascript:alert(3)) ![i](javascript:alert(4))")}),
            json!({"other": evil}),
            json!([evil]),
        ] {
            let html = render(&content).into_string();
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("javascript:"), "{html}");
            assert!(
                html.contains("&lt;script&gt;")
                    || html.contains("\\u003c")
                    || html.contains("&lt;"),
                "{html}"
            );
        }
    }

    #[test]
    fn markdown_is_rendered() {
        let html =
            render(&json!({"markdown": "# Report\n\n- **a**\n- [site](https://example.org)"}))
                .into_string();
        assert!(html.contains("<h1>Report</h1>"), "{html}");
        assert!(html.contains("<strong>a</strong>"), "{html}");
        assert!(html.contains("href=\"https://example.org\""), "{html}");
    }

    #[test]
    fn previews_are_one_short_line() {
        assert_eq!(preview(&json!({"title": "a\n b", "text": "x"}), 10), "a b");
        assert_eq!(preview(&json!("abcdefghijkl"), 5), "abcde…");
    }
}
