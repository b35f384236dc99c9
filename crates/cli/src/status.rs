//! `agora status`: a running world in one screen, read from `/healthz`, `/metrics`
//! (population, credits, prices, utilisation, executions by outcome),
//! `/admin/paused`, `/human/queue` and `/admin/audit`.

use crate::client::{Client, ClientArgs};
use crate::text::{decimal, one_line, Align, Table};
use crate::Globals;
use clap::Args;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
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
    let health: Value = c.get("/healthz").await?;
    let m = parse_metrics(&c.text("/metrics").await?);
    let paused: Value = c.get("/admin/paused").await?;
    let queue: Value = c.get("/human/queue?limit=1000").await?;
    let audit: Value = c.get("/admin/audit").await?;

    let cycle = health["cycle"].as_i64().unwrap_or(0);
    let store = one_line(health["store"].as_str().unwrap_or("?"));
    let loop_state = if paused["paused"] == true {
        "PAUSED (no market is cleared; `POST /admin/resume` resumes)"
    } else {
        "running"
    };
    let cr = |name: &str, old: &str| decimal(figure(&m, &[(name, ""), ("agora_credits", old)]), 6);
    println!("agora at {} ({store})", c.base());
    println!("cycle        {cycle}, allocation {loop_state}");
    println!(
        "population   {} alive, {} dead",
        figure(&m, &[("agora_agents", "alive")]),
        figure(&m, &[("agora_agents", "dead")])
    );
    println!(
        "credits      balances {}, held {}, minted {}, burned {}",
        cr("agora_agent_balance_credits", "agent_balances"),
        cr("agora_agent_held_credits", "agent_held"),
        cr("agora_minted_credits", "minted"),
        cr("agora_burned_credits", "burned")
    );
    let mut markets = Table::new(&[
        ("resource", Align::Left),
        ("price", Align::Right),
        ("utilisation", Align::Right),
    ]);
    let prices = family(&m, &["agora_market_price_credits"]);
    for (resource, price) in &prices {
        let u = figure(&m, &[("agora_market_utilisation_ratio", resource)]);
        markets.row(vec![
            resource.clone(),
            decimal(*price, 6),
            format!("{}%", decimal(u * 100.0, 1)),
        ]);
    }
    println!("markets");
    for line in markets.render().lines() {
        println!("  {line}");
    }
    let executions = family(&m, &["agora_executions"]);
    let by_outcome: Vec<String> = executions
        .iter()
        .filter(|(_, n)| **n > 0.0)
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
    let waiting = queue["pending"].as_array().map_or(0, Vec::len);
    let active = match queue["active"]["id"].as_i64() {
        Some(id) => format!(
            "prompt {id} of agent {} active",
            queue["active"]["agent"].as_i64().unwrap_or(0)
        ),
        None => "no prompt active".to_string(),
    };
    println!(
        "attention    {active}, {waiting} waiting behind it; {} pending bids",
        figure(&m, &[("agora_pending_bids", ""), ("agora_pending", "bids")])
    );
    let clean = audit["clean"] == true;
    if clean {
        println!(
            "audit        clean ({} accounts, {} holds, {} transfers)",
            audit["accounts"], audit["holds"], audit["transfers"]
        );
        Ok(ExitCode::SUCCESS)
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
        Ok(ExitCode::from(1))
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
