//! `agora human`: the human's side of the AttentionManager (SPEC §7) in a
//! terminal, for machines without a browser. A loop: show the active prompt with
//! its agent, bid and the queue behind it, ask for the three scores and a reason,
//! rate it, show what was minted, go on to the next; wait while nothing is queued.
//!
//! Prompt content is written by agents, so it is shown only after
//! [`text::sanitize`]: an agent cannot move the cursor, clear the screen, retitle
//! the window or hide text. There is no skip: a prompt stays active until it is
//! rated or expires (`prompt_ttl`), and the API has no way to pass it by.

use crate::client::{Client, ClientArgs, ClientError};
use crate::text::{self, ago, credits, now_micros, one_line};
use crate::Globals;
use clap::Args;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Args)]
pub struct HumanArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// How often to look for a prompt while the queue is empty, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

/// The longest reason the server takes, in characters.
const MAX_REASON_CHARS: usize = 2000;

/// Lines of standard input, read on a thread of their own so that waiting for a
/// prompt can also notice `q` and the end of input.
struct Input {
    rx: mpsc::UnboundedReceiver<String>,
    /// Lines that arrived while no question was asked (piped answers).
    ahead: VecDeque<String>,
    ended: bool,
    /// A person typing, rather than a pipe or file.
    terminal: bool,
}

impl Input {
    fn stdin() -> Input {
        let (tx, rx) = mpsc::unbounded_channel();
        let terminal = std::io::stdin().is_terminal();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Input {
            rx,
            ahead: VecDeque::new(),
            ended: false,
            terminal,
        }
    }

    /// The answer to the question just asked; `None` at the end of input. Piped
    /// answers are echoed, so that a transcript reads like a session at a terminal.
    async fn line(&mut self) -> Option<String> {
        let l = match self.ahead.pop_front() {
            Some(l) => Some(l),
            None if self.ended => None,
            None => {
                let l = self.rx.recv().await;
                self.ended = l.is_none();
                l
            }
        };
        if !self.terminal || l.is_none() {
            println!("{}", one_line(l.as_deref().unwrap_or("")));
        }
        l
    }
}

/// What the human answered to one question.
enum Answer<T> {
    Value(T),
    Quit,
}

/// Writes a question without a line break and makes sure it is seen.
fn ask(question: &str) {
    print!("{question}");
    let _ = std::io::stdout().flush();
}

fn is_quit(line: &str) -> bool {
    matches!(line.trim(), "q" | "quit" | "exit")
}

/// Asks for a whole score from 0 to 10 until one is given.
async fn score(input: &mut Input, name: &str) -> Answer<i64> {
    loop {
        ask(&format!("{name} (0-10): "));
        let Some(line) = input.line().await else {
            return Answer::Quit;
        };
        let t = line.trim();
        if is_quit(t) {
            return Answer::Quit;
        }
        match t.parse::<i64>() {
            Ok(n) if (0..=10).contains(&n) => return Answer::Value(n),
            _ if t == "s" || t == "skip" => println!(
                "  there is no skip: the active prompt stays until it is rated or expires \
                 (q quits)"
            ),
            _ => println!(
                "  {:?} is not a whole number from 0 to 10; try again (q quits)",
                one_line(t)
            ),
        }
    }
}

/// Asks for the optional reason until it fits.
async fn reason(input: &mut Input) -> Answer<String> {
    loop {
        ask("reason (optional, Enter for none): ");
        let Some(line) = input.line().await else {
            return Answer::Quit;
        };
        let r = line.trim().to_string();
        let n = r.chars().count();
        if n <= MAX_REASON_CHARS {
            return Answer::Value(r);
        }
        println!("  the reason is {n} characters; at most {MAX_REASON_CHARS}");
    }
}

/// What was rated in this session.
#[derive(Default)]
struct Tally {
    rated: u64,
    minted: Vec<String>,
}

pub async fn run(g: &Globals, a: &HumanArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(g, &a.client)?;
    let mut input = Input::stdin();
    let poll = Duration::from_millis(a.poll_ms.max(50));
    let mut tally = Tally::default();
    println!(
        "rating prompts at {}: three scores 0-10 and an optional reason; q quits",
        c.base()
    );
    loop {
        let Some((prompt, behind)) = next_prompt(&c, &mut input, poll).await? else {
            break;
        };
        show(&c, &prompt, behind).await;
        let id = prompt["id"].as_i64().unwrap_or(0);
        let mut scores = [0i64; 3];
        let mut quit = false;
        for (i, name) in ["interesting", "useful", "understandable"]
            .iter()
            .enumerate()
        {
            match score(&mut input, name).await {
                Answer::Value(n) => scores[i] = n,
                Answer::Quit => {
                    quit = true;
                    break;
                }
            }
        }
        if quit {
            break;
        }
        let Answer::Value(why) = reason(&mut input).await else {
            break;
        };
        let body = json!({"prompt_id": id, "interesting": scores[0], "useful": scores[1],
                          "understandable": scores[2], "reason": why});
        match c.post::<Value>("/human/reward", &body).await {
            Ok(r) => {
                println!(
                    "rated prompt {id}: {} credits minted to agent {}, its bid of {} burned",
                    credits(&r["reward"]),
                    r["agent"],
                    credits(&r["escrow_burned"])
                );
                tally.rated += 1;
                tally.minted.push(credits(&r["reward"]));
            }
            Err(e)
                if e.code() == Some("prompt_not_active") || e.code() == Some("unknown_prompt") =>
            {
                println!(
                    "prompt {id} is no longer active (it expired or was rated elsewhere); \
                     nothing was paid"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "rated {} prompt(s){}",
        tally.rated,
        if tally.minted.is_empty() {
            String::new()
        } else {
            format!(", minted {}", tally.minted.join(" + "))
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The active prompt and how many wait behind it, waiting as long as the queue is
/// empty; `None` when the human quits (or the input ends) meanwhile.
async fn next_prompt(
    c: &Client,
    input: &mut Input,
    poll: Duration,
) -> Result<Option<(Value, usize)>, ClientError> {
    let mut told = false;
    loop {
        let q: Value = c.get("/human/queue?limit=1000").await?;
        if q["active"].is_object() {
            let behind = q["pending"].as_array().map_or(0, Vec::len);
            return Ok(Some((q["active"].clone(), behind)));
        }
        if input.ended && input.ahead.is_empty() {
            return Ok(None);
        }
        if !told {
            println!(
                "no prompt waiting; checking every {} ms (q quits)",
                poll.as_millis()
            );
            told = true;
        }
        let sleep = tokio::time::sleep(poll);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                line = input.rx.recv(), if !input.ended => match line {
                    None => input.ended = true,
                    Some(l) if is_quit(&l) => return Ok(None),
                    Some(l) if input.terminal => {
                        if !l.trim().is_empty() {
                            println!("  (nothing to rate yet; q quits)");
                        }
                    }
                    // Piped answers for prompts still to come.
                    Some(l) => input.ahead.push_back(l),
                },
            }
        }
    }
}

/// Prints a prompt: who sent it, what it bid, how long it has waited, the queue
/// behind it, and its content as inert text.
async fn show(c: &Client, p: &Value, behind: usize) {
    let now = now_micros();
    let agent = p["agent"].as_i64().unwrap_or(0);
    let about = match c.get::<Value>(&format!("/admin/agents/{agent}")).await {
        Ok(d) => {
            let parent = d["agent"]["parent"]
                .as_i64()
                .map_or_else(|| "no parent".to_string(), |p| format!("child of {p}"));
            format!(
                " ({parent}, {} executions, balance {})",
                d["agent"]["execution_count"],
                credits(&d["balance"]["balance"])
            )
        }
        Err(_) => String::new(),
    };
    let waited = p["activated_at"]
        .as_i64()
        .or(p["submitted_at"].as_i64())
        .map(|t| format!(", active since {}", ago(now, t)))
        .unwrap_or_default();
    println!();
    println!("── prompt {} from agent {agent}{about}", p["id"]);
    println!(
        "   bid {} credits (escrowed){waited}; {behind} more waiting",
        credits(&p["bid_amount"])
    );
    println!("{}", render_content(&p["content"]));
    println!("──");
}

/// A prompt's content as plain, inert text: a string as it is; an object's
/// `title` and `text` first, its other fields as `key: value`; anything else as
/// indented JSON.
fn render_content(content: &Value) -> String {
    let body = match content {
        Value::String(s) => s.clone(),
        Value::Object(m) => {
            let mut out = String::new();
            if let Some(Value::String(t)) = m.get("title") {
                out.push_str(&format!("# {t}\n"));
            }
            if let Some(Value::String(t)) = m.get("text") {
                out.push_str(t);
                out.push('\n');
            }
            for (k, v) in m {
                let plain = matches!(v, Value::String(_));
                if plain && (k == "title" || k == "text") {
                    continue;
                }
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => serde_json::to_string_pretty(other).unwrap_or_default(),
                };
                out.push_str(&format!("{k}: {v}\n"));
            }
            out.trim_end().to_string()
        }
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    text::sanitize(&body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn content_is_shown_as_inert_text() {
        let c = json!({"title": "Report\u{1b}]0;pwned\u{7}", "text": "line 1\nline\u{1b}[2J 2",
                       "agent": 3, "kind": "economy_report"});
        let shown = render_content(&c);
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{shown:?}"
        );
        assert!(
            shown.starts_with("# Report\\u{1b}]0;pwned\\u{7}\nline 1\nline\\u{1b}[2J 2\n"),
            "{shown}"
        );
        assert!(
            shown.contains("agent: 3") && shown.contains("kind: economy_report"),
            "{shown}"
        );
        assert_eq!(render_content(&json!("plain\u{9b}2J")), "plain\\u{9b}2J");
        assert_eq!(
            render_content(&json!([1, "\u{1b}"])),
            "[\n  1,\n  \"\\u001b\"\n]"
        );
    }
}
