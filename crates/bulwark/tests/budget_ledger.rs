//! Reserve/settle arithmetic, stacking, refunds, expiry, soft limits and restore, on the
//! manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark::budget::{
    BudgetError, BudgetEvent, BudgetObserver, BudgetSpec, Charge, Ledger, Period, PriceTable, Unit,
    Usage,
};
use bulwark::clock::ManualClock;

/// 2026-12-07T00:00:00Z, a Monday.
const MIDNIGHT: Duration = Duration::from_secs(1_796_601_600);

fn prices() -> PriceTable {
    PriceTable::from_toml(
        r#"
        [models."gpt-4o"]
        input = 2.5
        cached_input = 1.25
        output = 10.0
        "#,
    )
    .unwrap()
}

fn ledger(clock: &ManualClock, specs: Vec<BudgetSpec>) -> Ledger<ManualClock> {
    let mut builder = Ledger::builder()
        .clock(clock.clone())
        .unix_origin(MIDNIGHT)
        .prices(prices())
        .reservation_ttl(Duration::from_secs(60));
    for spec in specs {
        builder = builder.budget(spec);
    }
    builder.build().unwrap()
}

fn tokens(limit: u64) -> BudgetSpec {
    BudgetSpec::new("tpm", Unit::Tokens, limit, Period::minute())
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl BudgetObserver for Recorder {
    fn on_budget_event(&self, event: &BudgetEvent<'_>) {
        let line = match event {
            BudgetEvent::Rejected(e) => format!("rejected {} {}", e.budget, e.key),
            BudgetEvent::SoftLimitCrossed { budget, used, .. } => format!("soft {budget} {used}"),
            BudgetEvent::Expired { .. } => "expired".into(),
            BudgetEvent::Settled {
                cost, overspent, ..
            } => format!("settled {cost} {overspent}"),
            _ => "other".into(),
        };
        self.0.lock().unwrap().push(line);
    }
}

#[test]
fn limit_is_inclusive_and_refusal_says_what_is_left_and_when_it_resets() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(15));
    let ledger = ledger(&clock, vec![tokens(1_000)]);
    let tpm = [ledger.budget("tpm", "").unwrap()];
    let first = ledger
        .reserve(&tpm, &Charge::tokens(Usage::estimate(400, 600)))
        .unwrap();
    let error = ledger
        .reserve(&tpm, &Charge::tokens(Usage::estimate(1, 0)))
        .unwrap_err();
    let exceeded = error.exceeded().unwrap();
    assert_eq!(
        (
            exceeded.limit,
            exceeded.used,
            exceeded.requested,
            exceeded.remaining
        ),
        (1_000, 1_000, 1, 0)
    );
    assert_eq!(exceeded.resets_in, Some(Duration::from_secs(45)));
    assert!(
        error.to_string().contains("budget `tpm` exceeded"),
        "{error}"
    );
    drop(first);
}

#[test]
fn settling_refunds_what_the_call_did_not_use_and_charges_what_it_did() {
    let clock = ManualClock::new();
    let ledger = ledger(&clock, vec![tokens(10_000)]);
    let tpm = [ledger.budget("tpm", "").unwrap()];
    let r = ledger
        .reserve(&tpm, &Charge::tokens(Usage::estimate(1_000, 4_000)))
        .unwrap();
    assert_eq!(ledger.snapshot_of(tpm[0]).unwrap().reserved, 5_000);
    let settled = r.settle(Usage::new(900, 100).with_cached(100));
    assert!(!settled.overspent && !settled.expired);
    let snap = ledger.snapshot_of(tpm[0]).unwrap();
    assert_eq!(
        (snap.spent, snap.reserved, snap.remaining),
        (1_100, 0, 8_900)
    );

    // A provider that ignored max_tokens: charged all the same, reported overspent.
    let r = ledger
        .reserve(&tpm, &Charge::tokens(Usage::estimate(100, 100)))
        .unwrap();
    let settled = r.settle(Usage::new(100, 9_000));
    assert!(settled.overspent);
    let snap = ledger.snapshot_of(tpm[0]).unwrap();
    assert_eq!((snap.spent, snap.remaining), (10_200, 0));
}

#[test]
fn a_stacked_call_must_fit_every_budget_and_a_refusal_reserves_on_none() {
    let clock = ManualClock::new();
    let ledger = ledger(
        &clock,
        vec![
            tokens(10_000),
            BudgetSpec::new("team", Unit::Tokens, 3_000, Period::Day),
            BudgetSpec::new("key", Unit::Tokens, 100_000, Period::Day),
            BudgetSpec::new("rpm", Unit::Requests, 10, Period::minute()),
        ],
    );
    let stack = [
        ledger.budget("tpm", "").unwrap(),
        ledger.budget("key", "sk-1").unwrap(),
        ledger.budget("team", "blue").unwrap(),
        ledger.budget("rpm", "").unwrap(),
    ];
    let held = ledger
        .reserve(&stack, &Charge::tokens(Usage::estimate(1_000, 1_000)))
        .unwrap();
    // The key's own budget is generous, its team's is not: the team's refuses.
    let error = ledger
        .reserve(&stack, &Charge::tokens(Usage::estimate(1_000, 1_000)))
        .unwrap_err();
    let exceeded = error.exceeded().unwrap();
    assert_eq!(
        (exceeded.budget.as_str(), exceeded.key.as_str()),
        ("team", "blue")
    );
    for (handle, reserved) in stack.iter().zip([2_000, 2_000, 2_000, 1]) {
        assert_eq!(ledger.snapshot_of(*handle).unwrap().reserved, reserved);
    }
    // Dropping the reservation (a cancelled call) gives everything back.
    drop(held);
    for handle in stack {
        assert_eq!(ledger.snapshot_of(handle).unwrap().reserved, 0);
    }
    assert_eq!(ledger.outstanding(), 0);
}

#[test]
fn a_budget_named_twice_in_a_stack_is_charged_once() {
    let clock = ManualClock::new();
    let ledger = ledger(&clock, vec![tokens(1_000)]);
    let tpm = ledger.budget("tpm", "").unwrap();
    let r = ledger
        .reserve(&[tpm, tpm], &Charge::tokens(Usage::estimate(600, 0)))
        .unwrap();
    assert_eq!(ledger.snapshot_of(tpm).unwrap().reserved, 600);
    r.release();
}

#[test]
fn an_unsettled_reservation_expires_on_the_clock_and_is_given_back() {
    let clock = ManualClock::new();
    let recorder = Arc::new(Recorder::default());
    let ledger = Ledger::builder()
        .clock(clock.clone())
        .unix_origin(MIDNIGHT)
        .reservation_ttl(Duration::from_secs(30))
        .observer(recorder.clone())
        .budget(BudgetSpec::new("run", Unit::Tokens, 1_000, Period::Never))
        .build()
        .unwrap();
    let run = [ledger.budget("run", "run-1").unwrap()];
    let record = ledger
        .reserve(&run, &Charge::tokens(Usage::estimate(800, 0)))
        .unwrap()
        .into_record(); // the task died holding it
    clock.advance(Duration::from_secs(29));
    assert!(
        ledger
            .reserve(&run, &Charge::tokens(Usage::estimate(300, 0)))
            .is_err()
    );
    clock.advance(Duration::from_secs(1));
    let r = ledger
        .reserve(&run, &Charge::tokens(Usage::estimate(300, 0)))
        .unwrap();
    assert_eq!(ledger.snapshot_of(run[0]).unwrap().reserved, 300);
    assert!(recorder.0.lock().unwrap().contains(&"expired".to_string()));
    // The call that held the expired reservation did run: settling charges it.
    let late = ledger.restore(&record).unwrap().settle(Usage::new(800, 0));
    assert!(late.expired);
    let snap = ledger.snapshot_of(run[0]).unwrap();
    assert_eq!((snap.spent, snap.reserved), (800, 300));
    drop(r);
}

#[test]
fn windows_reset_spending_but_carry_calls_in_flight() {
    let clock = ManualClock::new();
    let ledger = ledger(
        &clock,
        vec![BudgetSpec::new("daily", Unit::Tokens, 1_000, Period::Day)],
    );
    let daily = [ledger.budget("daily", "acme").unwrap()];
    ledger
        .reserve(&daily, &Charge::tokens(Usage::estimate(700, 0)))
        .unwrap()
        .settle(Usage::new(700, 0));
    clock.advance(Duration::from_secs(86_399));
    let in_flight = ledger
        .reserve(&daily, &Charge::tokens(Usage::estimate(300, 0)))
        .unwrap();
    let snap = ledger.snapshot_of(daily[0]).unwrap();
    assert_eq!(snap.resets_in, Some(Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    let snap = ledger.snapshot_of(daily[0]).unwrap();
    assert_eq!((snap.spent, snap.reserved, snap.remaining), (0, 300, 700));
    assert_eq!(snap.resets_in, Some(Duration::from_secs(86_400)));
    in_flight.settle(Usage::new(250, 0));
    assert_eq!(ledger.snapshot_of(daily[0]).unwrap().spent, 250);
}

#[test]
fn cost_budgets_price_usage_and_refuse_a_model_without_a_price() {
    let clock = ManualClock::new();
    let recorder = Arc::new(Recorder::default());
    let ledger = Ledger::builder()
        .clock(clock.clone())
        .unix_origin(MIDNIGHT)
        .prices(prices())
        .observer(recorder.clone())
        .budget(
            // $1.00 a month, soft limit at $0.50.
            BudgetSpec::new("tenant:monthly", Unit::Cost, 1_000_000_000, Period::Month)
                .soft_limit(500_000_000),
        )
        .build()
        .unwrap();
    let tenant = [ledger.budget("tenant:monthly", "acme").unwrap()];
    let unknown = ledger
        .reserve(&tenant, &Charge::new("gpt-9", Usage::estimate(10, 10)))
        .unwrap_err();
    assert_eq!(unknown, BudgetError::UnknownModel("gpt-9".into()));
    // 100k input at $2.50/M = $0.25; 40k output bound at $10/M = $0.40: $0.65 reserved.
    let r = ledger
        .reserve(
            &tenant,
            &Charge::new("gpt-4o", Usage::estimate(100_000, 40_000)),
        )
        .unwrap();
    assert_eq!(ledger.snapshot_of(tenant[0]).unwrap().reserved, 650_000_000);
    // Used 20k cached of the prompt and 10k output: 0.2 + 0.025 + 0.1 = $0.325.
    let settled = r.settle(Usage::new(80_000, 10_000).with_cached(20_000));
    assert_eq!(settled.cost, 325_000_000);
    let events = recorder.0.lock().unwrap().clone();
    assert_eq!(
        events,
        ["soft tenant:monthly 650000000", "settled 325000000 false"]
    );
    // A month's end resets it (2027-01-01 is 25 days after 2026-12-07).
    let snap = ledger.snapshot_of(tenant[0]).unwrap();
    assert_eq!(snap.resets_in, Some(Duration::from_secs(25 * 86_400)));
}

#[test]
fn a_provider_remaining_tightens_a_budget_until_its_reset_and_never_loosens_it() {
    let clock = ManualClock::new();
    let ledger = ledger(
        &clock,
        vec![BudgetSpec::new("tpm", Unit::Tokens, 10_000, Period::Day)],
    );
    let tpm = ledger.budget("tpm", "").unwrap();
    let _held = ledger
        .reserve(&[tpm], &Charge::tokens(Usage::estimate(1_000, 0)))
        .unwrap();
    ledger.tighten(tpm, 500, Duration::from_secs(6));
    assert_eq!(ledger.snapshot_of(tpm).unwrap().remaining, 500);
    ledger.tighten(tpm, 5_000, Duration::from_secs(6));
    assert_eq!(ledger.snapshot_of(tpm).unwrap().remaining, 500);
    assert!(
        ledger
            .reserve(&[tpm], &Charge::tokens(Usage::estimate(501, 0)))
            .is_err()
    );
    clock.advance(Duration::from_secs(6));
    assert_eq!(ledger.snapshot_of(tpm).unwrap().remaining, 9_000);
}

#[test]
fn a_restored_record_is_held_once_and_charged_once() {
    let clock = ManualClock::new();
    let first = ledger(&clock, vec![tokens(10_000)]);
    let tpm = [first.budget("tpm", "").unwrap()];
    let record = first
        .reserve(&tpm, &Charge::tokens(Usage::estimate(1_000, 1_000)))
        .unwrap()
        .into_record();
    // Restored in the same process: the same reservation, not a second one.
    let again = first.restore(&record).unwrap();
    assert_eq!(first.snapshot_of(tpm[0]).unwrap().reserved, 2_000);
    let record = again.into_record();

    // A new process: the checkpointed record is held again, once however often it's restored.
    let json = serde_json::to_string(&record).unwrap();
    let second = ledger(&clock, vec![tokens(10_000)]);
    let record: bulwark::budget::ReservationRecord = serde_json::from_str(&json).unwrap();
    let a = second.restore(&record).unwrap();
    let b = second.restore(&record).unwrap();
    let tpm2 = second.budget("tpm", "").unwrap();
    assert_eq!(second.snapshot_of(tpm2).unwrap().reserved, 2_000);
    assert!(!a.settle(Usage::new(1_000, 200)).replayed);
    assert!(b.settle(Usage::new(1_000, 200)).replayed);
    assert!(
        second
            .restore(&record)
            .unwrap()
            .settle(Usage::new(1, 1))
            .replayed
    );
    let snap = second.snapshot_of(tpm2).unwrap();
    assert_eq!((snap.spent, snap.reserved), (1_200, 0));
}

#[test]
fn bad_definitions_are_typed_errors() {
    let soft = BudgetSpec::new("x", Unit::Tokens, 10, Period::Day).soft_limit(11);
    assert!(Ledger::builder().budget(soft).build().is_err());
    let twice = Ledger::builder()
        .budget(tokens(1))
        .budget(tokens(2))
        .build()
        .unwrap_err();
    assert!(twice.to_string().contains("defined twice"));
    assert!(PriceTable::from_toml("[models.m]\ninput = -1.0\noutput = 1.0").is_err());
    assert!(PriceTable::from_toml("[models.m]\ninput = 1.0").is_err());
    assert!(PriceTable::from_toml("not toml [").is_err());
    let clock = ManualClock::new();
    let ledger = ledger(&clock, vec![tokens(1)]);
    assert_eq!(
        ledger.budget("nope", "").unwrap_err(),
        BudgetError::UnknownBudget("nope".into())
    );
    let stack = vec![ledger.budget("tpm", "").unwrap(); 9];
    assert!(matches!(
        ledger.reserve(&stack, &Charge::tokens(Usage::default())),
        Err(BudgetError::StackTooDeep { got: 9, .. })
    ));
}

#[test]
fn rejections_are_events() {
    let clock = ManualClock::new();
    let recorder = Arc::new(Recorder::default());
    let ledger = Ledger::builder()
        .clock(clock)
        .observer(recorder.clone())
        .budget(tokens(10))
        .build()
        .unwrap();
    let tpm = [ledger.budget("tpm", "k").unwrap()];
    assert!(
        ledger
            .reserve(&tpm, &Charge::tokens(Usage::new(11, 0)))
            .is_err()
    );
    assert_eq!(*recorder.0.lock().unwrap(), ["rejected tpm k"]);
}
