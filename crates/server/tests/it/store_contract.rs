//! The store contract: every behaviour the economy relies on, run against SQLite
//! and PostgreSQL alike (see `contract!`).

use crate::contract;
use crate::harness::{cr, race, TestStore};
use agora_core::attention::{RewardRates, Scores};
use agora_core::clearing::{clear, ClearingInput};
use agora_core::lifecycle::{AgentStatus, BidStatus, DeathReason, ExecutionStatus};
use agora_core::{
    Account, AgentId, Bundle, BundleLimits, BundleSpec, Credits, Cycle, LedgerError, TransferKind,
};
use agora_server::store::{
    ExecutionEnd, NewBid, Newest, Rebid, Rejection, SpawnRequest, StoreError, TransferRequest,
};

contract!(
    grants_and_transfers_move_exact_amounts,
    concurrent_transfers_never_overspend,
    idempotency_key_moves_money_once,
    bad_input_is_refused_and_changes_nothing,
    holds_settle_exactly_once_even_when_raced,
    bids_respect_reserve_limits_and_release_holds,
    concurrent_bids_respect_the_pending_limit,
    allocation_pays_once_and_creates_the_execution,
    law_two_and_the_cull_kill_agents_without_bids,
    lost_executions_are_refunded_and_bid_again,
    cycles_record_prices_and_history,
    ratings_pay_exactly_once,
    concurrent_prompts_leave_exactly_one_active,
    racing_twins_are_refused_not_faults,
    prompts_expire_and_release_their_escrow,
    spawn_charges_fee_and_endowment_atomically,
    concurrent_spawns_never_overspend,
    messages_burn_their_fee,
    audit_names_tampering,
    bootstrap_creates_genesis_once,
    console_reads_the_population_and_its_history,
);

fn rejection(e: StoreError) -> Rejection {
    match e {
        StoreError::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn transfer(from: AgentId, to: AgentId, amount: Credits, key: Option<&str>) -> TransferRequest {
    TransferRequest {
        from,
        to,
        amount,
        memo: "t".into(),
        idempotency_key: key.map(str::to_string),
    }
}

fn bundle(cpu: f64, mem: f64, tokens: f64, attention: f64) -> Bundle {
    let spec = BundleSpec {
        cpu_seconds: cpu,
        memory_mb: mem,
        tokens,
        attention_share: attention,
        wall_seconds: None,
    };
    Bundle::parse(&spec, &BundleLimits::default()).unwrap()
}

/// Places a bid that must be accepted.
async fn place(t: &TestStore, b: NewBid) -> agora_server::store::BidRecord {
    t.store.place_bid(b).await.unwrap()
}

/// Records a cycle that allocated nothing, at `prices`.
async fn record_idle_cycle(t: &TestStore, cycle: Cycle, prices: agora_core::Prices) {
    t.store
        .record_cycle(agora_server::store::CycleRecord {
            cycle,
            allocated: Default::default(),
            utilisation: [0.0; 4],
            new_prices: prices,
        })
        .await
        .unwrap();
}

fn bid(payer: AgentId, b: Bundle, amount: Credits) -> NewBid {
    NewBid {
        payer,
        beneficiary: payer,
        bundle: b,
        amount,
        ttl_cycles: 20,
        max_pending: 10,
    }
}

async fn grants_and_transfers_move_exact_amounts(t: TestStore) {
    let a = t.agent(100).await;
    let b = t.agent(0).await;
    let amount = Credits::parse("0.000001").unwrap();
    let (rec, replay) = t
        .store
        .transfer(transfer(a, b, amount, None))
        .await
        .unwrap();
    assert!(!replay);
    assert_eq!(rec.amount, amount);
    assert_eq!(rec.kind, "transfer");
    assert_eq!(t.balance(a).await, Credits::parse("99.999999").unwrap());
    assert_eq!(t.balance(b).await, amount);
    let history = t.store.history(b, Newest::first(10)).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].debit, format!("agent:{a}"));
    let mint = t
        .store
        .account_balance(Account::Mint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mint.balance, Credits::from_micros(-100_000_000));
    t.assert_audit_clean().await;
}

async fn concurrent_transfers_never_overspend(t: TestStore) {
    let a = t.agent(100).await;
    let b = t.agent(0).await;
    let ok = race(
        &t,
        200,
        |_, s| async move { s.transfer(transfer(a, b, cr(10), None)).await },
        |r| matches!(r, Rejection::Ledger(LedgerError::InsufficientFunds { .. })),
    )
    .await;
    assert_eq!(ok.len(), 10, "exactly the affordable transfers succeed");
    assert_eq!(t.balance(a).await, Credits::ZERO);
    assert_eq!(t.balance(b).await, cr(100));
    t.assert_audit_clean().await;
}

async fn idempotency_key_moves_money_once(t: TestStore) {
    let a = t.agent(100).await;
    let b = t.agent(0).await;
    let (first, replay) = t
        .store
        .transfer(transfer(a, b, cr(5), Some("k1")))
        .await
        .unwrap();
    assert!(!replay);
    let (again, replay) = t
        .store
        .transfer(transfer(a, b, cr(5), Some("k1")))
        .await
        .unwrap();
    assert!(replay);
    assert_eq!(first, again);
    let err = t
        .store
        .transfer(transfer(a, b, cr(6), Some("k1")))
        .await
        .unwrap_err();
    assert!(matches!(
        rejection(err),
        Rejection::IdempotencyConflict { .. }
    ));
    // Eight concurrent retries of a new key still move the money once.
    let mut ids: Vec<_> = race(
        &t,
        8,
        |_, s| async move { s.transfer(transfer(a, b, cr(7), Some("k2"))).await },
        |_| false,
    )
    .await
    .into_iter()
    .map(|(rec, _)| rec.id)
    .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry returns the same transfer");
    assert_eq!(t.balance(b).await, cr(12));
    t.assert_audit_clean().await;
}

async fn bad_input_is_refused_and_changes_nothing(t: TestStore) {
    let a = t.agent(10).await;
    let b = t.agent(0).await;
    let before = t.store.audit().await.unwrap();
    let cases: Vec<(TransferRequest, &str)> = vec![
        (transfer(a, b, Credits::ZERO, None), "amount_not_positive"),
        (transfer(a, a, cr(1), None), "self_transfer"),
        (transfer(a, AgentId(999), cr(1), None), "unknown_agent"),
        (transfer(AgentId(999), a, cr(1), None), "unknown_agent"),
        (transfer(a, b, cr(11), None), "insufficient_funds"),
        (
            transfer(a, b, Credits::from_micros(i64::MAX), None),
            "insufficient_funds",
        ),
    ];
    for (req, code) in cases {
        let e = rejection(t.store.transfer(req).await.unwrap_err());
        assert_eq!(e.code(), code);
    }
    assert!(matches!(
        rejection(t.store.grant(AgentId(999), cr(1), "x").await.unwrap_err()),
        Rejection::UnknownAgent(_)
    ));
    assert!(matches!(
        rejection(t.store.grant(a, Credits::ZERO, "x").await.unwrap_err()),
        Rejection::Ledger(LedgerError::NotPositive)
    ));
    assert!(matches!(
        rejection(
            t.store
                .place_hold(a, Credits::from_micros(-5), TransferKind::Transfer)
                .await
                .unwrap_err()
        ),
        Rejection::Ledger(LedgerError::NotPositive)
    ));
    assert_eq!(t.store.audit().await.unwrap(), before, "nothing changed");
    assert_eq!(t.balance(a).await, cr(10));
    t.assert_audit_clean().await;
}

async fn holds_settle_exactly_once_even_when_raced(t: TestStore) {
    let a = t.agent(10).await;
    let h = t
        .store
        .place_hold(a, cr(4), TransferKind::ResourcePayment)
        .await
        .unwrap();
    assert_eq!(t.available(a).await, cr(6));
    let e = rejection(
        t.store
            .place_hold(a, cr(7), TransferKind::ResourcePayment)
            .await
            .unwrap_err(),
    );
    assert!(matches!(
        e,
        Rejection::Ledger(LedgerError::InsufficientFunds { .. })
    ));
    // Eight posts and eight voids race for one hold: exactly one settles it.
    let settled = race(
        &t,
        16,
        move |i, s| async move {
            if i % 2 == 0 {
                s.post_hold(h, Account::Burn).await.map(|_| "posted")
            } else {
                s.void_hold(h).await.map(|_| "voided")
            }
        },
        |r| matches!(r, Rejection::Ledger(LedgerError::HoldSettled { .. })),
    )
    .await;
    assert_eq!(settled.len(), 1, "a hold is settled exactly once");
    let expected = if settled[0] == "posted" {
        cr(6)
    } else {
        cr(10)
    };
    assert_eq!(t.balance(a).await, expected);
    assert_eq!(t.available(a).await, expected);
    t.assert_audit_clean().await;
}

async fn bids_respect_reserve_limits_and_release_holds(t: TestStore) {
    let a = t.agent(100).await;
    let b = bundle(1.0, 10.0, 0.0, 0.0); // reserve 1 + 1 = 2 credits
    let e = rejection(
        t.store
            .place_bid(bid(a, b, Credits::parse("1.999999").unwrap()))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e,
        Rejection::BelowReserve {
            offered: Credits::parse("1.999999").unwrap(),
            reserve: cr(2)
        }
    );
    let placed = place(&t, bid(a, b, cr(2))).await;
    assert_eq!(placed.status, BidStatus::Pending);
    assert_eq!(t.available(a).await, cr(98));
    let raised = t.store.raise_bid(a, placed.id, cr(5)).await.unwrap();
    assert_eq!(raised.amount, cr(5));
    assert_eq!(t.available(a).await, cr(95));
    assert!(matches!(
        rejection(t.store.raise_bid(a, placed.id, cr(4)).await.unwrap_err()),
        Rejection::NotARaise { .. }
    ));
    let other = t.agent(10).await;
    assert!(matches!(
        rejection(t.store.withdraw_bid(other, placed.id).await.unwrap_err()),
        Rejection::NotYourBid(_)
    ));
    t.store.withdraw_bid(a, placed.id).await.unwrap();
    assert_eq!(t.available(a).await, cr(100));
    assert!(matches!(
        rejection(t.store.withdraw_bid(a, placed.id).await.unwrap_err()),
        Rejection::BidNotPending { .. }
    ));
    // The pending-bid limit.
    let mut limited = bid(a, b, cr(2));
    limited.max_pending = 2;
    t.store.place_bid(limited.clone()).await.unwrap();
    t.store.place_bid(limited.clone()).await.unwrap();
    assert!(matches!(
        rejection(t.store.place_bid(limited).await.unwrap_err()),
        Rejection::TooManyBids { max: 2 }
    ));
    // Expiry: bids placed in cycle 0 with ttl 20 expire when cycle 21 begins.
    assert_eq!(t.store.expire_bids(Cycle(20)).await.unwrap(), 0);
    assert_eq!(t.store.expire_bids(Cycle(21)).await.unwrap(), 2);
    assert_eq!(t.available(a).await, cr(100));
    let rejected = t.store.events_after(0, 1000).await.unwrap();
    assert!(
        rejected.iter().any(|e| e.kind == "bid_rejected"),
        "refusals are events"
    );
    t.assert_audit_clean().await;
}

async fn concurrent_bids_respect_the_pending_limit(t: TestStore) {
    let a = t.agent(1000).await;
    let ok = race(
        &t,
        20,
        |_, s| async move {
            let mut b = bid(a, bundle(1.0, 10.0, 0.0, 0.0), cr(2));
            b.max_pending = 5;
            s.place_bid(b).await
        },
        |r| matches!(r, Rejection::TooManyBids { max: 5 }),
    )
    .await;
    assert_eq!(ok.len(), 5, "the pending-bid limit holds under concurrency");
    assert_eq!(t.available(a).await, cr(990));
    t.assert_audit_clean().await;
}

async fn allocation_pays_once_and_creates_the_execution(t: TestStore) {
    let a = t.agent(100).await;
    let b = t.agent(100).await;
    let big = place(&t, bid(a, bundle(1.0, 100.0, 0.0, 0.0), cr(30))).await;
    let small = place(&t, bid(b, bundle(1.0, 10.0, 0.0, 0.0), cr(3))).await;
    let cycle = t.store.begin_cycle().await.unwrap();
    let (bids, capacity, in_use, prices, unavailable) = t.store.clearing_input().await.unwrap();
    let out = clear(&ClearingInput {
        bids: &bids,
        capacity,
        in_use,
        prices,
        unavailable: &unavailable,
    });
    assert_eq!(out.winners, vec![big.id, small.id]);
    let e1 = t.store.allocate(big.id, cycle).await.unwrap().unwrap();
    assert_eq!(e1.status, ExecutionStatus::Scheduled);
    assert_eq!(e1.agent, a);
    assert!(
        t.store.allocate(big.id, cycle).await.unwrap().is_none(),
        "a won bid is not paid twice"
    );
    t.store.allocate(small.id, cycle).await.unwrap().unwrap();
    assert_eq!(t.balance(a).await, cr(70));
    let burn = t
        .store
        .account_balance(Account::Burn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(burn.balance, cr(33));
    let mem = t
        .store
        .markets()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.resource == "memory_mb")
        .unwrap();
    assert_eq!(mem.in_use, 110, "running executions hold their memory");
    // a is now running, so its next bid cannot win until the execution ends.
    place(&t, bid(a, bundle(1.0, 10.0, 0.0, 0.0), cr(3))).await;
    let (_, _, _, _, unavailable) = t.store.clearing_input().await.unwrap();
    assert!(unavailable.contains(&a));
    t.store
        .finish_execution(e1.id, ExecutionStatus::Succeeded, Some(0), None)
        .await
        .unwrap();
    let mem = t
        .store
        .markets()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.resource == "memory_mb")
        .unwrap();
    assert_eq!(mem.in_use, 10);
    t.assert_audit_clean().await;
}

async fn law_two_and_the_cull_kill_agents_without_bids(t: TestStore) {
    let a = t.agent(100).await;
    let b = t.agent(100).await;
    let c = t.agent(100).await;
    let first = place(&t, bid(a, bundle(1.0, 10.0, 0.0, 0.0), cr(5))).await;
    let bfirst = place(&t, bid(b, bundle(1.0, 10.0, 0.0, 0.0), cr(5))).await;
    let cycle = t.store.begin_cycle().await.unwrap();
    let ea = t.store.allocate(first.id, cycle).await.unwrap().unwrap();
    let eb = t.store.allocate(bfirst.id, cycle).await.unwrap().unwrap();
    // b leaves a bid before its execution ends; a does not.
    place(&t, bid(b, bundle(1.0, 10.0, 0.0, 0.0), cr(5))).await;
    assert_eq!(
        t.store
            .finish_execution(ea.id, ExecutionStatus::Failed, Some(1), None)
            .await
            .unwrap(),
        Some(DeathReason::NoBid)
    );
    assert_eq!(
        t.store
            .finish_execution(eb.id, ExecutionStatus::Succeeded, Some(0), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        t.store
            .finish_execution(eb.id, ExecutionStatus::Succeeded, Some(0), None)
            .await
            .unwrap(),
        None
    );
    let a_rec = t.store.agent(a).await.unwrap();
    assert_eq!(a_rec.status, AgentStatus::Dead);
    assert_eq!(a_rec.death_reason, Some(DeathReason::NoBid));
    assert_eq!(a_rec.execution_count, 1);
    // c never bid: the cull takes it; b has a pending bid and lives.
    let dead = t.store.cull(cycle).await.unwrap();
    assert_eq!(dead, vec![c]);
    assert_eq!(
        t.store.agent(c).await.unwrap().death_reason,
        Some(DeathReason::Culled)
    );
    assert_eq!(t.store.agent(b).await.unwrap().status, AgentStatus::Alive);
    assert_eq!(
        t.store.agent(b).await.unwrap().execution_count,
        1,
        "finishing twice counts once"
    );
    // The dead cannot bid or receive.
    assert!(matches!(
        rejection(
            t.store
                .place_bid(bid(a, bundle(1.0, 10.0, 0.0, 0.0), cr(5)))
                .await
                .unwrap_err()
        ),
        Rejection::AgentDead(_)
    ));
    assert!(matches!(
        rejection(
            t.store
                .transfer(transfer(b, a, cr(1), None))
                .await
                .unwrap_err()
        ),
        Rejection::AgentDead(_)
    ));
    t.assert_audit_clean().await;
}

/// A lost execution (crash, sandbox failure, shutdown) costs the agent nothing:
/// the payment comes back from `burn`, the bid is restored, the agent lives.
async fn lost_executions_are_refunded_and_bid_again(t: TestStore) {
    let rules = Rebid {
        ttl_cycles: 20,
        max_pending: 10,
    };
    let a = t.agent(100).await;
    let b = t.agent(100).await;
    let ba = place(&t, bid(a, bundle(1.0, 10.0, 0.0, 0.0), cr(30))).await;
    let bb = place(&t, bid(b, bundle(1.0, 10.0, 0.0, 0.0), cr(30))).await;
    let cycle = t.store.begin_cycle().await.unwrap();
    let ea = t.store.allocate(ba.id, cycle).await.unwrap().unwrap();
    let eb = t.store.allocate(bb.id, cycle).await.unwrap().unwrap();
    // a's execution had started; b's never did. Both are the runtime's failure.
    assert!(t
        .store
        .start_execution(ea.id, "process", None, "/tmp/log")
        .await
        .unwrap());
    assert_eq!(t.balance(a).await, cr(70));
    let ended = t
        .store
        .abandon_execution(ea.id, "crash".into(), rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.refunded, Some(cr(30)));
    assert_eq!(ended.death, None);
    let again = t.store.bid(ended.rebid.unwrap()).await.unwrap();
    assert_eq!(again.status, BidStatus::Pending);
    assert_eq!((again.amount, again.bundle), (ba.amount, ba.bundle));
    let bal = t.store.balance(a).await.unwrap();
    assert_eq!(
        (bal.balance, bal.held),
        (cr(100), cr(30)),
        "refunded and held again"
    );
    let rec = t.store.execution(ea.id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Lost);
    assert!(
        t.store
            .abandon_execution(ea.id, "again".into(), rules)
            .await
            .unwrap()
            .is_none(),
        "lost once, refunded once"
    );
    assert!(t
        .store
        .start_execution(ea.id, "process", None, "/tmp/log")
        .await
        .is_ok_and(|started| !started));
    // b: prices rise so that its amount is below the reserve now. The bid is
    // restored all the same (clearing waits for prices to fall), so b lives.
    let mut prices = t.store.prices().await.unwrap();
    for p in prices.0.iter_mut() {
        p.0 *= 100;
    }
    record_idle_cycle(&t, cycle, prices).await;
    let ended = t
        .store
        .abandon_execution(eb.id, "launch failed".into(), rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.refunded, Some(cr(30)));
    assert_eq!(ended.death, None);
    let restored = t.store.bid(ended.rebid.unwrap()).await.unwrap();
    assert!(restored.amount < t.store.prices().await.unwrap().reserve(&restored.bundle));
    assert_eq!(t.available(b).await, cr(70));
    assert_eq!(t.balance(b).await, cr(100));
    // Ends racing on one execution (a shutdown abandoning what its supervisor is
    // recording): exactly one of them ends it, and the refund happens once.
    // (Prices are 100 times higher now: this bundle's reserve is 200.)
    let c = t.agent(1000).await;
    let bc = place(&t, bid(c, bundle(1.0, 10.0, 0.0, 0.0), cr(300))).await;
    let cycle = t.store.begin_cycle().await.unwrap();
    let ec = t.store.allocate(bc.id, cycle).await.unwrap().unwrap();
    let ended = race(
        &t,
        8,
        move |i, store| async move {
            if i % 2 == 0 {
                store
                    .abandon_execution(ec.id, "shutdown".into(), rules)
                    .await
            } else {
                let end = ExecutionEnd::new(ExecutionStatus::Failed, Some(1), None);
                store.end_execution(ec.id, end).await
            }
        },
        |_| false,
    )
    .await;
    let winners: Vec<_> = ended.iter().flatten().collect();
    assert_eq!(winners.len(), 1, "exactly one end: {ended:?}");
    let bal = t.store.balance(c).await.unwrap();
    if winners[0].refunded.is_some() {
        assert_eq!(
            (bal.balance, bal.held),
            (cr(1000), cr(300)),
            "refunded once"
        );
    } else {
        assert_eq!(
            (bal.balance, bal.held),
            (cr(700), cr(0)),
            "paid, not refunded"
        );
    }
    t.assert_audit_clean().await;
    assert!(t.store.active_executions().await.unwrap().is_empty());
    t.assert_audit_clean().await;
}

async fn cycles_record_prices_and_history(t: TestStore) {
    assert_eq!(t.store.current_cycle().await.unwrap(), Cycle(0));
    let c1 = t.store.begin_cycle().await.unwrap();
    let c2 = t.store.begin_cycle().await.unwrap();
    assert_eq!((c1, c2), (Cycle(1), Cycle(2)));
    let before = t.store.prices().await.unwrap();
    let mut next = before;
    next.0[0] = agora_core::Price(before.0[0].0 + 100_000);
    let rec = agora_server::store::CycleRecord {
        cycle: c2,
        allocated: agora_core::ResourceVec([9_000, 0, 0, 0]),
        utilisation: [0.9, 0.0, 0.0, 0.0],
        new_prices: next,
    };
    t.store.record_cycle(rec).await.unwrap();
    assert_eq!(t.store.prices().await.unwrap(), next);
    let cpu = t
        .store
        .markets()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.resource == "cpu_seconds")
        .unwrap();
    assert_eq!((cpu.utilisation, cpu.updated_cycle), (0.9, 2));
    let history = t.store.market_history(0, 100).await.unwrap();
    assert_eq!(history.len(), 4, "one row per market");
    let cpu_row = history
        .iter()
        .find(|h| h.resource == "cpu_seconds")
        .unwrap();
    assert_eq!(
        (
            cpu_row.cycle,
            cpu_row.allocated,
            cpu_row.capacity,
            cpu_row.price
        ),
        (2, 9_000, 10_000, next.0[0].0)
    );
    let events = t.store.events_after(0, 100).await.unwrap();
    let update = events.iter().find(|e| e.kind == "price_update").unwrap();
    assert_eq!(update.cycle, Some(2));
    assert_eq!(update.data["prices"]["cpu_seconds"], "1.1");
    // Recording the same cycle twice is refused by the history's primary key.
    assert!(t
        .store
        .record_cycle(agora_server::store::CycleRecord {
            cycle: c2,
            allocated: agora_core::ResourceVec::default(),
            utilisation: [0.0; 4],
            new_prices: before,
        })
        .await
        .is_err());
    assert_eq!(
        t.store.prices().await.unwrap(),
        next,
        "a refused record changes nothing"
    );
}

/// An agent with a scheduled execution, ready to prompt.
async fn executing_agent(t: &TestStore, credits: i64) -> (AgentId, agora_core::ExecutionId) {
    let a = t.agent(credits).await;
    let placed = place(t, bid(a, bundle(1.0, 10.0, 0.0, 0.5), cr(10))).await;
    let cycle = t.store.begin_cycle().await.unwrap();
    let e = t.store.allocate(placed.id, cycle).await.unwrap().unwrap();
    (a, e.id)
}

fn scores(i: u8, u: u8, d: u8) -> Scores {
    Scores::parse(Some(f64::from(i)), Some(f64::from(u)), Some(f64::from(d))).unwrap()
}

async fn ratings_pay_exactly_once(t: TestStore) {
    let (a, ea) = executing_agent(&t, 100).await;
    let (b, eb) = executing_agent(&t, 100).await;
    let pa = t
        .store
        .submit_prompt(a, ea, serde_json::json!({"text": "a"}), cr(5))
        .await
        .unwrap();
    assert_eq!(
        pa.status.as_str(),
        "active",
        "the first prompt becomes active"
    );
    let pb = t
        .store
        .submit_prompt(b, eb, serde_json::json!({"text": "b"}), cr(8))
        .await
        .unwrap();
    assert_eq!(pb.status.as_str(), "pending", "one active prompt at a time");
    assert!(matches!(
        rejection(
            t.store
                .submit_prompt(a, ea, serde_json::json!("again"), cr(1))
                .await
                .unwrap_err()
        ),
        Rejection::PromptAlreadySubmitted(_)
    ));
    assert!(matches!(
        rejection(
            t.store
                .submit_prompt(a, eb, serde_json::json!("not mine"), cr(1))
                .await
                .unwrap_err()
        ),
        Rejection::UnknownExecution(_)
    ));
    assert_eq!(t.available(a).await, cr(85));
    // Eight concurrent ratings of the active prompt: exactly one pays.
    let paid = race(
        &t,
        8,
        |_, s| async move {
            s.reward_prompt(
                pa.id,
                scores(7, 8, 9),
                "good".into(),
                RewardRates::default(),
            )
            .await
        },
        |r| matches!(r, Rejection::PromptNotActive { .. }),
    )
    .await;
    assert_eq!(paid.len(), 1, "a prompt is rated once");
    assert_eq!(paid[0].reward, cr(24 * 50));
    assert_eq!(paid[0].next_active, Some(pb.id));
    // 100 − 10 (execution) − 5 (escrow burned) + 1200.
    assert_eq!(t.balance(a).await, cr(1285));
    assert_eq!(
        t.store.agent(a).await.unwrap().total_credits_earned,
        cr(1200)
    );
    // A zero rating burns the escrow and mints nothing.
    let o = t
        .store
        .reward_prompt(
            pb.id,
            scores(0, 0, 0),
            String::new(),
            RewardRates::default(),
        )
        .await
        .unwrap();
    assert_eq!(o.reward, Credits::ZERO);
    assert_eq!(t.balance(b).await, cr(82));
    t.assert_audit_clean().await;
}

async fn concurrent_prompts_leave_exactly_one_active(t: TestStore) {
    let mut executing = Vec::new();
    for _ in 0..8 {
        executing.push(executing_agent(&t, 100).await);
    }
    let executing = std::sync::Arc::new(executing);
    let submitted = race(
        &t,
        8,
        move |i, s| {
            let (a, e) = executing[i];
            async move {
                s.submit_prompt(a, e, serde_json::json!({"n": i}), cr(1 + i as i64))
                    .await
            }
        },
        |_| false,
    )
    .await;
    assert_eq!(submitted.len(), 8);
    let queue = t.store.attention_queue(100).await.unwrap();
    assert_eq!(queue.len(), 8);
    let active: Vec<_> = queue
        .iter()
        .filter(|p| p.status.as_str() == "active")
        .collect();
    assert_eq!(active.len(), 1, "exactly one prompt is active");
    assert_eq!(
        queue[0].status.as_str(),
        "active",
        "the active prompt leads the queue"
    );
    t.assert_audit_clean().await;
}

async fn racing_twins_are_refused_not_faults(t: TestStore) {
    // One bid allocated by eight racing calls: one execution, one payment.
    let a = t.agent(100).await;
    let placed = place(&t, bid(a, bundle(1.0, 10.0, 0.0, 0.0), cr(10))).await;
    let cycle = t.store.begin_cycle().await.unwrap();
    let won: Vec<_> = race(
        &t,
        8,
        move |_, s| async move { s.allocate(placed.id, cycle).await },
        |_| false,
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(won.len(), 1, "a bid wins one execution");
    assert_eq!(t.balance(a).await, cr(90), "and is paid once");
    // Eight racing prompts from one execution: one is taken.
    let exec = won[0].id;
    let taken = race(
        &t,
        8,
        move |i, s| async move { s.submit_prompt(a, exec, serde_json::json!(i), cr(1)).await },
        |r| matches!(r, Rejection::PromptAlreadySubmitted(_)),
    )
    .await;
    assert_eq!(taken.len(), 1, "one prompt per execution");
    assert_eq!(t.available(a).await, cr(89));
    t.assert_audit_clean().await;
}

async fn prompts_expire_and_release_their_escrow(t: TestStore) {
    let (a, ea) = executing_agent(&t, 100).await;
    let p = t
        .store
        .submit_prompt(a, ea, serde_json::json!("hi"), cr(5))
        .await
        .unwrap();
    let now = agora_server::store::now_micros();
    assert!(t
        .store
        .expire_prompts(now, 60_000_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        t.store
            .expire_prompts(now + 61_000_000, 60_000_000)
            .await
            .unwrap(),
        vec![p.id]
    );
    assert_eq!(t.available(a).await, cr(90));
    assert!(matches!(
        rejection(
            t.store
                .reward_prompt(p.id, scores(1, 1, 1), String::new(), RewardRates::default())
                .await
                .unwrap_err()
        ),
        Rejection::PromptNotActive { .. }
    ));
    t.assert_audit_clean().await;
}

async fn spawn_charges_fee_and_endowment_atomically(t: TestStore) {
    let parent = t.agent(100).await;
    let req = |credits: i64| SpawnRequest {
        parent,
        initial_credits: cr(credits),
        spawn_cost: cr(10),
        workspaces_root: t.workspaces(),
    };
    let child = t.store.spawn(req(30)).await.unwrap();
    assert_eq!(t.balance(parent).await, cr(60));
    assert_eq!(t.balance(child).await, cr(30));
    let rec = t.store.agent(child).await.unwrap();
    assert_eq!(rec.lineage, vec![parent]);
    assert!(rec.workspace.ends_with(&format!("agent-{child}")));
    let grandchild = t
        .store
        .spawn(SpawnRequest {
            parent: child,
            ..req(5)
        })
        .await
        .unwrap();
    assert_eq!(
        t.store.agent(grandchild).await.unwrap().lineage,
        vec![child, parent]
    );
    // Too expensive: refused whole, no child created.
    let agents_before = t.store.agents(0, 100).await.unwrap().len();
    let e = rejection(t.store.spawn(req(55)).await.unwrap_err());
    assert_eq!(
        e,
        Rejection::Ledger(LedgerError::InsufficientFunds {
            available: cr(60),
            needed: cr(65)
        })
    );
    assert_eq!(t.store.agents(0, 100).await.unwrap().len(), agents_before);
    assert_eq!(t.balance(parent).await, cr(60));
    t.assert_audit_clean().await;
}

async fn concurrent_spawns_never_overspend(t: TestStore) {
    let parent = t.agent(100).await;
    let workspaces = t.workspaces();
    let children = race(
        &t,
        12,
        move |_, s| {
            let req = SpawnRequest {
                parent,
                initial_credits: cr(15),
                spawn_cost: cr(10),
                workspaces_root: workspaces.clone(),
            };
            async move { s.spawn(req).await }
        },
        |r| matches!(r, Rejection::Ledger(LedgerError::InsufficientFunds { .. })),
    )
    .await;
    assert_eq!(children.len(), 4, "100 credits pay for four spawns of 25");
    assert_eq!(t.balance(parent).await, Credits::ZERO);
    assert_eq!(
        t.store.agents(0, 100).await.unwrap().len(),
        5,
        "refused spawns leave no agent behind"
    );
    t.assert_audit_clean().await;
}

async fn messages_burn_their_fee(t: TestStore) {
    let a = t.agent(1).await;
    let b = t.agent(0).await;
    let fee = Credits::parse("0.1").unwrap();
    t.store
        .send_message(a, b, "hello".into(), fee)
        .await
        .unwrap();
    assert_eq!(t.balance(a).await, Credits::parse("0.9").unwrap());
    assert!(matches!(
        rejection(
            t.store
                .send_message(a, a, "me".into(), fee)
                .await
                .unwrap_err()
        ),
        Rejection::MessageToSelf
    ));
    assert!(matches!(
        rejection(
            t.store
                .send_message(a, AgentId(404), "?".into(), fee)
                .await
                .unwrap_err()
        ),
        Rejection::UnknownAgent(_)
    ));
    let poor = t.agent(0).await;
    assert!(matches!(
        rejection(
            t.store
                .send_message(poor, a, "x".into(), fee)
                .await
                .unwrap_err()
        ),
        Rejection::Ledger(LedgerError::InsufficientFunds { .. })
    ));
    t.assert_audit_clean().await;
}

async fn audit_names_tampering(t: TestStore) {
    let a = t.agent(10).await;
    t.assert_audit_clean().await;
    // Tamper behind the store's back, as a bug or a hand edit would.
    t.raw(&format!(
        "UPDATE accounts SET balance = balance + 1 WHERE agent_id = {a}"
    ))
    .await;
    let codes: Vec<_> = t
        .store
        .audit()
        .await
        .unwrap()
        .violations
        .iter()
        .map(|v| v.code())
        .collect();
    assert!(codes.contains(&"balance_mismatch"), "{codes:?}");
    assert!(codes.contains(&"sum_not_zero"), "{codes:?}");
}

async fn bootstrap_creates_genesis_once(t: TestStore) {
    let g = agora_server::store::Genesis {
        workspaces_root: t.workspaces(),
        initial_credits: cr(1000),
        first_bid: bundle(1.0, 64.0, 0.0, 0.0),
        first_bid_amount: cr(20),
        bid_ttl_cycles: 20,
        max_pending_bids: 10,
    };
    let first = t.store.bootstrap_genesis(g.clone()).await.unwrap();
    assert!(first.created);
    let again = t.store.bootstrap_genesis(g).await.unwrap();
    assert!(!again.created);
    assert_eq!(first.genesis, again.genesis);
    let b = t.store.balance(first.genesis).await.unwrap();
    assert_eq!((b.balance, b.held), (cr(1000), cr(20)));
    assert_eq!(t.store.agents(0, 10).await.unwrap().len(), 1);
    let bids = t.store.bids_of(first.genesis, 10).await.unwrap();
    assert_eq!(bids.len(), 1);
    assert_eq!(bids[0].status, BidStatus::Pending);
    t.assert_audit_clean().await;
}

async fn console_reads_the_population_and_its_history(t: TestStore) {
    use agora_server::store::AgentOrder;
    let root = t.agent(1000).await;
    let spawn = |parent: AgentId, credits: i64| SpawnRequest {
        parent,
        initial_credits: cr(credits),
        spawn_cost: cr(10),
        workspaces_root: t.workspaces(),
    };
    let child = t.store.spawn(spawn(root, 300)).await.unwrap();
    let grandchild = t.store.spawn(spawn(child, 100)).await.unwrap();
    let second = t.store.spawn(spawn(root, 50)).await.unwrap();
    let loner = t.agent(5).await;
    // Only the root and the grandchild keep a bid; the cull kills the others.
    place(&t, bid(root, bundle(1.0, 64.0, 0.0, 0.0), cr(20))).await;
    place(&t, bid(grandchild, bundle(1.0, 64.0, 0.0, 0.0), cr(20))).await;
    let cycle = t.store.begin_cycle().await.unwrap();
    let mut culled = t.store.cull(cycle).await.unwrap();
    culled.sort();
    assert_eq!(culled, vec![child, second, loner]);

    // The table: every order, status filter, paging, children counted.
    let (all, total) = t
        .store
        .agent_table(None, AgentOrder::Id, 0, 100)
        .await
        .unwrap();
    assert_eq!(total, 5);
    let ids: Vec<AgentId> = all.iter().map(|r| r.agent.id).collect();
    assert_eq!(ids, vec![root, child, grandchild, second, loner]);
    let children: Vec<i64> = all.iter().map(|r| r.children).collect();
    assert_eq!(children, vec![2, 1, 0, 0, 0]);
    assert_eq!(all[0].balance, cr(1000 - 310 - 60));
    assert_eq!(all[0].held, cr(20));
    let (rich, _) = t
        .store
        .agent_table(None, AgentOrder::Balance, 0, 2)
        .await
        .unwrap();
    assert_eq!(
        rich.iter().map(|r| r.agent.id).collect::<Vec<_>>(),
        vec![root, child]
    );
    let (dead, dead_total) = t
        .store
        .agent_table(Some(AgentStatus::Dead), AgentOrder::Id, 1, 10)
        .await
        .unwrap();
    assert_eq!(dead_total, 3);
    assert_eq!(
        dead.iter().map(|r| r.agent.id).collect::<Vec<_>>(),
        vec![second, loner],
        "the second page of one row on"
    );
    for order in [AgentOrder::Executions, AgentOrder::LastExecution] {
        let (rows, n) = t.store.agent_table(None, order, 0, 10).await.unwrap();
        assert_eq!((rows.len(), n), (5, 5), "{order:?}");
        assert_eq!(AgentOrder::parse(order.as_str()), Some(order));
    }

    // The lineage tree: breadth first from the root, with each one's parent.
    let tree = t.store.descendants(root, 100).await.unwrap();
    let nodes: Vec<(AgentId, Option<AgentId>, bool)> =
        tree.iter().map(|n| (n.id, n.parent, n.alive)).collect();
    assert_eq!(
        nodes,
        vec![
            (root, None, true),
            (child, Some(root), false),
            (second, Some(root), false),
            (grandchild, Some(child), true),
        ]
    );
    assert_eq!(t.store.descendants(root, 2).await.unwrap().len(), 2);
    assert_eq!(t.store.descendants(loner, 100).await.unwrap().len(), 1);

    // One world row per recorded cycle, with the ledger's totals at that moment.
    let prices = t.store.prices().await.unwrap();
    record_idle_cycle(&t, cycle, prices).await;
    let stats = t.store.stats().await.unwrap();
    let history = t.store.world_history(10, 400).await.unwrap();
    assert_eq!(history.len(), 1);
    let p = history[0];
    assert_eq!(p.cycle, cycle.0);
    assert_eq!((p.agents_alive, p.agents_dead), (2, 3));
    assert_eq!(
        (p.agent_balances, p.agent_held, p.minted, p.burned),
        (
            stats.agent_balances,
            stats.agent_held,
            stats.minted,
            stats.burned
        )
    );
    assert_eq!(p.minted, cr(1005).micros());
    assert_eq!(p.burned, cr(30).micros(), "three spawn fees");
    let c2 = t.store.begin_cycle().await.unwrap();
    record_idle_cycle(&t, c2, prices).await;
    let last = t.store.world_history(1, 400).await.unwrap();
    assert_eq!(last.iter().map(|p| p.cycle).collect::<Vec<_>>(), vec![c2.0]);
    assert_eq!(
        t.store
            .world_history(10, 400)
            .await
            .unwrap()
            .iter()
            .map(|p| p.cycle)
            .collect::<Vec<_>>(),
        vec![cycle.0, c2.0],
        "oldest first"
    );
    let market = t.store.recent_market_history(1, 400).await.unwrap();
    assert_eq!(market.len(), 4, "the last cycle's four markets");
    assert!(market.iter().all(|h| h.cycle == c2.0));
    // A long history is sampled in the query: every k-th cycle and the last.
    let mut last = c2;
    for _ in 0..29 {
        last = t.store.begin_cycle().await.unwrap();
        record_idle_cycle(&t, last, prices).await;
    }
    assert_eq!(last.0, 31);
    let sampled: Vec<i64> = t
        .store
        .world_history(30, 10)
        .await
        .unwrap()
        .iter()
        .map(|p| p.cycle)
        .collect();
    assert_eq!(sampled, vec![3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31]);
    let market: Vec<i64> = t
        .store
        .recent_market_history(30, 10)
        .await
        .unwrap()
        .iter()
        .map(|h| h.cycle)
        .collect();
    assert_eq!(market.len(), 44, "four markets at each sampled cycle");
    assert_eq!(market.last(), Some(&31));
    t.assert_audit_clean().await;
}
