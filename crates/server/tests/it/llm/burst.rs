//! The quota under concurrency: a burst of parallel calls never overshoots, the
//! refused never reach the upstream, and over random mixes of calls (streamed or
//! not, with or without usage, clients leaving, upstreams dying) the charges sum
//! to at most the bundle, and to exactly the reported usage whenever there was one.

use super::{request, Llm};
use crate::contract;
use crate::harness::TestStore;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};

contract!(a_burst_of_parallel_calls_never_overshoots_the_quota);

async fn a_burst_of_parallel_calls_never_overshoots_the_quota(t: TestStore) {
    let llm = std::sync::Arc::new(Llm::start(t, |_| {}).await);
    let a = llm.agent_with_tokens(600.0).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let llm = llm.clone();
            let token = a.token.clone();
            tokio::spawn(async move {
                // Every admitted call uses its whole output cap, slowly, so they overlap.
                let mut body = request(json!({"fill": true, "prompt_tokens": 30,
                    "delay_ms": 5, "first_byte_delay_ms": 100}));
                body["max_tokens"] = json!(40);
                body["stream"] = json!(i % 2 == 0);
                let r = llm.chat(&token, body).await;
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                let e: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(e["error"]["code"], "insufficient_quota");
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    let q = llm.settled(a.execution).await;
    let records = llm.calls_of(a.execution).await;
    assert!(ok > 0 && ok < 50, "{ok} of 50 admitted");
    assert_eq!(
        llm.mock.calls(),
        ok,
        "the refused never reached the upstream"
    );
    assert_eq!(records.len(), ok);
    assert!(q.used <= 600, "{q:?}");
    assert_eq!(q.used, records.iter().map(|r| r.charged).sum::<i64>());
    assert_eq!(q.used as usize, llm.mock.reported());
}

/// One call of a random mix.
#[derive(Debug, Clone)]
struct Shape {
    stream: bool,
    prompt_tokens: u64,
    pieces: usize,
    max_tokens: Option<u64>,
    report_usage: bool,
    /// Stream only: the client reads this many chunks, then leaves.
    leave_after: Option<usize>,
    /// Stream only: the upstream dies after this many events.
    die_after: Option<usize>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        any::<bool>(),
        1u64..50,
        0usize..25,
        proptest::option::of(1u64..300),
        proptest::bool::weighted(0.8),
        proptest::option::of(0usize..6),
        proptest::option::weighted(0.15, 1usize..8),
    )
        .prop_map(
            |(stream, prompt_tokens, pieces, max_tokens, report_usage, leave_after, die_after)| {
                Shape {
                    stream,
                    prompt_tokens,
                    pieces,
                    max_tokens,
                    report_usage,
                    leave_after: leave_after.filter(|_| stream),
                    die_after: die_after.filter(|_| stream),
                }
            },
        )
}

async fn run_call(llm: &Llm, token: &str, s: &Shape) -> u16 {
    let pieces: Vec<String> = (0..s.pieces).map(|i| format!("p{i}")).collect();
    let mut mock = json!({"content": pieces, "prompt_tokens": s.prompt_tokens,
        "usage": s.report_usage, "delay_ms": 1});
    if let Some(d) = s.die_after {
        mock["die_after"] = json!(d);
    }
    let mut body = request(mock);
    body["stream"] = json!(s.stream);
    if let Some(m) = s.max_tokens {
        body["max_tokens"] = json!(m);
    }
    let mut r = llm.chat(token, body).await;
    let status = r.status().as_u16();
    match s.leave_after {
        Some(n) => {
            for _ in 0..n {
                if !matches!(r.chunk().await, Ok(Some(_))) {
                    break;
                }
            }
            drop(r);
        }
        None => {
            let _ = r.bytes().await;
        }
    }
    status
}

fn mixes_keep_the_quota(rt: tokio::runtime::Runtime, t: TestStore) {
    let llm = rt.block_on(Llm::start(t, |_| {}));
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    });
    let strategy = (150u64..1500, proptest::collection::vec(shape(), 1..8));
    runner
        .run(&strategy, |(quota, shapes)| {
            rt.block_on(async {
                let a = llm.agent_with_tokens(quota as f64).await;
                let reported_before = llm.mock.reported();
                let statuses = futures_util::future::join_all(
                    shapes.iter().map(|s| run_call(&llm, &a.token, s)),
                )
                .await;
                for s in &statuses {
                    assert!([200, 402].contains(s), "status {s}");
                }
                let q = llm.settled(a.execution).await;
                let records = llm.calls_of(a.execution).await;
                let charged: i64 = records.iter().map(|r| r.charged).sum();
                prop_assert!(q.used <= quota as i64, "{:?} over {}", q, quota);
                prop_assert_eq!(q.used, charged);
                prop_assert_eq!(
                    records.len(),
                    statuses.iter().filter(|s| **s == 200).count()
                );
                for r in &records {
                    prop_assert!(r.charged > 0 && r.charged <= r.held, "{:?}", r);
                }
                let all_reported = records
                    .iter()
                    .all(|r| r.source.as_deref() == Some("upstream"));
                if all_reported {
                    prop_assert_eq!(q.used as usize, llm.mock.reported() - reported_before);
                }
                Ok(())
            })
        })
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn random_mixes_keep_the_quota_sqlite() {
    let rt = runtime();
    let t = rt.block_on(crate::harness::sqlite());
    mixes_keep_the_quota(rt, t);
}

#[test]
fn random_mixes_keep_the_quota_postgres() {
    let rt = runtime();
    if let Some(t) = rt.block_on(crate::harness::postgres()) {
        mixes_keep_the_quota(rt, t);
    }
}
