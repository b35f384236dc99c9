//! Property test of the whole economy's rules: random sequences of grants,
//! transfers, holds, posts, voids, bids, clearings, prompts, ratings, expiries and
//! spawn charges on the reference ledger, with the invariants of SPEC §4 asserted
//! after every step.

#![allow(clippy::unwrap_used)]

use agora_core::attention::{reward, RewardRates, Scores};
use agora_core::clearing::{clear, ClearingInput, PendingBid};
use agora_core::{
    Account, AgentId, BidId, Bundle, Credits, HoldId, HoldStatus, Ledger, Price, Prices,
    ResourceVec, TransferKind,
};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

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
        to: Option<usize>,
    },
    Void {
        hold: usize,
    },
    Bid {
        agent: usize,
        cpu_ms: u64,
        mem: u64,
        micros: i64,
    },
    Withdraw {
        bid: usize,
    },
    Clear,
    Prompt {
        agent: usize,
        micros: i64,
    },
    Rate {
        prompt: usize,
        scores: (u8, u8, u8),
    },
    Expire {
        prompt: usize,
    },
    Spawn {
        parent: usize,
        endowment: i64,
    },
}

fn micros() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        1i64..=5_000_000,
        1i64..=200_000_000,
        Just(i64::MAX),
        Just(-1i64)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6usize, 1i64..=100_000_000).prop_map(|(to, micros)| Op::Grant { to, micros }),
        (0..6usize, 0..6usize, micros()).prop_map(|(from, to, micros)| Op::Transfer {
            from,
            to,
            micros
        }),
        (0..6usize, micros()).prop_map(|(agent, micros)| Op::Hold { agent, micros }),
        (0..20usize, proptest::option::of(0..6usize)).prop_map(|(hold, to)| Op::Post { hold, to }),
        (0..20usize).prop_map(|hold| Op::Void { hold }),
        (0..6usize, 1u64..=4_000, 1u64..=600, 1i64..=30_000_000).prop_map(
            |(agent, cpu_ms, mem, micros)| Op::Bid {
                agent,
                cpu_ms,
                mem,
                micros
            }
        ),
        (0..20usize).prop_map(|bid| Op::Withdraw { bid }),
        Just(Op::Clear),
        (0..6usize, micros()).prop_map(|(agent, micros)| Op::Prompt { agent, micros }),
        (0..10usize, (0u8..=10, 0u8..=10, 0u8..=10))
            .prop_map(|(prompt, scores)| Op::Rate { prompt, scores }),
        (0..10usize).prop_map(|prompt| Op::Expire { prompt }),
        (0..6usize, 0i64..=20_000_000)
            .prop_map(|(parent, endowment)| Op::Spawn { parent, endowment }),
    ]
}

struct World {
    ledger: Ledger,
    agents: Vec<AgentId>,
    holds: Vec<HoldId>,
    /// Pending bids: (bid, its hold).
    bids: Vec<(PendingBid, HoldId)>,
    prompts: Vec<HoldId>,
    next_id: i64,
    /// Holds seen settled, with the status they settled to.
    settled: HashMap<HoldId, HoldStatus>,
}

const SPAWN_COST: i64 = 10_000_000;

fn prices() -> Prices {
    Prices([
        Price(1_000_000),
        Price(100_000),
        Price(1_000),
        Price(10_000_000),
    ])
}

impl World {
    fn new() -> World {
        let mut w = World {
            ledger: Ledger::new(),
            agents: Vec::new(),
            holds: Vec::new(),
            bids: Vec::new(),
            prompts: Vec::new(),
            next_id: 1,
            settled: HashMap::new(),
        };
        for _ in 0..3 {
            w.new_agent();
        }
        w
    }

    fn new_agent(&mut self) -> AgentId {
        let id = AgentId(self.next_id);
        self.next_id += 1;
        self.ledger.open(id);
        self.agents.push(id);
        id
    }

    fn agent(&self, i: usize) -> AgentId {
        self.agents[i % self.agents.len()]
    }

    fn apply(&mut self, op: &Op) {
        // Every operation may be refused; a refusal must change nothing, which the
        // snapshot comparison below checks.
        let before = self.snapshot();
        let refused = match *op {
            Op::Grant { to, micros } => self
                .ledger
                .mint(
                    self.agent(to),
                    Credits::from_micros(micros),
                    TransferKind::Grant,
                )
                .is_err(),
            Op::Transfer { from, to, micros } => self
                .ledger
                .move_credits(
                    Account::Agent(self.agent(from)),
                    Account::Agent(self.agent(to)),
                    Credits::from_micros(micros),
                    TransferKind::Transfer,
                )
                .is_err(),
            Op::Hold { agent, micros } => {
                match self.ledger.place_hold(
                    self.agent(agent),
                    Credits::from_micros(micros),
                    TransferKind::Transfer,
                ) {
                    Ok(h) => {
                        self.holds.push(h);
                        false
                    }
                    Err(_) => true,
                }
            }
            Op::Post { hold, to } if !self.holds.is_empty() => {
                let h = self.holds[hold % self.holds.len()];
                let dest = to.map_or(Account::Burn, |i| Account::Agent(self.agent(i)));
                self.ledger.post_hold(h, dest).is_err()
            }
            Op::Void { hold } if !self.holds.is_empty() => {
                let h = self.holds[hold % self.holds.len()];
                self.ledger.void_hold(h).is_err()
            }
            Op::Bid {
                agent,
                cpu_ms,
                mem,
                micros,
            } => {
                let a = self.agent(agent);
                let bundle = Bundle::from_base(ResourceVec([cpu_ms, mem, 0, 0]), None);
                let amount = Credits::from_micros(micros);
                if amount < prices().reserve(&bundle) {
                    true
                } else {
                    match self
                        .ledger
                        .place_hold(a, amount, TransferKind::ResourcePayment)
                    {
                        Ok(h) => {
                            let id = BidId(self.next_id);
                            self.next_id += 1;
                            let b = PendingBid {
                                id,
                                beneficiary: a,
                                amount,
                                bundle,
                                placed_at: self.next_id,
                            };
                            self.bids.push((b, h));
                            false
                        }
                        Err(_) => true,
                    }
                }
            }
            Op::Withdraw { bid } if !self.bids.is_empty() => {
                let (_, h) = self.bids.remove(bid % self.bids.len());
                self.ledger.void_hold(h).unwrap();
                false
            }
            Op::Clear => {
                let book: Vec<PendingBid> = self.bids.iter().map(|(b, _)| b.clone()).collect();
                let unavailable = HashSet::new();
                let out = clear(&ClearingInput {
                    bids: &book,
                    capacity: ResourceVec([5_000, 1_024, 0, 1_000_000]),
                    in_use: ResourceVec::default(),
                    prices: prices(),
                    unavailable: &unavailable,
                });
                let winners: HashSet<BidId> = out.winners.iter().copied().collect();
                let mut kept = Vec::new();
                for (b, h) in std::mem::take(&mut self.bids) {
                    if winners.contains(&b.id) {
                        // A winner pays its bid: the hold is posted to burn.
                        self.ledger.post_hold(h, Account::Burn).unwrap();
                    } else {
                        kept.push((b, h));
                    }
                }
                self.bids = kept;
                false
            }
            Op::Prompt { agent, micros } => {
                match self.ledger.place_hold(
                    self.agent(agent),
                    Credits::from_micros(micros),
                    TransferKind::AttentionBid,
                ) {
                    Ok(h) => {
                        self.prompts.push(h);
                        false
                    }
                    Err(_) => true,
                }
            }
            Op::Rate {
                prompt,
                scores: (i, u, d),
            } if !self.prompts.is_empty() => {
                let h = self.prompts[prompt % self.prompts.len()];
                let agent = match self.ledger.hold(h).unwrap().account {
                    Account::Agent(a) => a,
                    _ => unreachable!("prompts are held by agents"),
                };
                match self.ledger.post_hold(h, Account::Burn) {
                    Ok(_) => {
                        let s =
                            Scores::parse(Some(i.into()), Some(u.into()), Some(d.into())).unwrap();
                        let r = reward(&s, &RewardRates::default());
                        if r.is_positive() {
                            self.ledger.mint(agent, r, TransferKind::Reward).unwrap();
                        }
                        false
                    }
                    Err(_) => true,
                }
            }
            Op::Expire { prompt } if !self.prompts.is_empty() => {
                let h = self.prompts[prompt % self.prompts.len()];
                self.ledger.void_hold(h).is_err()
            }
            Op::Spawn { parent, endowment } => {
                let p = Account::Agent(self.agent(parent));
                let total = Credits::from_micros(SPAWN_COST + endowment);
                if self.ledger.available(p).unwrap() < total {
                    true
                } else {
                    self.ledger
                        .move_credits(
                            p,
                            Account::Burn,
                            Credits::from_micros(SPAWN_COST),
                            TransferKind::SpawnFee,
                        )
                        .unwrap();
                    let child = self.new_agent();
                    if endowment > 0 {
                        self.ledger
                            .move_credits(
                                p,
                                Account::Agent(child),
                                Credits::from_micros(endowment),
                                TransferKind::SpawnEndowment,
                            )
                            .unwrap();
                    }
                    false
                }
            }
            _ => true,
        };
        if refused {
            assert_eq!(
                self.snapshot(),
                before,
                "a refused {op:?} changed the ledger"
            );
        }
    }

    fn snapshot(&self) -> (Vec<Option<Credits>>, usize, Vec<Option<HoldStatus>>) {
        let balances = [Account::Mint, Account::Burn]
            .into_iter()
            .chain(self.agents.iter().map(|a| Account::Agent(*a)))
            .flat_map(|a| [self.ledger.balance(a), self.ledger.held(a)])
            .collect();
        let holds = (1..=self.next_id + 50)
            .map(|i| self.ledger.hold(HoldId(i)).map(|h| h.status))
            .collect();
        (balances, self.ledger.transfers().len(), holds)
    }

    fn check_invariants(&mut self) {
        let mut sum: i128 = 0;
        let mut agents: i128 = 0;
        for a in &self.agents {
            let acc = Account::Agent(*a);
            let b = self.ledger.balance(acc).unwrap();
            assert!(b >= Credits::ZERO, "agent {a} balance {b} < 0");
            assert!(
                self.ledger.available(acc).unwrap() >= Credits::ZERO,
                "agent {a} available < 0"
            );
            agents += i128::from(b.micros());
        }
        sum += agents;
        let mint = i128::from(self.ledger.balance(Account::Mint).unwrap().micros());
        let burn = i128::from(self.ledger.balance(Account::Burn).unwrap().micros());
        sum += mint + burn;
        assert_eq!(sum, 0, "sum of all balances");
        assert_eq!(-mint - burn, agents, "minted − burned = Σ agent balances");
        // Every hold settles at most once: once settled, its status never changes.
        let mut settlements: HashMap<HoldId, usize> = HashMap::new();
        for t in self.ledger.transfers() {
            if let Some(h) = t.hold {
                *settlements.entry(h).or_default() += 1;
            }
        }
        for (h, n) in &settlements {
            assert_eq!(*n, 1, "hold {h} posted {n} times");
        }
        for i in 1..=self.next_id + 50 {
            let id = HoldId(i);
            let Some(hold) = self.ledger.hold(id) else {
                continue;
            };
            if let Some(prev) = self.settled.get(&id) {
                assert_eq!(*prev, hold.status, "hold {id} settled twice");
            } else if hold.status != HoldStatus::Pending {
                self.settled.insert(id, hold.status);
            }
        }
        assert_eq!(self.ledger.audit(), vec![], "audit");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_step(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
            w.check_invariants();
        }
    }
}
