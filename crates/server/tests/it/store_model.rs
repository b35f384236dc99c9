//! The store against the reference model: random sequences of grants, transfers,
//! holds, posts, voids, spawns and message fees run on the SQL store and on
//! `agora_core::Ledger`; after every step both agree on every outcome and balance,
//! and the store's audit is clean.

use crate::harness::{self, TestStore};
use agora_core::{Account, AgentId, Credits, HoldId, Ledger, LedgerError, TransferKind};
use agora_server::store::{Rejection, SpawnRequest, StoreError, TransferRequest};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Grant {
        to: usize,
        micros: i64,
    },
    Transfer {
        from: usize,
        to: usize,
        micros: i64,
    },
    Hold {
        agent: usize,
        micros: i64,
    },
    Post {
        hold: usize,
        to_burn: bool,
        to: usize,
    },
    Void {
        hold: usize,
    },
    Spawn {
        parent: usize,
        endowment: i64,
    },
    Message {
        from: usize,
    },
}

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        1i64..=2_000_000,
        1_000_000i64..=60_000_000,
        Just(i64::MAX)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..8usize, 1i64..=50_000_000).prop_map(|(to, micros)| Op::Grant { to, micros }),
        (0..8usize, 0..8usize, amount()).prop_map(|(from, to, micros)| Op::Transfer {
            from,
            to,
            micros
        }),
        (0..8usize, amount()).prop_map(|(agent, micros)| Op::Hold { agent, micros }),
        (0..16usize, any::<bool>(), 0..8usize).prop_map(|(hold, to_burn, to)| Op::Post {
            hold,
            to_burn,
            to
        }),
        (0..16usize).prop_map(|hold| Op::Void { hold }),
        (0..8usize, 0i64..=20_000_000)
            .prop_map(|(parent, endowment)| Op::Spawn { parent, endowment }),
        (0..8usize).prop_map(|from| Op::Message { from }),
    ]
}

const SPAWN_COST: i64 = 1_000_000;
const MESSAGE_COST: i64 = 100_000;

fn code_of(r: Result<(), LedgerError>) -> Result<(), &'static str> {
    r.map_err(|e| Rejection::Ledger(e).code())
}

fn store_code<T>(r: Result<T, StoreError>) -> Result<T, &'static str> {
    r.map_err(|e| match e {
        StoreError::Rejected(r) => r.code(),
        other => panic!("store fault: {other:?}"),
    })
}

/// Runs `ops` on both and checks agreement after each.
async fn run(t: TestStore, ops: Vec<Op>) {
    let mut model = Ledger::new();
    let mut agents: Vec<AgentId> = Vec::new();
    for _ in 0..3 {
        let a = t.agent(0).await;
        model.open(a);
        agents.push(a);
    }
    let mut holds: Vec<(HoldId, HoldId)> = Vec::new(); // (model, store)
    let pick = |agents: &Vec<AgentId>, i: usize| agents[i % agents.len()];
    for op in ops {
        match op {
            Op::Grant { to, micros } => {
                let a = pick(&agents, to);
                let m = code_of(
                    model
                        .mint(a, Credits::from_micros(micros), TransferKind::Grant)
                        .map(|_| ()),
                );
                let s = store_code(
                    t.store
                        .grant(a, Credits::from_micros(micros), "g")
                        .await
                        .map(|_| ()),
                );
                assert_eq!(m, s, "{op:?}");
            }
            Op::Transfer { from, to, micros } => {
                let (f, d) = (pick(&agents, from), pick(&agents, to));
                let amount = Credits::from_micros(micros);
                let m = code_of(
                    model
                        .move_credits(
                            Account::Agent(f),
                            Account::Agent(d),
                            amount,
                            TransferKind::Transfer,
                        )
                        .map(|_| ()),
                );
                let req = TransferRequest {
                    from: f,
                    to: d,
                    amount,
                    memo: String::new(),
                    idempotency_key: None,
                };
                let s = store_code(t.store.transfer(req).await.map(|_| ()));
                assert_eq!(m, s, "{op:?}");
            }
            Op::Hold { agent, micros } => {
                let a = pick(&agents, agent);
                let amount = Credits::from_micros(micros);
                let m = model.place_hold(a, amount, TransferKind::ResourcePayment);
                let s = store_code(
                    t.store
                        .place_hold(a, amount, TransferKind::ResourcePayment)
                        .await,
                );
                match (m, s) {
                    (Ok(mh), Ok(sh)) => holds.push((mh, sh)),
                    (m, s) => assert_eq!(
                        m.map(|_| ()).map_err(|e| Rejection::Ledger(e).code()),
                        s.map(|_| ()),
                        "{op:?}"
                    ),
                }
            }
            Op::Post { hold, to_burn, to } if !holds.is_empty() => {
                let (mh, sh) = holds[hold % holds.len()];
                let dest = if to_burn {
                    Account::Burn
                } else {
                    Account::Agent(pick(&agents, to))
                };
                let m = code_of(model.post_hold(mh, dest).map(|_| ()));
                let s = store_code(t.store.post_hold(sh, dest).await.map(|_| ()));
                assert_eq!(m, s, "{op:?}");
            }
            Op::Void { hold } if !holds.is_empty() => {
                let (mh, sh) = holds[hold % holds.len()];
                let m = code_of(model.void_hold(mh));
                let s = store_code(t.store.void_hold(sh).await.map(|_| ()));
                assert_eq!(m, s, "{op:?}");
            }
            Op::Spawn { parent, endowment } => {
                let p = pick(&agents, parent);
                let total = Credits::from_micros(SPAWN_COST + endowment);
                let req = SpawnRequest {
                    parent: p,
                    initial_credits: Credits::from_micros(endowment),
                    spawn_cost: Credits::from_micros(SPAWN_COST),
                    workspaces_root: t.workspaces(),
                };
                let s = store_code(t.store.spawn(req).await);
                let affordable = model.available(Account::Agent(p)).unwrap_or_default() >= total;
                match s {
                    Ok(child) => {
                        assert!(affordable, "{op:?}");
                        model.open(child);
                        model
                            .move_credits(
                                Account::Agent(p),
                                Account::Burn,
                                Credits::from_micros(SPAWN_COST),
                                TransferKind::SpawnFee,
                            )
                            .unwrap();
                        if endowment > 0 {
                            model
                                .move_credits(
                                    Account::Agent(p),
                                    Account::Agent(child),
                                    Credits::from_micros(endowment),
                                    TransferKind::SpawnEndowment,
                                )
                                .unwrap();
                        }
                        agents.push(child);
                    }
                    Err(code) => {
                        assert!(!affordable, "{op:?}");
                        assert_eq!(code, "insufficient_funds");
                    }
                }
            }
            Op::Message { from } => {
                let f = pick(&agents, from);
                let to = pick(&agents, from + 1);
                let fee = Credits::from_micros(MESSAGE_COST);
                let m = code_of(
                    model
                        .move_credits(
                            Account::Agent(f),
                            Account::Burn,
                            fee,
                            TransferKind::MessageFee,
                        )
                        .map(|_| ()),
                );
                let s = store_code(
                    t.store
                        .send_message(f, to, "m".into(), fee)
                        .await
                        .map(|_| ()),
                );
                assert_eq!(m, s, "{op:?}");
            }
            _ => {}
        }
        for &a in &agents {
            let b = t.store.balance(a).await.unwrap();
            assert_eq!(
                Some(b.balance),
                model.balance(Account::Agent(a)),
                "balance of {a} after {op:?}"
            );
            assert_eq!(
                Some(b.held),
                model.held(Account::Agent(a)),
                "held of {a} after {op:?}"
            );
            assert!(b.balance >= Credits::ZERO && b.available >= Credits::ZERO);
        }
        for sys in [Account::Mint, Account::Burn] {
            let b = t.store.account_balance(sys).await.unwrap().unwrap();
            assert_eq!(Some(b.balance), model.balance(sys), "{sys} after {op:?}");
        }
        assert!(model.audit().is_empty());
        t.assert_audit_clean().await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(async { run(harness::sqlite().await, ops).await });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn postgres_store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(async {
            if let Some(t) = harness::postgres().await {
                run(t, ops).await;
            }
        });
    }
}
