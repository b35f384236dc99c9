//! The Agents pages (SPEC §12): the population as a table (status, balance, held,
//! executions, children, last execution, death reason) one page at a time in the
//! order asked for; one agent in full (its lineage up to the first agent and its
//! descendants as a tree, executions with their logs, bids, transactions, prompts
//! with their ratings, each table paged newest first, the files of its
//! workspace); and one execution with its log.

use super::auth::Human;
use super::layout::{self, agent_link, badge, credits, Nav};
use super::{content, workspace};
use crate::api::admin::executions::{tail, MAX_LOG_BYTES};
use crate::api::ApiState;
use crate::store::{AgentOrder, Newest, StoreError, TreeNode};
use agora_core::lifecycle::AgentStatus;
use agora_core::{AgentId, ExecutionId};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::HashMap;

/// Rows of the agent table per page.
const PAGE_ROWS: i64 = 100;
/// Rows of each table on an agent's page.
const DETAIL_ROWS: i64 = 50;
/// The most agents a lineage tree shows.
const TREE_NODES: i64 = 500;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    sort: Option<String>,
    page: Option<i64>,
}

/// The agent table.
pub(super) async fn list(
    _: Human,
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Response {
    let status_name = q.status.as_deref().unwrap_or("all");
    let status = match status_name {
        "all" => None,
        other => match AgentStatus::parse(other) {
            Some(s) => Some(s),
            None => {
                return layout::error(
                    StatusCode::BAD_REQUEST,
                    Nav::Agents,
                    &format!("status must be all, alive or dead, not {other:?}"),
                )
            }
        },
    };
    let order = match q.sort.as_deref() {
        None => AgentOrder::default(),
        Some(text) => match AgentOrder::parse(text) {
            Some(o) => o,
            None => {
                return layout::error(
                    StatusCode::BAD_REQUEST,
                    Nav::Agents,
                    &format!(
                        "sort must be id, balance, executions or last_execution, not {text:?}"
                    ),
                )
            }
        },
    };
    let page = q.page.unwrap_or(1);
    if !(1..=1_000_000).contains(&page) {
        return layout::error(
            StatusCode::BAD_REQUEST,
            Nav::Agents,
            "page must be 1 or more",
        );
    }
    let (rows, total) = match s
        .store
        .agent_table(status, order, (page - 1) * PAGE_ROWS, PAGE_ROWS)
        .await
    {
        Ok(r) => r,
        Err(e) => return layout::failed(e, Nav::Agents),
    };
    let pages = (total + PAGE_ROWS - 1) / PAGE_ROWS;
    let link = |status: &str, sort: AgentOrder, page: i64| {
        format!(
            "/console/agents?status={status}&sort={}&page={page}",
            sort.as_str()
        )
    };
    let body = html! {
        h1 { "Agents" }
        p.meta { (total) " agents" @if status.is_some() { " " (status_name) } " · page " (page) " of " (pages.max(1)) }
        nav.filters {
            "Show: "
            @for name in ["all", "alive", "dead"] {
                @if name == status_name { strong { (name) } } @else { a href=(link(name, order, 1)) { (name) } }
                " "
            }
            " · Sort by: "
            @for (o, name) in AgentOrder::ALL {
                @if o == order { strong { (name) } } @else { a href=(link(status_name, o, 1)) { (name) } }
                " "
            }
        }
        table #agents {
            thead { tr {
                th { "agent" } th { "status" } th.num { "balance" } th.num { "held" }
                th.num { "executions" } th.num { "children" } th { "last execution" }
                th { "death reason" } th.num { "earned" }
            } }
            tbody {
                @for r in &rows {
                    tr {
                        td { (agent_link(r.agent.id.0)) }
                        td { (badge(r.agent.status.as_str())) }
                        td.num { (credits(r.balance)) }
                        td.num { (credits(r.held)) }
                        td.num { (r.agent.execution_count) }
                        td.num { (r.children) }
                        td { (layout::maybe_time(r.agent.last_execution_at)) }
                        td { (r.agent.death_reason.map(|d| d.as_str()).unwrap_or("")) }
                        td.num { (credits(r.agent.total_credits_earned)) }
                    }
                }
            }
        }
        nav.pager {
            @if page > 1 { a rel="prev" href=(link(status_name, order, page - 1)) { "← previous" } " " }
            @if page < pages { a rel="next" href=(link(status_name, order, page + 1)) { "next →" } }
        }
    };
    layout::page("Agents", Nav::Agents, body).into_response()
}

/// Where each table of an agent's page starts: below these ids, or at the newest.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DetailQuery {
    executions_before: Option<String>,
    bids_before: Option<String>,
    transactions_before: Option<String>,
    prompts_before: Option<String>,
}

/// The pages of an agent's four tables, each read from its own cursor.
#[derive(Debug, Clone, Copy)]
struct DetailPages {
    executions: Newest,
    bids: Newest,
    transactions: Newest,
    prompts: Newest,
}

impl DetailQuery {
    fn pages(&self) -> Result<DetailPages, String> {
        let page = |name: &str, v: &Option<String>| {
            // `Some(None)`: no cursor, the newest rows; `None`: not a number.
            let before = match v.as_deref() {
                None | Some("") => Some(None),
                Some(text) => text.parse::<i64>().ok().map(Some),
            };
            before
                .and_then(|b| Newest::below_cursor(b, DETAIL_ROWS))
                .ok_or_else(|| {
                    format!(
                        "{name} must be a positive id, not {:?}",
                        v.as_deref().unwrap_or("")
                    )
                })
        };
        Ok(DetailPages {
            executions: page("executions_before", &self.executions_before)?,
            bids: page("bids_before", &self.bids_before)?,
            transactions: page("transactions_before", &self.transactions_before)?,
            prompts: page("prompts_before", &self.prompts_before)?,
        })
    }
}

/// One agent in full.
pub(super) async fn detail(
    _: Human,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let id = match layout::path_id(&id, "an agent") {
        Ok(id) => id,
        Err(page) => return *page,
    };
    let pages = match q.pages() {
        Ok(p) => p,
        Err(message) => return layout::error(StatusCode::BAD_REQUEST, Nav::Agents, &message),
    };
    match render_detail(&s, AgentId(id), pages).await {
        Ok(m) => layout::page(&format!("Agent #{id}"), Nav::Agents, m).into_response(),
        Err(e) => layout::failed(e, Nav::Agents),
    }
}

async fn render_detail(
    s: &ApiState,
    id: AgentId,
    pages: DetailPages,
) -> Result<Markup, StoreError> {
    let agent = s.store.agent(id).await?;
    let balance = s.store.balance(id).await?;
    let tree = s.store.descendants(id, TREE_NODES).await?;
    let executions = s.store.executions_of(id, pages.executions).await?;
    let bids = s.store.bids_for(id, pages.bids).await?;
    let transfers = s.store.history(id, pages.transactions).await?;
    let prompts = s.store.prompts_of(id, pages.prompts).await?;
    let pager = |table: &str, page: Newest, last: Option<i64>, rows: usize| Pager {
        agent: id,
        table: table.to_string(),
        page,
        last,
        rows,
    };
    let executions_pager = pager(
        "executions",
        pages.executions,
        executions.last().map(|e| e.id.0),
        executions.len(),
    );
    let bids_pager = pager("bids", pages.bids, bids.last().map(|b| b.id.0), bids.len());
    let transactions_pager = pager(
        "transactions",
        pages.transactions,
        transfers.last().map(|t| t.id),
        transfers.len(),
    );
    let prompts_pager = pager(
        "prompts",
        pages.prompts,
        prompts.last().map(|(p, _)| p.id.0),
        prompts.len(),
    );
    let root = std::path::PathBuf::from(&agent.workspace);
    let files = tokio::task::spawn_blocking(move || workspace::list(&root))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let me = format!("agent:{}", id.0);
    Ok(html! {
        h1 { "Agent #" (id.0) " " (badge(agent.status.as_str())) }
        dl.facts {
            dt { "balance" } dd #balance { (credits(balance.balance)) }
            dt { "held" } dd { (credits(balance.held)) }
            dt { "available" } dd { (credits(balance.available)) }
            dt { "earned from ratings" } dd #earned { (credits(agent.total_credits_earned)) }
            dt { "spent" } dd { (credits(agent.total_credits_spent)) }
            dt { "executions" } dd { (agent.execution_count) }
            dt { "born" } dd { (layout::time(agent.created_at)) }
            dt { "last execution" } dd { (layout::maybe_time(agent.last_execution_at)) }
            @if let Some(reason) = agent.death_reason {
                dt { "died" } dd { (reason.as_str()) " at " (layout::maybe_time(agent.death_at)) }
            }
        }
        section {
            h2 { "Lineage" }
            p.lineage {
                @if agent.lineage.is_empty() { "A first agent (no parent)." }
                @else {
                    "Ancestors: "
                    // The lineage is stored nearest first; it reads from the first agent.
                    @for (i, a) in agent.lineage.iter().rev().enumerate() {
                        @if i > 0 { " → " }
                        (agent_link(a.0))
                    }
                    " → #" (id.0)
                }
            }
            (lineage_tree(id, &tree))
            @if tree.len() as i64 >= TREE_NODES { p.meta { "(the first " (TREE_NODES) " descendants)" } }
        }
        section #executions-section {
            h2 { "Executions" }
            table #executions {
                thead { tr { th { "execution" } th.num { "cycle" } th { "status" } th { "exit" } th { "reason" }
                    th { "started" } th.num { "ran" } th.num { "tokens" } th { "bundle" } } }
                tbody { @for e in &executions { tr {
                    td { a href={ "/console/executions/" (e.id.0) } { "#" (e.id.0) } }
                    td.num { (e.cycle) }
                    td { (badge(e.status.as_str())) }
                    td { (e.exit_code.map(|c| c.to_string()).unwrap_or_default()) }
                    td { (e.termination_reason.clone().unwrap_or_default()) }
                    td { (layout::maybe_time(e.started_at)) }
                    td.num { (layout::duration(e.started_at, e.ended_at)) }
                    td.num { (e.tokens_used) }
                    td { (layout::bundle(&e.bundle)) }
                } } }
            }
            (executions_pager.render())
        }
        section #bids-section {
            h2 { "Bids" }
            table #bids {
                thead { tr { th { "bid" } th { "payer" } th.num { "amount" } th { "status" } th.num { "placed" }
                    th.num { "expires" } th.num { "won" } th { "bundle" } } }
                tbody { @for b in &bids { tr {
                    td { "#" (b.id.0) }
                    td { (agent_link(b.payer.0)) }
                    td.num { (credits(b.amount)) }
                    td { (badge(b.status.as_str())) }
                    td.num { (b.placed_cycle) }
                    td.num { (b.expiry_cycle) }
                    td.num { (b.won_cycle.map(|c| c.to_string()).unwrap_or_default()) }
                    td { (layout::bundle(&b.bundle)) }
                } } }
            }
            (bids_pager.render())
        }
        section #transactions-section {
            h2 { "Transactions" }
            table #transactions {
                thead { tr { th { "transfer" } th { "kind" } th { "from" } th { "to" } th.num { "amount" } th { "memo" } th { "at" } } }
                tbody { @for t in &transfers { tr {
                    td { "#" (t.id) }
                    td { (t.kind) }
                    td { (account(&t.debit, &me)) }
                    td { (account(&t.credit, &me)) }
                    td.num { @if t.debit == me { "−" } @else { "+" } (credits(t.amount)) }
                    td { (t.memo) }
                    td { (layout::time(t.created_at)) }
                } } }
            }
            (transactions_pager.render())
        }
        section #prompts-section {
            h2 { "Prompts" }
            @if prompts.is_empty() { p { "No prompt yet." } }
            @for (p, r) in &prompts {
                article.prompt-history {
                    h3 { "Prompt #" (p.id.0) " " (badge(p.status.as_str())) }
                    p.meta { "bid " (credits(p.bid_amount)) " · submitted " (layout::time(p.submitted_at)) }
                    details { summary { (content::preview(&p.content, 100)) } div.content { (content::render(&p.content)) } }
                    @if let Some(r) = r {
                        p.rating { "Rated interesting " (r.interesting) ", useful " (r.useful) ", understandable "
                            (r.understandable) ": " (credits(r.credits_awarded)) " minted"
                            @if !r.reason.is_empty() { ". “" (r.reason) "”" } }
                    }
                }
            }
            (prompts_pager.render())
        }
        section {
            h2 { "Workspace" }
            p.meta { code { (agent.workspace) } " (read-only)" }
            @match &files {
                Ok(entries) => { (workspace::table(id, entries)) }
                Err(e) => { p.error { "cannot list the workspace: " (e) } }
            }
        }
    })
}

/// The links under one of an agent's tables: to the newest rows when this page
/// starts further back, and to older rows when this page is full.
struct Pager {
    agent: AgentId,
    /// The table's name, which is also its cursor's (`<table>_before`) and its
    /// section's (`#<table>-section`).
    table: String,
    page: Newest,
    /// The id of the page's last (oldest) row.
    last: Option<i64>,
    rows: usize,
}

impl Pager {
    fn render(&self) -> Markup {
        let base = format!("/console/agents/{}", self.agent.0);
        let anchor = format!("#{}-section", self.table);
        let full = i64::try_from(self.rows).unwrap_or(i64::MAX) >= self.page.limit;
        let older = self.last.filter(|_| full);
        html! {
            @if self.page.before.is_some() || older.is_some() {
                p.pager {
                    @if self.page.before.is_some() {
                        a.newest href={ (base) (anchor) } { "← newest" }
                    }
                    @if let Some(last) = older {
                        " "
                        a.older rel="next" href={ (base) "?" (self.table) "_before=" (last) (anchor) } { "older →" }
                    }
                }
            }
        }
    }
}

/// `agent:<id>` as a link (or "this agent"), system accounts as their names.
fn account(label: &str, me: &str) -> Markup {
    if label == me {
        return html! { "this agent" };
    }
    match label
        .strip_prefix("agent:")
        .and_then(|n| n.parse::<i64>().ok())
    {
        Some(id) => agent_link(id),
        None => html! { (label) },
    }
}

/// The agent and its descendants as nested lists.
fn lineage_tree(root: AgentId, nodes: &[TreeNode]) -> Markup {
    let mut children: HashMap<AgentId, Vec<&TreeNode>> = HashMap::new();
    for n in nodes {
        if let Some(p) = n.parent {
            if n.id != root {
                children.entry(p).or_default().push(n);
            }
        }
    }
    let Some(top) = nodes.iter().find(|n| n.id == root) else {
        return html! {};
    };
    html! { ul.tree #lineage { (tree_node(top, &children, 0)) } }
}

fn tree_node(n: &TreeNode, children: &HashMap<AgentId, Vec<&TreeNode>>, depth: usize) -> Markup {
    let kids = children.get(&n.id).map(Vec::as_slice).unwrap_or(&[]);
    html! {
        li {
            (agent_link(n.id.0)) " " (badge(if n.alive { "alive" } else { "dead" }))
            @if !kids.is_empty() && depth < 64 {
                ul { @for k in kids { (tree_node(k, children, depth + 1)) } }
            }
        }
    }
}

/// One execution and its log.
pub(super) async fn execution(
    _: Human,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    let id = match layout::path_id(&id, "an execution") {
        Ok(id) => id,
        Err(page) => return *page,
    };
    let id = ExecutionId(id);
    let e = match s.store.execution(id).await {
        Ok(e) => e,
        Err(e) => return layout::failed(e, Nav::Agents),
    };
    let log = match s.store.execution_log_path(id).await {
        Ok(Some(path)) => {
            let path = std::path::PathBuf::from(path);
            tokio::task::spawn_blocking(move || tail(&path, MAX_LOG_BYTES))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        }
        Ok(None) => Err("this execution has no log".to_string()),
        Err(e) => return layout::failed(e, Nav::Agents),
    };
    let body = html! {
        h1 { "Execution #" (id.0) " " (badge(e.status.as_str())) }
        dl.facts {
            dt { "agent" } dd { (agent_link(e.agent.0)) }
            dt { "cycle" } dd { (e.cycle) }
            dt { "bid" } dd { "#" (e.bid.0) }
            dt { "bundle" } dd { (layout::bundle(&e.bundle)) }
            dt { "started" } dd { (layout::maybe_time(e.started_at)) }
            dt { "ended" } dd { (layout::maybe_time(e.ended_at)) " (" (layout::duration(e.started_at, e.ended_at)) ")" }
            dt { "exit code" } dd { (e.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into())) }
            dt { "reason" } dd { (e.termination_reason.clone().unwrap_or_else(|| "—".into())) }
            dt { "tokens used" } dd { (e.tokens_used) }
        }
        h2 { "Log" }
        @match &log {
            Ok((text, truncated)) => {
                @if *truncated { p.meta { "(the last " (MAX_LOG_BYTES / 1024) " KiB)" } }
                pre.log #log { (text) }
            }
            Err(why) => { p.meta { (why) } }
        }
    };
    layout::page(&format!("Execution #{}", id.0), Nav::Agents, body).into_response()
}
