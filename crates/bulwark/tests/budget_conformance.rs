//! One contract, both backends: the same cases run on the local ledger and on Redis, driven
//! by one manual clock (at a present-day Unix time); then two OS processes share one Redis
//! budget and never spend past it.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use bulwark::budget::redis::RedisBudgets;
use bulwark::budget::{
    BudgetBackend, BudgetError, BudgetRef, BudgetSpec, Charge, Ledger, Period, PriceTable, Unit,
    Usage,
};
use bulwark::clock::ManualClock;

/// 2026-12-07T00:00:00Z.
const START: Duration = Duration::from_secs(1_796_601_600);
const TTL: Duration = Duration::from_secs(30);

fn specs() -> Vec<BudgetSpec> {
    vec![
        BudgetSpec::new("tpm", Unit::Tokens, 1_000, Period::minute()),
        BudgetSpec::new("team", Unit::Tokens, 5_000, Period::Day),
        BudgetSpec::new("rpm", Unit::Requests, 50, Period::minute()),
        BudgetSpec::new("cost", Unit::Cost, 20_000_000_000, Period::Month)
            .soft_limit(10_000_000_000),
    ]
}

fn prices() -> PriceTable {
    PriceTable::from_toml("[models.m]\ninput = 2.0\noutput = 8.0").unwrap()
}

fn local(clock: &ManualClock) -> Box<dyn BudgetBackend> {
    let mut builder = Ledger::builder()
        .clock(clock.clone())
        .unix_origin(START)
        .reservation_ttl(TTL)
        .prices(prices());
    for spec in specs() {
        builder = builder.budget(spec);
    }
    Box::new(builder.build().unwrap())
}

async fn redis(clock: &ManualClock, test: &str) -> Option<Box<dyn BudgetBackend>> {
    let mut builder = RedisBudgets::builder()
        .prefix(support::unique_prefix(test))
        .clock(clock.clone(), START)
        .reservation_ttl(TTL)
        .timeout(Duration::from_secs(2))
        .prices(prices());
    for spec in specs() {
        builder = builder.budget(spec);
    }
    match builder.connect(&support::redis_url()).await {
        Ok(budgets) => Some(Box::new(budgets)),
        Err(error) => support::unavailable("redis", error),
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use super::*;
            #[tokio::test]
            async fn local_backend() {
                let clock = ManualClock::new();
                super::$case(&*local(&clock), &clock).await;
            }
            #[tokio::test]
            async fn redis_backend() {
                let clock = ManualClock::new();
                if let Some(backend) = redis(&clock, stringify!($case)).await {
                    super::$case(&*backend, &clock).await;
                }
            }
        }
    )*};
}

conformance!(
    limit_is_inclusive,
    stacked_refusal_reserves_nothing,
    settle_refunds_and_charges,
    stale_reservations_expire,
    windows_reset,
    settling_twice_charges_once,
    cost_needs_a_price,
);

const TPM: BudgetRef<'static> = BudgetRef::new("tpm", "");

async fn remaining(backend: &dyn BudgetBackend, budget: BudgetRef<'_>) -> u64 {
    backend.snapshot(budget).await.unwrap().remaining
}

async fn limit_is_inclusive(backend: &dyn BudgetBackend, clock: &ManualClock) {
    clock.advance(Duration::from_secs(20));
    let stack = [TPM];
    let full = Charge::tokens(Usage::estimate(400, 600));
    let held = backend.reserve(&stack, &full).await.unwrap();
    let refused = backend
        .reserve(&stack, &Charge::tokens(Usage::new(1, 0)))
        .await
        .unwrap_err();
    let exceeded = refused.exceeded().unwrap();
    assert_eq!(
        (exceeded.remaining, exceeded.limit, exceeded.used),
        (0, 1_000, 1_000)
    );
    assert_eq!(exceeded.resets_in, Some(Duration::from_secs(40)));
    backend.release(&held).await.unwrap();
    assert_eq!(remaining(backend, TPM).await, 1_000);
}

async fn stacked_refusal_reserves_nothing(backend: &dyn BudgetBackend, _: &ManualClock) {
    let team = BudgetRef::new("team", "blue");
    let rpm = BudgetRef::new("rpm", "");
    let held = backend
        .reserve(&[team], &Charge::tokens(Usage::new(4_500, 0)))
        .await
        .unwrap();
    let refused = backend
        .reserve(&[TPM, rpm, team], &Charge::tokens(Usage::new(600, 0)))
        .await
        .unwrap_err();
    assert_eq!(refused.exceeded().unwrap().budget, "team");
    assert_eq!(remaining(backend, TPM).await, 1_000);
    assert_eq!(remaining(backend, rpm).await, 50);
    backend.settle(&held, Usage::new(100, 0)).await.unwrap();
    let ok = backend
        .reserve(&[TPM, rpm, team], &Charge::tokens(Usage::new(600, 0)))
        .await
        .unwrap();
    assert_eq!(remaining(backend, rpm).await, 49);
    assert_eq!(remaining(backend, team).await, 4_300);
    backend.release(&ok).await.unwrap();
}

async fn settle_refunds_and_charges(backend: &dyn BudgetBackend, _: &ManualClock) {
    let r = backend
        .reserve(&[TPM], &Charge::tokens(Usage::estimate(100, 500)))
        .await
        .unwrap();
    assert_eq!(remaining(backend, TPM).await, 400);
    let s = backend.settle(&r, Usage::new(100, 50)).await.unwrap();
    assert!(!s.overspent && !s.expired && !s.replayed);
    assert_eq!(remaining(backend, TPM).await, 850);
    let r = backend
        .reserve(&[TPM], &Charge::tokens(Usage::estimate(10, 10)))
        .await
        .unwrap();
    let s = backend.settle(&r, Usage::new(10, 900)).await.unwrap();
    assert!(s.overspent);
    let snap = backend.snapshot(TPM).await.unwrap();
    assert_eq!((snap.spent, snap.reserved, snap.remaining), (1_060, 0, 0));
}

async fn stale_reservations_expire(backend: &dyn BudgetBackend, clock: &ManualClock) {
    let run = BudgetRef::new("team", "run-1");
    let record = backend
        .reserve(&[run], &Charge::tokens(Usage::new(5_000, 0)))
        .await
        .unwrap();
    clock.advance(TTL - Duration::from_secs(1));
    assert!(
        backend
            .reserve(&[run], &Charge::tokens(Usage::new(1, 0)))
            .await
            .is_err()
    );
    clock.advance(Duration::from_secs(1));
    let fresh = backend
        .reserve(&[run], &Charge::tokens(Usage::new(1_000, 0)))
        .await
        .unwrap();
    let snap = backend.snapshot(run).await.unwrap();
    assert_eq!((snap.spent, snap.reserved), (0, 1_000));
    let late = backend.settle(&record, Usage::new(2_000, 0)).await.unwrap();
    assert!(late.expired);
    let snap = backend.snapshot(run).await.unwrap();
    assert_eq!((snap.spent, snap.reserved), (2_000, 1_000));
    backend.release(&fresh).await.unwrap();
}

async fn windows_reset(backend: &dyn BudgetBackend, clock: &ManualClock) {
    let r = backend
        .reserve(&[TPM], &Charge::tokens(Usage::new(900, 0)))
        .await
        .unwrap();
    backend.settle(&r, Usage::new(900, 0)).await.unwrap();
    clock.advance(Duration::from_secs(59));
    assert_eq!(remaining(backend, TPM).await, 100);
    clock.advance(Duration::from_secs(1));
    assert_eq!(remaining(backend, TPM).await, 1_000);
}

async fn settling_twice_charges_once(backend: &dyn BudgetBackend, _: &ManualClock) {
    let r = backend
        .reserve(&[TPM], &Charge::tokens(Usage::new(300, 0)))
        .await
        .unwrap();
    assert!(
        !backend
            .settle(&r, Usage::new(200, 0))
            .await
            .unwrap()
            .replayed
    );
    assert!(
        backend
            .settle(&r, Usage::new(200, 0))
            .await
            .unwrap()
            .replayed
    );
    assert_eq!(backend.snapshot(TPM).await.unwrap().spent, 200);
}

async fn cost_needs_a_price(backend: &dyn BudgetBackend, _: &ManualClock) {
    let cost = BudgetRef::new("cost", "acme");
    let unknown = backend
        .reserve(&[cost], &Charge::new("other", Usage::new(1, 1)))
        .await
        .unwrap_err();
    assert_eq!(unknown, BudgetError::UnknownModel("other".into()));
    // 1M input at $2/M + 1M output at $8/M = $10, exactly the soft limit; $20 is the hard one.
    let r = backend
        .reserve(&[cost], &Charge::new("m", Usage::new(1_000_000, 1_000_000)))
        .await
        .unwrap();
    assert_eq!(remaining(backend, cost).await, 10_000_000_000);
    let s = backend.settle(&r, Usage::new(500_000, 0)).await.unwrap();
    assert_eq!(s.cost, 1_000_000_000);
    assert_eq!(backend.snapshot(cost).await.unwrap().spent, 1_000_000_000);
}

/// A fixed pseudo-random sequence (xorshift) of reserves, settles and clock steps.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test]
async fn redis_and_local_agree_decision_for_decision() {
    let clock = ManualClock::new();
    let Some(shared) = redis(&clock, "agree").await else {
        return;
    };
    let local = local(&clock);
    let mut sequence = Sequence(0x9e37_79b9_7f4a_7c15);
    let stack = [TPM, BudgetRef::new("rpm", ""), BudgetRef::new("team", "t")];
    let mut held = Vec::new();
    for step in 0..400 {
        let roll = sequence.next();
        match roll % 4 {
            0 | 1 => {
                let usage = Usage::estimate(roll % 200, (roll >> 8) % 200);
                let charge = Charge::tokens(usage);
                let a = local.reserve(&stack, &charge).await;
                let b = shared.reserve(&stack, &charge).await;
                assert_eq!(a.is_ok(), b.is_ok(), "step {step}: {a:?} vs {b:?}");
                if let (Err(a), Err(b)) = (&a, &b) {
                    assert_eq!(a, b, "step {step}");
                }
                if let (Ok(a), Ok(b)) = (a, b) {
                    held.push((a, b));
                }
            }
            2 if !held.is_empty() => {
                let (a, b) = held.remove(usize::try_from(roll % held.len() as u64).unwrap());
                let actual = Usage::new(a.estimate.input_tokens, a.estimate.output_tokens / 2);
                let sa = local.settle(&a, actual).await.unwrap();
                let sb = shared.settle(&b, actual).await.unwrap();
                assert_eq!(sa, sb, "step {step}");
            }
            _ => clock.advance(Duration::from_millis((roll >> 16) % 9_000)),
        }
        for budget in stack {
            assert_eq!(
                local.snapshot(budget).await.unwrap(),
                shared.snapshot(budget).await.unwrap(),
                "step {step}"
            );
        }
    }
}

/// Entry point of the child processes of `two_processes_never_spend_past_one_budget`.
#[tokio::test]
#[ignore = "runs only as a child process of two_processes_never_spend_past_one_budget"]
async fn child_spender() {
    let prefix = std::env::var("BULWARK_CHILD_PREFIX").unwrap();
    let budgets = RedisBudgets::builder()
        .prefix(prefix)
        .budget(BudgetSpec::new(
            "shared",
            Unit::Tokens,
            10_000,
            Period::Never,
        ))
        .timeout(Duration::from_secs(2))
        .connect(&support::redis_url())
        .await
        .unwrap();
    let stack = [BudgetRef::new("shared", "")];
    let mut admitted = 0;
    for _ in 0..400 {
        match budgets
            .reserve(&stack, &Charge::tokens(Usage::estimate(60, 40)))
            .await
        {
            Ok(record) => {
                admitted += 1;
                budgets.settle(&record, Usage::new(60, 40)).await.unwrap();
            }
            Err(BudgetError::Exceeded(_)) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    println!("ADMITTED={admitted}");
}

#[tokio::test]
async fn two_processes_never_spend_past_one_budget() {
    let clock = ManualClock::new();
    if redis(&clock, "probe").await.is_none() {
        return;
    }
    let prefix = support::unique_prefix("two_spenders");
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_spender", "--exact", "--ignored", "--nocapture"])
                .env("BULWARK_CHILD_PREFIX", &prefix)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut each = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        let admitted: u64 = stdout
            .lines()
            .find_map(|line| line.strip_prefix("ADMITTED="))
            .expect("child printed its count")
            .parse()
            .unwrap();
        each.push(admitted);
    }
    // 10 000 tokens at 100 a call: exactly 100 calls fit, whoever made them.
    assert_eq!(each.iter().sum::<u64>(), 100, "{each:?}");
    let budgets = RedisBudgets::builder()
        .prefix(prefix)
        .budget(BudgetSpec::new(
            "shared",
            Unit::Tokens,
            10_000,
            Period::Never,
        ))
        .connect(&support::redis_url())
        .await
        .unwrap();
    let snap = budgets
        .snapshot(BudgetRef::new("shared", ""))
        .await
        .unwrap();
    assert_eq!((snap.spent, snap.reserved), (10_000, 0));
}
