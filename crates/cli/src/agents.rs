//! `agora agents`: the population as a table (or, `--json`, a JSON array), read
//! page by page from `GET /admin/agents`; children are counted from every agent's
//! parent.

use crate::client::{Client, ClientArgs};
use crate::text::{ago, credits, now_micros, Align, Table};
use crate::Globals;
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::collections::HashMap;
use std::process::ExitCode;

/// Which agents to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    Alive,
    Dead,
    All,
}

#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Which agents to list.
    #[arg(long, value_enum, default_value = "all")]
    pub status: StatusFilter,
    /// At most this many rows (alive agents first, richest first; then the dead,
    /// most recent death first).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print the rows as a JSON array (each `/admin/agents`' object plus its
    /// `children` count) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Agents per request; the endpoint's maximum.
const PAGE: usize = 1000;

pub async fn run(g: &Globals, a: &AgentsArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(g, &a.client)?;
    // Every agent, whatever the filter: a dead child still counts as a child.
    let mut all: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let page: Vec<Value> = c
            .get(&format!("/admin/agents?after={after}&limit={PAGE}"))
            .await?;
        let n = page.len();
        if let Some(last) = page.last().and_then(|s| s["agent"]["id"].as_i64()) {
            after = last;
        }
        all.extend(page);
        if n < PAGE {
            break;
        }
    }
    let mut children: HashMap<i64, usize> = HashMap::new();
    for s in &all {
        if let Some(p) = s["agent"]["parent"].as_i64() {
            *children.entry(p).or_default() += 1;
        }
    }
    let (alive, dead) = all
        .iter()
        .partition::<Vec<&Value>, _>(|s| s["agent"]["status"] == "alive");
    let mut shown: Vec<&Value> = all
        .iter()
        .filter(|s| match a.status {
            StatusFilter::All => true,
            StatusFilter::Alive => s["agent"]["status"] == "alive",
            StatusFilter::Dead => s["agent"]["status"] != "alive",
        })
        .collect();
    shown.sort_by_key(|s| sort_key(s));
    let total = shown.len();
    shown.truncate(a.limit);
    if a.json {
        let rows: Vec<Value> = shown
            .iter()
            .map(|s| {
                let mut row = (*s).clone();
                let id = s["agent"]["id"].as_i64().unwrap_or(0);
                row["children"] = children.get(&id).copied().unwrap_or(0).into();
                row
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }

    let now = now_micros();
    let mut t = Table::new(&[
        ("id", Align::Right),
        ("status", Align::Left),
        ("balance", Align::Right),
        ("held", Align::Right),
        ("executions", Align::Right),
        ("children", Align::Right),
        ("last execution", Align::Left),
        ("parent", Align::Right),
        ("death", Align::Left),
    ]);
    for s in &shown {
        let ag = &s["agent"];
        let id = ag["id"].as_i64().unwrap_or(0);
        t.row(vec![
            id.to_string(),
            ag["status"].as_str().unwrap_or("?").to_string(),
            credits(&s["balance"]["balance"]),
            credits(&s["balance"]["held"]),
            ag["execution_count"].as_i64().unwrap_or(0).to_string(),
            children.get(&id).copied().unwrap_or(0).to_string(),
            ag["last_execution_at"]
                .as_i64()
                .map_or_else(|| "never".to_string(), |at| ago(now, at)),
            ag["parent"]
                .as_i64()
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
            match (ag["death_reason"].as_str(), ag["death_at"].as_i64()) {
                (Some(why), Some(at)) => format!("{why}, {}", ago(now, at)),
                (Some(why), None) => why.to_string(),
                _ => String::new(),
            },
        ]);
    }
    print!("{}", t.render());
    let more = if total > shown.len() {
        format!("; {} more not shown (--limit)", total - shown.len())
    } else {
        String::new()
    };
    println!("{} alive, {} dead{more}", alive.len(), dead.len());
    Ok(ExitCode::SUCCESS)
}

/// Alive before dead; the alive richest first, the dead most recently dead first;
/// then by id.
fn sort_key(s: &Value) -> (bool, i64, i64) {
    let ag = &s["agent"];
    let id = ag["id"].as_i64().unwrap_or(0);
    if ag["status"] == "alive" {
        let micros = s["balance"]["balance"]
            .as_str()
            .and_then(|b| agora_core::Credits::parse(b).ok())
            .map_or(0, |c| c.micros());
        (false, -micros, id)
    } else {
        (true, -ag["death_at"].as_i64().unwrap_or(0), id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alive_agents_come_first_richest_first_then_the_recently_dead() {
        let a = |id: i64, status: &str, balance: &str, death_at: Option<i64>| {
            json!({"agent": {"id": id, "status": status, "death_at": death_at},
                   "balance": {"balance": balance}})
        };
        let mut v = [
            a(1, "alive", "10", None),
            a(2, "dead", "0", Some(5)),
            a(3, "alive", "250.5", None),
            a(4, "dead", "0", Some(9)),
            a(5, "alive", "10", None),
        ];
        v.sort_by_key(sort_key);
        let ids: Vec<i64> = v
            .iter()
            .map(|s| s["agent"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [3, 1, 5, 4, 2]);
    }
}
