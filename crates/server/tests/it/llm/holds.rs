//! Holds in the store: admitted atomically, settled once, and those a crash or a
//! stuck call left behind charged at their full amount (never less than the
//! call could have used), on both backends.

use crate::api::harness::TestApi;
use crate::contract;
use crate::harness::TestStore;
use agora_server::store::{HoldOutcome, LlmCallStatus, LlmSettlement, NewLlmCall, UsageSource};
use std::time::Duration;

contract!(
    holds_are_settled_once_and_never_charge_more_than_held,
    leftover_holds_are_charged_in_full_by_reconciliation_and_expiry,
);

fn new_call(execution: agora_core::ExecutionId, ttl: Duration) -> NewLlmCall {
    NewLlmCall {
        execution,
        model: "m".into(),
        stream: false,
        hold_ttl: ttl,
    }
}

fn settlement(charge: i64) -> LlmSettlement {
    LlmSettlement {
        prompt_tokens: Some(charge),
        completion_tokens: Some(0),
        source: UsageSource::Upstream,
        charge,
        status: LlmCallStatus::Completed,
        http_status: Some(200),
        latency_ms: Some(1),
        first_token_ms: None,
        overhead_us: Some(1),
    }
}

async fn holds_are_settled_once_and_never_charge_more_than_held(t: TestStore) {
    let api = TestApi::start(t).await;
    let a = api.agent(10).await; // 1000 tokens
    let store = &api.t.store;
    let hour = Duration::from_secs(3600);
    let HoldOutcome::Held { call, held, quota } = store
        .hold_llm_tokens(new_call(a.execution, hour), |_| Some(600))
        .await
        .unwrap()
    else {
        panic!("not held")
    };
    assert_eq!((held, quota.remaining()), (600, 1000));
    // What is held is not available to the next call.
    let next = store
        .hold_llm_tokens(new_call(a.execution, hour), |_| Some(401))
        .await
        .unwrap();
    assert!(matches!(next, HoldOutcome::Refused { quota } if quota.remaining() == 400));
    // A charge above the hold is cut to the hold; a second settlement is ignored.
    assert_eq!(
        store.settle_llm_call(call, settlement(9999)).await.unwrap(),
        Some(600)
    );
    assert_eq!(
        store.settle_llm_call(call, settlement(1)).await.unwrap(),
        None
    );
    let q = store.llm_quota(a.execution).await.unwrap();
    assert_eq!((q.used, q.held), (600, 0));
    // An ended execution admits nothing.
    store
        .finish_execution(
            a.execution,
            agora_core::lifecycle::ExecutionStatus::Succeeded,
            Some(0),
            None,
        )
        .await
        .unwrap();
    let after = store
        .hold_llm_tokens(new_call(a.execution, hour), |_| Some(1))
        .await
        .unwrap();
    assert_eq!(after, HoldOutcome::NotRunning);
}

async fn leftover_holds_are_charged_in_full_by_reconciliation_and_expiry(t: TestStore) {
    let api = TestApi::start(t).await;
    let a = api.agent(10).await;
    let store = &api.t.store;
    let hour = Duration::from_secs(3600);
    let mut calls = Vec::new();
    for h in [100, 250] {
        match store
            .hold_llm_tokens(new_call(a.execution, hour), move |_| Some(h))
            .await
            .unwrap()
        {
            HoldOutcome::Held { call, .. } => calls.push(call),
            other => panic!("{other:?}"),
        }
    }
    // As after a crash: the process that held them is gone.
    assert_eq!(store.reconcile_llm_holds().await.unwrap(), 2);
    let q = store.llm_quota(a.execution).await.unwrap();
    assert_eq!((q.used, q.held), (350, 0));
    let records = store.llm_calls_of(a.execution).await.unwrap();
    assert!(records.iter().all(|r| r.status == "expired"
        && r.charged == r.held
        && r.source.as_deref() == Some("estimated")));
    // The late settlement of an expired call changes nothing.
    assert_eq!(
        store
            .settle_llm_call(calls[0], settlement(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.llm_quota(a.execution).await.unwrap().used, 350);
    // A hold older than the TTL is charged in full when the next call is admitted.
    let HoldOutcome::Held { .. } = store
        .hold_llm_tokens(new_call(a.execution, hour), |_| Some(50))
        .await
        .unwrap()
    else {
        panic!("not held")
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let outcome = store
        .hold_llm_tokens(new_call(a.execution, Duration::from_millis(1)), |q| {
            assert_eq!(
                (q.used, q.held),
                (400, 0),
                "the stale hold was charged first"
            );
            Some(10)
        })
        .await
        .unwrap();
    assert!(matches!(outcome, HoldOutcome::Held { .. }));
    assert_eq!(store.reconcile_llm_holds().await.unwrap(), 1);
    let q = store.llm_quota(a.execution).await.unwrap();
    assert_eq!((q.used, q.held), (410, 0));
}
