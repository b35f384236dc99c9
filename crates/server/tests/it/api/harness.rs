//! A real System Service for tests: the router served on a random loopback port
//! over a fresh store, the operator token in the test's data directory, and
//! agents with running executions and their execution tokens.

use crate::harness::{cr, TestStore};
use agora_core::{AgentId, Bundle, BundleSpec, ExecutionId};
use agora_server::api::{self, operator, ApiState};
use agora_server::config::Config;
use agora_server::store::NewBid;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

pub struct TestApi {
    pub t: TestStore,
    pub base: String,
    pub http: reqwest::Client,
    pub operator: String,
    pub state: ApiState,
    _stop: oneshot::Sender<()>,
}

/// An agent inside a running execution, as the API sees it.
#[derive(Debug, Clone)]
pub struct TestAgent {
    pub id: AgentId,
    pub execution: ExecutionId,
    pub token: String,
}

/// An answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {:#}",
            self.body
        );
        self.body
    }

    /// Asserts a 4xx error in the contract's shape with this code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {:#}",
            self.body
        );
        assert_eq!(self.code(), code, "unexpected error: {:#}", self.body);
        assert!(self.body["error"]["message"].is_string());
        assert!(self.body["error"]["details"].is_object());
    }
}

/// The bundle every test execution runs with: 1 CPU second, 64 MB, 1000 tokens and
/// a tenth of the human's attention.
pub fn test_bundle() -> Bundle {
    let spec = BundleSpec {
        cpu_seconds: 1.0,
        memory_mb: 64.0,
        tokens: 1000.0,
        attention_share: 0.1,
        wall_seconds: None,
    };
    Bundle::parse(&spec, &Config::default().bundle_limits()).unwrap()
}

impl TestApi {
    /// Serves the API over `t` on 127.0.0.1 at a random port.
    pub async fn start(t: TestStore) -> TestApi {
        TestApi::start_with(t, Config::default(), ApiState::new).await
    }

    /// [`TestApi::start`] with `config` (its data directory set to the test's)
    /// and the state made by `state` (e.g. with an LLM proxy of the test's).
    pub async fn start_with(
        t: TestStore,
        config: Config,
        state: impl FnOnce(agora_server::store::Store, Config) -> ApiState,
    ) -> TestApi {
        let config = Config {
            data_dir: t.dir.path().to_path_buf(),
            ..config
        };
        let operator = match operator::ensure(&config.data_dir).unwrap() {
            operator::Ensured::Created(tok) => tok,
            operator::Ensured::Existing => panic!("fresh data dir had a token"),
        };
        let state = state(t.store.clone(), config);
        let (router, _) = api::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        tokio::spawn(api::serve_tcp(listener, router, async move {
            let _ = rx.await;
        }));
        TestApi {
            t,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            operator,
            state,
            _stop: stop,
        }
    }

    /// A new agent with `credits` available inside a scheduled execution of
    /// [`test_bundle`], and its token. (Its winning bid was paid on top of `credits`.)
    pub async fn agent(&self, credits: i64) -> TestAgent {
        self.agent_with(credits, test_bundle()).await
    }

    /// [`TestApi::agent`] with an execution of `bundle`.
    pub async fn agent_with(&self, credits: i64, bundle: Bundle) -> TestAgent {
        let id = self.t.agent(credits + 20).await;
        self.execute(id, bundle).await
    }

    /// Gives an existing agent an execution of `bundle`: it pays a winning bid of
    /// 20 credits. Returns the execution's token.
    pub async fn execute(&self, id: AgentId, bundle: Bundle) -> TestAgent {
        let store = &self.t.store;
        let bid = store
            .place_bid(NewBid {
                payer: id,
                beneficiary: id,
                bundle,
                amount: cr(20),
                ttl_cycles: 20,
                max_pending: 10,
            })
            .await
            .unwrap();
        let cycle = store.begin_cycle().await.unwrap();
        let exec = store
            .allocate(bid.id, cycle)
            .await
            .unwrap()
            .expect("allocated");
        let token = store.issue_token(exec.id).await.unwrap();
        TestAgent {
            id,
            execution: exec.id,
            token,
        }
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// Scrapes `/metrics` (no token), optionally with an `Accept` header: the
    /// status must be 200; returns the content type and the text.
    pub async fn scrape(&self, accept: Option<&str>) -> (String, String) {
        let mut req = self.http.get(format!("{}/metrics", self.base));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        (kind, r.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
}

/// Reads a reqwest response into an [`Answer`].
pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

/// Declares each listed `async fn name(TestApi)` as two tests, on SQLite and on
/// PostgreSQL, like `contract!` does for the store.
#[macro_export]
macro_rules! api_contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let t = $crate::harness::sqlite().await;
                super::$name($crate::api::harness::TestApi::start(t).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(t) = $crate::harness::postgres().await {
                    super::$name($crate::api::harness::TestApi::start(t).await).await
                }
            }
        }
    )*};
}
