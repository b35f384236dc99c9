//! The console over HTTP without a browser (SPEC §12): the login and its cookie,
//! the security headers, every page's HTML and status, refusals as HTML pages
//! that change nothing, a rating through the form, markup in prompts escaped by
//! the server, a workspace view that follows no link, and an agent's long history
//! paged newest first.

use super::harness::TestApi;
use crate::api_contract;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

api_contract!(
    pages_need_the_login_and_keep_to_this_origin,
    every_page_renders_the_world,
    ratings_from_the_form_pay_once_and_bad_ones_change_nothing,
    agent_markup_is_text_and_links_are_not_followed,
    an_agent_page_pages_through_a_long_history,
);

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

struct Page {
    status: u16,
    location: String,
    html: String,
    headers: reqwest::header::HeaderMap,
}

async fn page(api: &TestApi, cookie: Option<&str>, path: &str) -> Page {
    let mut req = browser().get(format!("{}{path}", api.base));
    if let Some(c) = cookie {
        req = req.header(COOKIE, format!("agora_console={c}"));
    }
    read(req.send().await.unwrap()).await
}

async fn form(api: &TestApi, cookie: Option<&str>, path: &str, fields: &[(&str, &str)]) -> Page {
    let mut req = browser().post(format!("{}{path}", api.base)).form(fields);
    if let Some(c) = cookie {
        req = req.header(COOKIE, format!("agora_console={c}"));
    }
    read(req.send().await.unwrap()).await
}

async fn read(r: reqwest::Response) -> Page {
    let headers = r.headers().clone();
    Page {
        status: r.status().as_u16(),
        location: headers
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
        html: r.text().await.unwrap(),
        headers,
    }
}

/// What the Attention page polls.
async fn attention_state(api: &TestApi) -> serde_json::Value {
    let r = browser()
        .get(format!("{}/console/attention/state", api.base))
        .header(COOKIE, format!("agora_console={}", api.operator))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[track_caller]
fn assert_html(p: &Page, status: u16) {
    assert_eq!(p.status, status, "{}", p.html);
    let kind = p.headers.get(CONTENT_TYPE).unwrap().to_str().unwrap();
    assert!(kind.starts_with("text/html"), "{kind}");
    let csp = p
        .headers
        .get(CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
}

async fn pages_need_the_login_and_keep_to_this_origin(api: TestApi) {
    for path in [
        "/console",
        "/console/agents",
        "/console/market",
        "/console/economy",
    ] {
        let p = page(&api, None, path).await;
        assert_eq!(p.status, 303, "{path}");
        assert_eq!(p.location, format!("/console/login?next={path}"));
    }
    // An execution token is not the operator's.
    let a = api.agent(10).await;
    assert_eq!(page(&api, Some(&a.token), "/console").await.status, 303);
    let login = page(&api, None, "/console/login?next=/console/agents").await;
    assert_html(&login, 200);
    assert!(
        login
            .html
            .contains(r#"name="next" value="/console/agents""#),
        "{}",
        login.html
    );

    let wrong = form(
        &api,
        None,
        "/console/login",
        &[("token", "nope"), ("next", "/console")],
    )
    .await;
    assert_html(&wrong, 401);
    assert!(wrong.headers.get(SET_COOKIE).is_none());
    assert!(wrong.html.contains("not the operator token"));

    let ok = form(
        &api,
        None,
        "/console/login",
        &[
            ("token", &api.operator),
            ("next", "/console/agents?sort=balance"),
        ],
    )
    .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.location, "/console/agents?sort=balance");
    let cookie = ok.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // A login never sends the browser to another site.
    for next in [
        "https://evil.example/",
        "//evil.example/console",
        "/console//evil",
    ] {
        let p = form(
            &api,
            None,
            "/console/login",
            &[("token", &api.operator), ("next", next)],
        )
        .await;
        assert_eq!((p.status, p.location.as_str()), (303, "/console"), "{next}");
    }
    let out = form(&api, Some(&api.operator), "/console/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(out
        .headers
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The API's JSON errors are untouched by the console.
    api.get("/admin/agents/999999", &api.operator)
        .await
        .expect_error(404, "unknown_agent");
}

async fn every_page_renders_the_world(api: TestApi) {
    let a = api.agent(100).await;
    let tok = &api.operator;
    let child = api
        .post(
            "/social/spawn",
            &a.token,
            json!({"initial_credits": "10", "files": [{"path": "main.py", "content": "print(1)"}]}),
        )
        .await;
    assert!(child.status.is_success(), "{:?}", child.body);
    let prices = api.t.store.prices().await.unwrap();
    let cycle = api.t.store.current_cycle().await.unwrap();
    api.t
        .store
        .record_cycle(agora_server::store::CycleRecord {
            cycle,
            allocated: Default::default(),
            utilisation: [0.5, 0.1, 0.0, 0.0],
            new_prices: prices,
        })
        .await
        .unwrap();
    for path in [
        "/console".to_string(),
        "/console/agents".into(),
        "/console/agents?status=alive&sort=executions&page=1".into(),
        "/console/agents?status=dead&sort=last_execution".into(),
        format!("/console/agents/{}", a.id),
        format!("/console/executions/{}", a.execution),
        "/console/market".into(),
        "/console/economy".into(),
    ] {
        let p = page(&api, Some(tok), &path).await;
        assert_html(&p, 200);
        assert!(p.html.starts_with("<!DOCTYPE html>"), "{path}");
    }
    let detail = page(&api, Some(tok), &format!("/console/agents/{}", a.id)).await;
    assert!(detail
        .html
        .contains(&format!(r#"href="/console/executions/{}""#, a.execution)));
    assert!(detail.html.contains(r#"id="lineage""#));
    let market = page(&api, Some(tok), "/console/market").await;
    assert_eq!(
        market.html.matches("<svg").count(),
        5,
        "utilisation and four prices"
    );
    let economy = page(&api, Some(tok), "/console/economy").await;
    assert_eq!(
        economy.html.matches("<svg").count(),
        2,
        "population and credits"
    );
    assert!(
        economy.html.contains("agent_spawned"),
        "the feed shows the spawn"
    );
    // Refusals are pages with the API's status.
    for (path, status) in [
        ("/console/agents?status=zombie", 400),
        ("/console/agents?sort=name", 400),
        ("/console/agents?page=0", 400),
        ("/console/agents/999999", 404),
        ("/console/agents/abc", 400),
        ("/console/executions/999999", 404),
    ] {
        let p = page(&api, Some(tok), path).await;
        assert_html(&p, status);
    }
    assert_eq!(
        attention_state(&api).await,
        json!({"active": null, "waiting": 0})
    );
}

async fn ratings_from_the_form_pay_once_and_bad_ones_change_nothing(api: TestApi) {
    let a = api.agent(100).await;
    let tok = &api.operator;
    let p = api
        .post(
            "/human/prompt",
            &a.token,
            json!({"content": "rate me", "bid_amount": "5"}),
        )
        .await
        .expect(201);
    let id = p["id"].as_i64().unwrap().to_string();
    let b = api.agent(100).await;
    api.post(
        "/human/prompt",
        &b.token,
        json!({"content": "me too", "bid_amount": "1"}),
    )
    .await
    .expect(201);
    let state = attention_state(&api).await;
    assert_eq!(state, json!({"active": p["id"], "waiting": 1}));
    let before = api.t.store.stats().await.unwrap();
    for bad in [
        [
            ("interesting", "11"),
            ("useful", "5"),
            ("understandable", "5"),
        ],
        [
            ("interesting", "x"),
            ("useful", "5"),
            ("understandable", "5"),
        ],
        [
            ("interesting", ""),
            ("useful", "5"),
            ("understandable", "5"),
        ],
        [
            ("interesting", "2.5"),
            ("useful", "5"),
            ("understandable", "5"),
        ],
    ] {
        let mut fields = vec![("prompt_id", id.as_str()), ("reason", "kept")];
        fields.extend(bad);
        let r = form(&api, Some(tok), "/console/rate", &fields).await;
        assert_html(&r, 400);
        assert!(r.html.contains(r#"role="alert""#));
        assert!(r.html.contains(r#"value="kept""#), "what was typed is kept");
    }
    assert_eq!(
        api.t.store.stats().await.unwrap(),
        before,
        "nothing changed"
    );
    // Without the login nothing is rated.
    let anon = form(
        &api,
        None,
        "/console/rate",
        &[
            ("prompt_id", &id),
            ("interesting", "5"),
            ("useful", "5"),
            ("understandable", "5"),
        ],
    )
    .await;
    assert_eq!(anon.status, 303);
    assert_eq!(api.t.store.stats().await.unwrap(), before);

    let fields = [
        ("prompt_id", id.as_str()),
        ("interesting", "7"),
        ("useful", "8"),
        ("understandable", "9"),
        ("reason", "good"),
    ];
    let ok = form(&api, Some(tok), "/console/rate", &fields).await;
    assert_eq!(
        (ok.status, ok.location.as_str()),
        (303, format!("/console?rated={id}").as_str())
    );
    let shown = page(&api, Some(tok), &ok.location).await;
    assert!(
        shown.html.contains(&format!("Prompt #{id} rated 7/8/9")),
        "{}",
        shown.html
    );
    let again = form(&api, Some(tok), "/console/rate", &fields).await;
    assert_html(&again, 409);
    // The next prompt is shown with an empty form: scores typed for the one just
    // rated are not carried over to it.
    assert!(again.html.contains("me too"), "the next prompt is active");
    assert!(!again.html.contains(r#"value="good""#), "{}", again.html);
    assert!(!again.html.contains(r#"value="7""#), "{}", again.html);
    let after = api.t.store.stats().await.unwrap();
    // Σ score × 50 credits, once.
    assert_eq!(after.minted - before.minted, 24 * 50 * 1_000_000);
    api.t.assert_audit_clean().await;
}

async fn agent_markup_is_text_and_links_are_not_followed(api: TestApi) {
    let a = api.agent(100).await;
    let tok = &api.operator;
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    api.post(
        "/human/prompt",
        &a.token,
        json!({"content": {"title": evil, "text": evil, "markdown": evil, "x": evil}, "bid_amount": "5"}),
    )
    .await
    .expect(201);
    let p = page(&api, Some(tok), "/console").await;
    assert_html(&p, 200);
    let content = p.html.split(r#"id="prompt-content""#).nth(1).unwrap();
    let content = content.split("</section>").next().unwrap();
    assert!(
        !content.contains("<script") && !content.contains("<img"),
        "{content}"
    );
    assert!(
        content.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{content}"
    );

    let ws = std::path::PathBuf::from(api.t.store.agent(a.id).await.unwrap().workspace);
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "<b>hi</b>").unwrap();
    let secret = api.t.dir.path().join("secret.txt");
    std::fs::write(&secret, "s3cret").unwrap();
    std::os::unix::fs::symlink(&secret, ws.join("leak")).unwrap();
    let detail = page(&api, Some(tok), &format!("/console/agents/{}", a.id)).await;
    assert!(
        detail.html.contains("link (not followed)"),
        "{}",
        detail.html
    );
    let file = page(
        &api,
        Some(tok),
        &format!("/console/agents/{}/files?path=notes.txt", a.id),
    )
    .await;
    assert_html(&file, 200);
    assert!(file.html.contains("&lt;b&gt;hi&lt;/b&gt;"));
    for bad in ["leak", "../secret.txt", "/etc/passwd", "nothing-here"] {
        let p = page(
            &api,
            Some(tok),
            &format!("/console/agents/{}/files?path={bad}", a.id),
        )
        .await;
        assert!(p.status == 400 || p.status == 404, "{bad}: {}", p.status);
        assert!(!p.html.contains("s3cret"), "{bad}");
    }
}

/// The ids in the first column of the table `id` (`<td>#123</td>`), in page order.
fn row_ids(html: &str, id: &str) -> Vec<i64> {
    let start = html
        .find(&format!(r#"<table id="{id}">"#))
        .unwrap_or_else(|| panic!("no table {id}"));
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    table
        .split("<tr><td>#")
        .skip(1)
        .map(|row| row[..row.find('<').unwrap()].parse().unwrap())
        .collect()
}

/// The `href` of the link with class `class` under the table `table`, if any.
fn pager_link(html: &str, table: &str, class: &str) -> Option<String> {
    let start = html.find(&format!(r#"<section id="{table}-section">"#))?;
    let section = &html[start..start + html[start..].find("</section>").unwrap()];
    let at = section.find(&format!(r#"<a class="{class}""#))?;
    let href = &section[at..];
    let href = &href[href.find("href=\"").unwrap() + 6..];
    Some(href[..href.find('"').unwrap()].replace("&amp;", "&"))
}

async fn an_agent_page_pages_through_a_long_history(api: TestApi) {
    let a = api.agent(100).await;
    let b = api.agent(100).await;
    for i in 0..120 {
        api.t
            .store
            .transfer(agora_server::store::TransferRequest {
                from: a.id,
                to: b.id,
                amount: agora_core::Credits::from_micros(10_000),
                memo: format!("payment {i}"),
                idempotency_key: None,
            })
            .await
            .unwrap();
    }
    let all: Vec<i64> = api
        .t
        .store
        .history(a.id, agora_server::store::Newest::first(10_000))
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert!(all.len() > 120, "{}", all.len());
    // Follow "older" from the newest page to the end: every transfer once, newest
    // first, 50 to a page; the other tables stay at their newest.
    let tok = &api.operator;
    let mut path = format!("/console/agents/{}", a.id);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let p = page(&api, Some(tok), path.split('#').next().unwrap()).await;
        assert_html(&p, 200);
        let ids = row_ids(&p.html, "transactions");
        assert!(ids.len() <= 50 && !ids.is_empty(), "{path}: {}", ids.len());
        assert_eq!(
            pager_link(&p.html, "transactions", "newest").is_some(),
            pages > 0,
            "{path}"
        );
        assert!(
            p.html
                .contains(&format!(r#"href="/console/executions/{}""#, a.execution))
                && pager_link(&p.html, "executions", "newest").is_none(),
            "{path}"
        );
        seen.extend(ids);
        pages += 1;
        match pager_link(&p.html, "transactions", "older") {
            Some(next) => {
                assert!(next.starts_with(&format!("/console/agents/{}?transactions_before=", a.id)));
                assert!(next.ends_with("#transactions-section"), "{next}");
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(seen, all, "every transfer once, newest first");
    assert_eq!(pages, all.len().div_ceil(50));
    // A cursor older than everything is an empty page with a way back.
    let p = page(
        &api,
        Some(tok),
        &format!("/console/agents/{}?transactions_before=1", a.id),
    )
    .await;
    assert_html(&p, 200);
    assert!(row_ids(&p.html, "transactions").is_empty());
    assert!(pager_link(&p.html, "transactions", "newest").is_some());
    // Cursors that are not ids are refused as pages.
    for bad in [
        "transactions_before=abc",
        "executions_before=0",
        "bids_before=-5",
        "prompts_before=1.5",
    ] {
        let p = page(&api, Some(tok), &format!("/console/agents/{}?{bad}", a.id)).await;
        assert_html(&p, 400);
        assert!(p.html.contains("must be a positive id"), "{bad}");
    }
}
