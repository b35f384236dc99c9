//! The operator's HTTP client behind the terminal commands (`human`, `status`,
//! `agents`, `events`): where the System Service is, which operator token to send,
//! and every failure turned into one line a person can act on.

use crate::Globals;
use agora_server::api::operator;
use agora_server::config::{Config, Overrides};
use anyhow::Context;
use clap::Args;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Where the System Service is and how to prove to be its operator.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// URL of the System Service (default: http://<[server] listen> of the
    /// configuration, as `agora up` uses it).
    #[arg(long, env = "AGORA_URL")]
    pub url: Option<String>,
    /// Operator token (default: the one in <data-dir>/operator.token).
    #[arg(long, env = "AGORA_OPERATOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// How long an ordinary request may take; the server itself gives up after 30 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed request, as the commands need to tell the cases apart.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the URL.
    #[error("cannot reach the System Service at {url}: {why} (is `agora up` running? start it, or point --url / AGORA_URL at it)")]
    Unreachable { url: String, why: String },
    /// The server answered with its error contract.
    #[error("{status} {code}: {message}{hint}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// What to do about it, when the code says.
        hint: &'static str,
    },
    /// Anything else: a broken connection, an answer that is not what was asked.
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// The error code of an API refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client of one System Service with the operator token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Finds the URL and the token from the flags, the environment, the
    /// configuration and the data directory, in that order.
    pub fn new(globals: &Globals, args: &ClientArgs) -> anyhow::Result<Client> {
        let config = || -> anyhow::Result<Config> {
            Ok(Config::load(
                &globals.data_dir,
                globals.config.as_deref(),
                &Overrides::default(),
            )?)
        };
        let base = match &args.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => url_of_listen(&config()?.server.listen)?,
        };
        let token = match &args.token {
            Some(t) => t.trim().to_string(),
            None => {
                let dir = config()
                    .map(|c| c.data_dir)
                    .unwrap_or_else(|_| globals.data_dir.clone());
                let path = operator::token_path(&dir);
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "cannot read the operator token {} (pass --data-dir of the world, \
                             or --token / AGORA_OPERATOR_TOKEN)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        // A local service must not be reached through an HTTP proxy of the
        // environment; an operator who needs one passes its URL.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .context("cannot make an HTTP client")?;
        Ok(Client { http, base, token })
    }

    /// The URL of the System Service.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r = self.send(self.http.get(self.url(path))).await?;
        self.json(path, r).await
    }

    /// `POST path` with a JSON body, answered with JSON.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, ClientError> {
        let r = self.send(self.http.post(self.url(path)).json(body)).await?;
        self.json(path, r).await
    }

    /// `GET path` as text (`/metrics`).
    pub async fn text(&self, path: &str) -> Result<String, ClientError> {
        let r = self.send(self.http.get(self.url(path))).await?;
        r.text()
            .await
            .map_err(|e| ClientError::Other(format!("GET {path}: the answer broke off: {e}")))
    }

    /// `GET path` left open: a Server-Sent Events stream, read with
    /// [`reqwest::Response::chunk`]. No overall timeout.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        let req = self
            .http
            .get(self.url(path))
            .header("Accept", "text/event-stream")
            .bearer_auth(&self.token);
        let r = req.send().await.map_err(|e| self.transport(e))?;
        check(r).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let r = req
            .bearer_auth(&self.token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        check(r).await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        path: &str,
        r: reqwest::Response,
    ) -> Result<T, ClientError> {
        let bytes = r
            .bytes()
            .await
            .map_err(|e| ClientError::Other(format!("{path}: the answer broke off: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Other(format!(
                "{path}: unexpected answer ({e}); is {} an agora System Service of this version?",
                self.base
            ))
        })
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        if e.is_connect() || e.is_builder() {
            ClientError::Unreachable {
                url: self.base.clone(),
                why: root_cause(&e),
            }
        } else if e.is_timeout() {
            ClientError::Other(format!("{} did not answer in time", self.base))
        } else {
            ClientError::Other(format!("{}: {}", self.base, root_cause(&e)))
        }
    }
}

/// A non-2xx answer as a [`ClientError::Api`].
async fn check(r: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = r.status();
    if status.is_success() {
        return Ok(r);
    }
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or("http_error")
        .to_string();
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| status.to_string());
    let hint = match code.as_str() {
        "invalid_token" | "unauthenticated" => {
            " (the operator token is in <data-dir>/operator.token; `agora token rotate` \
             replaces it; pass the current one with --token or --data-dir)"
        }
        "operator_token_required" => " (this is an execution token; use the operator token)",
        "not_found" => " (is this server an older agora without this endpoint?)",
        _ => "",
    };
    Err(ClientError::Api {
        status: status.as_u16(),
        code,
        message,
        hint,
    })
}

/// The innermost cause of a transport error ("Connection refused …").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The URL a client on this host uses for `[server] listen`: a wildcard address
/// is reached through loopback.
fn url_of_listen(listen: &str) -> anyhow::Result<String> {
    let Ok(addr) = listen.parse::<SocketAddr>() else {
        // A host name: used as written.
        return Ok(format!("http://{listen}"));
    };
    if addr.port() == 0 {
        anyhow::bail!(
            "[server] listen is {listen} (any free port): pass the address `agora up` printed \
             with --url or AGORA_URL"
        );
    }
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, addr.port())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_reached_through_loopback() {
        assert_eq!(
            url_of_listen("127.0.0.1:7700").unwrap(),
            "http://127.0.0.1:7700"
        );
        assert_eq!(url_of_listen("0.0.0.0:80").unwrap(), "http://127.0.0.1:80");
        assert_eq!(url_of_listen("[::]:7700").unwrap(), "http://[::1]:7700");
        assert_eq!(
            url_of_listen("agora.local:7700").unwrap(),
            "http://agora.local:7700"
        );
        let e = url_of_listen("127.0.0.1:0").unwrap_err().to_string();
        assert!(e.contains("--url"), "{e}");
    }
}
