//! The service around the endpoints (SPEC §11): the per-execution Unix socket,
//! health, metrics, the OpenAPI document, and the error shape of unknown routes.

use super::harness::TestApi;
use crate::api_contract;
use agora_server::api::{self, UnixServer};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use reqwest::Method;
use serde_json::Value;

api_contract!(
    a_unix_socket_serves_the_same_api,
    health_metrics_and_openapi,
    unknown_routes_and_methods_answer_in_the_error_shape,
    an_event_stream_ends_after_its_maximum_lifetime,
);

/// GET `path` over the Unix socket at `sock` with a bearer token.
async fn unix_get(sock: &std::path::Path, path: &str, token: &str) -> (u16, Value) {
    let stream = tokio::net::UnixStream::connect(sock).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "agora")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn a_unix_socket_serves_the_same_api(api: TestApi) {
    let a = api.agent(42).await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let (router, _) = api::router(api.state.clone());
    let server = UnixServer::bind(&sock, router).unwrap();
    let (status, body) = unix_get(&sock, "/economic/balance", &a.token).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["balance"], "42");
    let (status, body) = unix_get(&sock, "/economic/balance", "agora_x_forged").await;
    assert_eq!(status, 401, "{body:#}");
    server.stop().await;
    assert!(
        !sock.exists(),
        "the socket file is removed when the server stops"
    );
    assert!(tokio::net::UnixStream::connect(&sock).await.is_err());
}

async fn health_metrics_and_openapi(api: TestApi) {
    let h = api
        .call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    assert_eq!(h["status"], "ok");
    let a = api.agent(1).await;
    api.get("/market/prices", &a.token).await.expect(200);
    let (kind, text) = api.scrape(None).await;
    assert!(kind.starts_with("text/plain"), "{kind}");
    for needle in [
        "agora_agents{status=\"alive\"} 1",
        "agora_market_price_credits{resource=\"cpu_seconds\"} 1.0",
        "agora_api_requests_total{method=\"GET\",route=\"/market/prices\",status=\"200\"} 1",
        "agora_api_request_duration_seconds_bucket",
        "# TYPE agora_api_requests_total counter",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let doc = api
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/market/prices",
        "/market/bid/{id}",
        "/economic/transfer",
        "/system/context",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} missing from /openapi.json");
    }
    // Every endpoint but the always-open ones names the token it needs.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let open = matches!(path.as_str(), "/healthz" | "/metrics");
            assert_eq!(
                op.get("security").is_none(),
                open,
                "{method} {path}: security {:?}",
                op.get("security")
            );
        }
    }
}

async fn unknown_routes_and_methods_answer_in_the_error_shape(api: TestApi) {
    api.call(Method::GET, "/no/such/thing", None, None)
        .await
        .expect_error(404, "not_found");
    api.call(Method::PUT, "/market/prices", None, None)
        .await
        .expect_error(405, "method_not_allowed");
}

async fn an_event_stream_ends_after_its_maximum_lifetime(api: TestApi) {
    use tower::ServiceExt;
    api.agent(1).await; // something in the event log
    let mut config = api.state.config.clone();
    config.server.event_stream_max_seconds = 1;
    let (router, _) = api::router(api::ApiState::new(api.t.store.clone(), config));
    let req = hyper::Request::get("/admin/events/stream?after=0")
        .header("authorization", format!("Bearer {}", api.operator))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = router.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        res.into_body().collect(),
    )
    .await
    .expect("the stream ended by itself")
    .unwrap()
    .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("event: "),
        "the log so far was sent first: {text}"
    );
}
