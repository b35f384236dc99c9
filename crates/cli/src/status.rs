//! `agora status`: a running world in one screen, read from `/healthz`, `/metrics`
//! (population, credits, prices, utilisation, executions by outcome),
//! `/admin/paused`, `/human/queue` and `/admin/audit`, as text or (`--json`) one
//! JSON object; either way it exits 1 when the ledger audit fails.

use crate::client::{Client, ClientArgs};
use crate::text::{decimal, one_line, Align, Table};
use crate::Globals;
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the status as one JSON object instead of text (same exit status).
    #[arg(long)]
    pub json: bool,
}

/// The samples of a Prometheus text exposition: metric name → the value of its one
/// label (`kind`, `status`, `resource` …; "" without labels; all labels as written
/// when there are several) → value.
type Samples = BTreeMap<String, BTreeMap<String, f64>>;

/// Reads the `name{label="x"} value` and `name value` lines of `/metrics`.
fn parse_metrics(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let key = match labels.split_once("=\"") {
            Some((_, rest)) if !rest.contains("\",") => rest.trim_end_matches('"'),
            _ => labels,
        };
        out.entry(name.to_string())
            .or_default()
            .insert(key.to_string(), v);
    }
    out
}

/// The first of `names` (metric, label value) that the exposition has: names
/// changed between versions, and a client may talk to either.
fn figure(m: &Samples, names: &[(&str, &str)]) -> f64 {
    names
        .iter()
        .find_map(|(name, key)| m.get(*name).and_then(|k| k.get(*key)))
        .copied()
        .unwrap_or(0.0)
}

/// Every sample of the first of `names` that the exposition has.
fn family(m: &Samples, names: &[&str]) -> BTreeMap<String, f64> {
    names
        .iter()
        .find_map(|n| m.get(*n))
        .cloned()
        .unwrap_or_default()
}

pub async fn run(g: &Globals, a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(g, &a.client)?;
    let report = collect(&c).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(if report["audit"]["clean"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Everything `agora status` shows, as the JSON `--json` prints: credits as decimal
/// strings (as the API writes them), counts and ratios as numbers, the audit as
/// `/admin/audit` answers it.
async fn collect(c: &Client) -> anyhow::Result<Value> {
    let health: Value = c.get("/healthz").await?;
    let m = parse_metrics(&c.text("/metrics").await?);
    let paused: Value = c.get("/admin/paused").await?;
    let queue: Value = c.get("/human/queue?limit=1000").await?;
    let audit: Value = c.get("/admin/audit").await?;
    let cr = |name: &str, old: &str| decimal(figure(&m, &[(name, ""), ("agora_credits", old)]), 6);
    let markets: Vec<Value> = family(&m, &["agora_market_price_credits"])
        .iter()
        .map(|(resource, price)| {
            json!({
                "resource": resource,
                "price": decimal(*price, 6),
                "utilisation": figure(&m, &[("agora_market_utilisation_ratio", resource)]),
            })
        })
        .collect();
    let executions: serde_json::Map<String, Value> = family(&m, &["agora_executions"])
        .into_iter()
        .filter(|(_, n)| *n > 0.0)
        .map(|(k, n)| (k, json!(n as u64)))
        .collect();
    let active = match queue["active"]["id"].as_i64() {
        Some(id) => json!({"prompt": id, "agent": queue["active"]["agent"]}),
        None => Value::Null,
    };
    Ok(json!({
        "address": c.base(),
        "store": health["store"],
        "cycle": health["cycle"].as_i64().unwrap_or(0),
        "paused": paused["paused"] == true,
        "population": {
            "alive": figure(&m, &[("agora_agents", "alive")]) as u64,
            "dead": figure(&m, &[("agora_agents", "dead")]) as u64,
        },
        "credits": {
            "balances": cr("agora_agent_balance_credits", "agent_balances"),
            "held": cr("agora_agent_held_credits", "agent_held"),
            "minted": cr("agora_minted_credits", "minted"),
            "burned": cr("agora_burned_credits", "burned"),
        },
        "markets": markets,
        "executions": executions,
        "attention": {
            "active": active,
            "waiting": queue["pending"].as_array().map_or(0, Vec::len),
            "pending_bids": figure(&m, &[("agora_pending_bids", ""), ("agora_pending", "bids")]) as u64,
        },
        "audit": audit,
    }))
}

/// The report as one screen of text.
fn print_text(r: &Value) {
    let text = |v: &Value| one_line(v.as_str().unwrap_or("?"));
    let loop_state = if r["paused"] == true {
        "PAUSED (no market is cleared; `POST /admin/resume` resumes)"
    } else {
        "running"
    };
    println!("agora at {} ({})", text(&r["address"]), text(&r["store"]));
    println!("cycle        {}, allocation {loop_state}", r["cycle"]);
    let p = &r["population"];
    println!("population   {} alive, {} dead", p["alive"], p["dead"]);
    let cr = &r["credits"];
    println!(
        "credits      balances {}, held {}, minted {}, burned {}",
        text(&cr["balances"]),
        text(&cr["held"]),
        text(&cr["minted"]),
        text(&cr["burned"])
    );
    let mut markets = Table::new(&[
        ("resource", Align::Left),
        ("price", Align::Right),
        ("utilisation", Align::Right),
    ]);
    for market in r["markets"].as_array().into_iter().flatten() {
        let u = market["utilisation"].as_f64().unwrap_or(0.0);
        markets.row(vec![
            text(&market["resource"]),
            text(&market["price"]),
            format!("{}%", decimal(u * 100.0, 1)),
        ]);
    }
    println!("markets");
    for line in markets.render().lines() {
        println!("  {line}");
    }
    let by_outcome: Vec<String> = r["executions"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "executions   {}",
        if by_outcome.is_empty() {
            "none yet".to_string()
        } else {
            by_outcome.join(", ")
        }
    );
    let at = &r["attention"];
    let active = match at["active"]["prompt"].as_i64() {
        Some(id) => format!("prompt {id} of agent {} active", at["active"]["agent"]),
        None => "no prompt active".to_string(),
    };
    println!(
        "attention    {active}, {} waiting behind it; {} pending bids",
        at["waiting"], at["pending_bids"]
    );
    let audit = &r["audit"];
    if audit["clean"] == true {
        println!(
            "audit        clean ({} accounts, {} holds, {} transfers)",
            audit["accounts"], audit["holds"], audit["transfers"]
        );
    } else {
        let v = audit["violations"].as_array().cloned().unwrap_or_default();
        println!("audit        FAILED: {} violation(s)", v.len());
        for x in v {
            println!(
                "  {}: {}",
                one_line(x["code"].as_str().unwrap_or("?")),
                one_line(x["message"].as_str().unwrap_or(""))
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines_are_read_by_name_and_label_under_either_naming() {
        let old = "# HELP agora_agents Agents\n# TYPE agora_agents gauge\n\
                   agora_agents{kind=\"alive\"} 3\nagora_agents{kind=\"dead\"} 12\n\
                   agora_credits{kind=\"minted\"} 1500.25\nagora_cycle 42\n\
                   agora_api_requests_total{method=\"GET\",route=\"/x\",status=\"200\"} 5\n# EOF\n";
        let new = "agora_agents{status=\"alive\"} 3\nagora_minted_credits 1500.25\n\
                   agora_market_price_credits{resource=\"tokens\"} 0.001\n";
        let minted = [("agora_minted_credits", ""), ("agora_credits", "minted")];
        for text in [old, new] {
            let m = parse_metrics(text);
            assert_eq!(figure(&m, &[("agora_agents", "alive")]), 3.0);
            assert_eq!(figure(&m, &minted), 1500.25);
        }
        let m = parse_metrics(old);
        assert_eq!(figure(&m, &[("agora_agents", "dead")]), 12.0);
        assert_eq!(figure(&m, &[("agora_cycle", "")]), 42.0);
        assert_eq!(figure(&m, &[("agora_agents", "missing")]), 0.0);
        assert_eq!(m["agora_api_requests_total"].len(), 1);
        let m = parse_metrics(new);
        assert_eq!(family(&m, &["agora_market_price_credits"])["tokens"], 0.001);
    }
}
