//! Text for a terminal: agent-written strings made inert (no control character or
//! escape sequence reaches the terminal), aligned tables, and ages of timestamps.

use std::fmt::Write;

/// `s` with every character that could drive a terminal or disguise text shown
/// as a visible escape: C0 and C1 controls (ESC, CSI, BEL, backspace, carriage
/// return …), DEL, and the invisible format characters that reorder or hide text
/// (bidirectional overrides, zero-width characters). Line breaks stay; a tab
/// becomes spaces.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push_str("    "),
            c if c.is_control() || is_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// [`sanitize`] for one table cell or line: line breaks shown as `⏎`.
pub fn one_line(s: &str) -> String {
    sanitize(s).replace('\n', "⏎")
}

/// Invisible characters that change how the text around them is shown.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{ad}'
        | '\u{61c}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}')
}

/// The age of a time in microseconds since the epoch, relative to `now`
/// ("12s ago", "3m ago", "5h ago", "2d ago").
pub fn ago(now_micros: i64, then_micros: i64) -> String {
    let s = (now_micros - then_micros).max(0) / 1_000_000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A credit amount (as the server sends it, a decimal string) for display.
pub fn credits(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => one_line(s),
        serde_json::Value::Null => "-".into(),
        other => one_line(&other.to_string()),
    }
}

/// A float for display with at most `decimals` decimals, trailing zeros dropped.
pub fn decimal(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// How a column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table of rows under headers, every column as wide as its widest cell.
#[derive(Debug)]
pub struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[(&'static str, Align)]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; cells are made inert with [`one_line`].
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| one_line(c)).collect());
    }

    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([self.headers[i].0.len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let mut out = String::new();
        let mut line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let (w, align) = (widths[i], self.headers[i].1);
                let pad = w.saturating_sub(cell.chars().count());
                if i > 0 {
                    l.push_str("  ");
                }
                match align {
                    Align::Left => {
                        l.push_str(cell);
                        l.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        l.push_str(&" ".repeat(pad));
                        l.push_str(cell);
                    }
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(self.headers.iter().map(|h| h.0).collect());
        for r in &self.rows {
            line(r.iter().map(String::as_str).collect());
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_cannot_reach_the_terminal() {
        let evil = "hi\x1b[2J\x1b]0;title\x07\r\x08\u{9b}31m\u{7f}\u{202e}txt.exe\u{200b}";
        let shown = sanitize(evil);
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{shown:?}"
        );
        assert!(!shown.contains('\u{202e}') && !shown.contains('\u{200b}'));
        assert_eq!(
            shown,
            "hi\\u{1b}[2J\\u{1b}]0;title\\u{7}\\u{d}\\u{8}\\u{9b}31m\\u{7f}\\u{202e}txt.exe\\u{200b}"
        );
        assert_eq!(sanitize("a\tb\nc é 日本"), "a    b\nc é 日本");
        assert_eq!(one_line("a\nb"), "a⏎b");
    }

    #[test]
    fn tables_align_columns_by_their_widest_cell() {
        let mut t = Table::new(&[("id", Align::Right), ("name", Align::Left)]);
        t.row(vec!["7".into(), "seven".into()]);
        t.row(vec!["12".into(), "x\x1by".into()]);
        assert_eq!(t.render(), "id  name\n 7  seven\n12  x\\u{1b}y\n");
    }

    #[test]
    fn ages_and_decimals_read_naturally() {
        let s = 1_000_000;
        assert_eq!(ago(100 * s, 95 * s), "5s ago");
        assert_eq!(ago(4000 * s, 100 * s), "1h ago");
        assert_eq!(ago(0, 5 * s), "0s ago");
        assert_eq!(ago(200_000 * s, 0), "2d ago");
        assert_eq!(decimal(1.5, 6), "1.5");
        assert_eq!(decimal(1000.0, 6), "1000");
        assert_eq!(decimal(0.1234567, 2), "0.12");
    }
}
