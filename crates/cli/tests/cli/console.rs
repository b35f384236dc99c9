//! The console (SPEC §12) in a real headless Chromium, driven over WebDriver
//! (chromedriver) against a running `agora up`: log in, see the active prompt,
//! rate it with the keyboard only, see the reward on the agent's page and the next
//! prompt appear by itself, watch the live event feed, and check that markup an
//! agent puts in a prompt is shown as text. Every page must load without a
//! browser console error, and a screenshot of each is saved under
//! `target/artifacts/console/`.
//!
//! Skips when chromedriver is missing, unless `AGORA_REQUIRE_BROWSER` is set (CI).

use super::economy::World;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// WebDriver's key codes.
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// An agent that asks the human something full of markup on every execution and
/// bids again: the prompt must reach the page as text.
const SHOUTER: &str = r#"
import json, os, services
api = services.Client.from_env()
n = 1
try:
    n = json.load(open("state.json"))["n"] + 1
except Exception:
    pass
json.dump({"n": n}, open("state.json", "w"))
api.prompt({
    "title": "<script>document.title='pwned'</script>Shout %d" % n,
    "text": "<b>not bold</b><img src=x onerror=\"document.title='pwned'\">",
    "markdown": "**really bold** <script>document.title='pwned'</script> [x](javascript:alert(1))",
}, "60")
api.place_bid({"cpu_seconds": 0.5, "memory_mb": 64, "attention_share": 0.05}, "150")
print("shout", n)
"#;

fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("AGORA_REQUIRE_BROWSER").is_none(),
            "chromedriver is required (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipping: no chromedriver");
    }
    found
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    /// Kills chromedriver's whole process group: the browser it started goes
    /// with it, also when the test failed half-way.
    fn drop(&mut self) {
        Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status()
            .ok();
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn start_driver(binary: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, url }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// chromedriver's browser log (`POST /session/{id}/se/log`): what the page printed
/// to its console, errors included, since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The console errors since the last call.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["level"] == "SEVERE")
                .map(|e| e["message"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("artifacts/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `path`, checks it rendered without console errors, saves a screenshot.
async fn visit(c: &Client, base: &str, path: &str, shot: &str) {
    c.goto(&format!("{base}{path}")).await.unwrap();
    settle(c, shot).await;
}

/// Checks the page now shown for console errors and saves its screenshot.
async fn settle(c: &Client, shot: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let errors = console_errors(c).await;
    assert!(errors.is_empty(), "{shot}: console errors {errors:?}");
    let png = c.screenshot().await.unwrap();
    let file = artifacts().join(format!("{shot}.png"));
    std::fs::write(&file, png).unwrap();
    eprintln!("screenshot: {}", file.display());
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits for an element, reloading nothing: the page must show it by itself.
async fn wait_for(c: &Client, css: &str, limit: Duration) -> fantoccini::elements::Element {
    c.wait()
        .at_most(limit)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within {limit:?}: {e}"))
}

/// The active prompt's id on the Attention page.
async fn active_prompt(c: &Client) -> i64 {
    let id = wait_for(
        c,
        "#attention[data-active]:not([data-active=''])",
        Duration::from_secs(90),
    )
    .await
    .attr("data-active")
    .await
    .unwrap()
    .unwrap();
    id.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_rates_prompts_in_a_real_browser() {
    let Some(binary) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(dir.path(), &[], &[]);
    let base = format!("http://{}", world.addr);
    let services = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agents/genesis/services.py"),
    )
    .unwrap();
    let (status, created) = world.post(
        "/admin/agents",
        &json!({"files": [{"path": "main.py", "content": SHOUTER},
                          {"path": "services.py", "content": services}],
                "initial_credits": "3000",
                "bid": {"bundle": {"cpu_seconds": 0.5, "memory_mb": 64, "attention_share": 0.05},
                        "amount": "300"}}),
    );
    assert_eq!(status, 201, "{created}");
    let shouter = created["agent"]["id"].as_i64().unwrap();

    let driver = start_driver(&binary);
    let c = browser(&driver).await;

    // Not logged in: every page leads to the login, and back after it.
    c.goto(&format!("{base}/console/market")).await.unwrap();
    wait_for(&c, "#token", Duration::from_secs(10)).await;
    settle(&c, "login").await;
    let wrong = c.find(Locator::Id("token")).await.unwrap();
    wrong
        .send_keys(&format!("not-the-token{ENTER}"))
        .await
        .unwrap();
    let refused = wait_for(&c, "p.error", Duration::from_secs(10)).await;
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("not the operator token"));
    console_errors(&c).await; // the 401 of the refused login is expected
    let field = c.find(Locator::Id("token")).await.unwrap();
    field
        .send_keys(&format!("{}{ENTER}", world.token))
        .await
        .unwrap();
    wait_for(&c, "#markets", Duration::from_secs(10)).await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/market"));

    // The Attention page shows a prompt as soon as one is active (console.js
    // reloads when it changes; nobody presses reload here).
    c.goto(&format!("{base}/console")).await.unwrap();
    let mut seen_shouter = false;
    let mut rated = 0;
    let start = Instant::now();
    while !(seen_shouter && rated >= 2) {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "rated {rated}, shouter seen {seen_shouter}"
        );
        let prompt = active_prompt(&c).await;
        let agent: i64 = text(&c, "section.prompt p.meta a")
            .await
            .trim_start_matches('#')
            .parse()
            .unwrap();
        if agent == shouter {
            seen_shouter = true;
            let content = text(&c, "#prompt-content").await;
            assert!(
                content.contains("<script>document.title='pwned'</script>Shout"),
                "{content}"
            );
            assert!(content.contains("<b>not bold</b><img src=x"), "{content}");
            assert!(c
                .find_all(Locator::Css(
                    "#prompt-content script, #prompt-content img, #prompt-content b"
                ))
                .await
                .unwrap()
                .is_empty());
            assert!(
                !c.find_all(Locator::Css("#prompt-content .markdown strong"))
                    .await
                    .unwrap()
                    .is_empty(),
                "markdown is rendered"
            );
            assert!(c
                .find_all(Locator::Css("#prompt-content a[href^='javascript']"))
                .await
                .unwrap()
                .is_empty());
            assert_ne!(c.title().await.unwrap(), "pwned");
            settle(&c, "attention").await;
        }
        // The agent's page before the rating.
        let before = world.agent(agent);
        // Rate with the keyboard only: the first score has the focus.
        let focused = c.active_element().await.unwrap();
        assert_eq!(
            focused.attr("id").await.unwrap().as_deref(),
            Some("interesting")
        );
        focused
            .send_keys(&format!("7{TAB}8{TAB}9{TAB}clear and useful{ENTER}"))
            .await
            .unwrap();
        let flash = wait_for(&c, "p.flash", Duration::from_secs(10))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            flash.contains(&format!("Prompt #{prompt} rated 7/8/9")),
            "{flash}"
        );
        rated += 1;
        if rated == 1 {
            settle(&c, "attention-rated").await;
        }
        // The reward reached the agent: the API says so and its page shows it.
        let after = world.agent(agent);
        let response = after["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["prompt"]["id"] == prompt)
            .map(|p| p["response"].clone())
            .unwrap_or(Value::Null);
        assert_eq!(response["interesting"], 7, "{after}");
        let credits = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
        let earned = credits(&after["agent"]["total_credits_earned"]);
        assert!(
            (earned
                - credits(&before["agent"]["total_credits_earned"])
                - credits(&response["credits_awarded"]))
            .abs()
                < 1e-6,
            "the reward is the agent's earning: {before} -> {after}"
        );
        visit(&c, &base, &format!("/console/agents/{agent}"), "agent").await;
        let rating = text(&c, "article.prompt-history p.rating").await;
        assert!(
            rating.contains("Rated interesting 7, useful 8, understandable 9"),
            "{rating}"
        );
        assert_eq!(
            text(&c, "#earned").await,
            format!(
                "{} cr",
                after["agent"]["total_credits_earned"].as_str().unwrap()
            )
        );
        assert_ne!(
            text(&c, "#balance").await,
            format!("{} cr", before["balance"]["balance"].as_str().unwrap()),
            "the page shows the balance after the reward"
        );
        c.back().await.unwrap();
        // The next prompt appears by itself (the page was left on the flash).
        c.goto(&format!("{base}/console")).await.unwrap();
        let start_next = Instant::now();
        loop {
            let next = active_prompt(&c).await;
            if next != prompt {
                break;
            }
            assert!(
                start_next.elapsed() < Duration::from_secs(90),
                "no next prompt"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Every other page renders without console errors.
    visit(&c, &base, "/console/agents", "agents").await;
    assert!(text(&c, "#agents").await.contains(&format!("#{shouter}")));
    // The newest execution may still be running, its log not yet written: the
    // log checked below is the newest one that ended.
    let ended =
        Locator::XPath("//table[@id='executions']//tr[.//span[contains(@class, 'succeeded')]]//a");
    let started = Instant::now();
    let exec = loop {
        visit(
            &c,
            &base,
            &format!("/console/agents/{shouter}"),
            "agent-shouter",
        )
        .await;
        if let Ok(link) = c.find(ended).await {
            break link.attr("href").await.unwrap().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no execution of the shouter succeeded: {}",
            text(&c, "#executions").await
        );
    };
    visit(
        &c,
        &base,
        &format!("/console/agents/{shouter}/files?path=main.py"),
        "file",
    )
    .await;
    assert!(text(&c, "#file").await.contains("api.prompt("));
    visit(&c, &base, &exec, "execution").await;
    assert!(
        text(&c, "#log").await.contains("shout"),
        "the execution's log shows the agent's output"
    );
    visit(&c, &base, "/console/market", "market").await;
    let charts = c.find_all(Locator::Css("figure.chart svg")).await.unwrap();
    assert_eq!(charts.len(), 5, "utilisation and four prices");
    visit(&c, &base, "/console/economy", "economy").await;
    assert_eq!(
        c.find_all(Locator::Css("figure.chart svg"))
            .await
            .unwrap()
            .len(),
        2
    );
    // New events arrive in the feed without a reload.
    wait_for(&c, "#feed tr.new", Duration::from_secs(30)).await;
    settle(&c, "economy-live").await;

    c.close().await.unwrap();
    drop(driver);
    world.up.interrupt();
}
