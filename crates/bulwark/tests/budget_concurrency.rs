//! Concurrent calls over one budget never overspend: every call reserves its bound first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use bulwark::budget::{BudgetSpec, Charge, Ledger, Period, Unit, Usage};
use bulwark::clock::ManualClock;
use proptest::prelude::*;

const LIMIT: u64 = 50_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn a_thousand_concurrent_reserve_settle_pairs_never_overspend(
        calls in prop::collection::vec((1u64..400, 1u64..800, 0u64..=100), 1_000)
    ) {
        let ledger = Ledger::builder()
            .clock(ManualClock::new())
            .budget(BudgetSpec::new("tpm", Unit::Tokens, LIMIT, Period::Never))
            .build()
            .unwrap();
        let tpm = ledger.budget("tpm", "").unwrap();
        let calls = Arc::new(calls);
        let settled = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (ledger, done) = (ledger.clone(), Arc::clone(&done));
            thread::spawn(move || {
                let mut worst = 0;
                while !done.load(Ordering::Acquire) {
                    let s = ledger.snapshot_of(tpm).unwrap();
                    worst = worst.max(s.spent + s.reserved);
                }
                worst
            })
        };
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (ledger, calls, settled) = (ledger.clone(), Arc::clone(&calls), Arc::clone(&settled));
                thread::spawn(move || {
                    for &(prompt, max_tokens, used_percent) in calls.iter().skip(w).step_by(4) {
                        let estimate = Usage::estimate(prompt, max_tokens);
                        if let Ok(r) = ledger.reserve(&[tpm], &Charge::tokens(estimate)) {
                            let used = Usage::new(prompt, max_tokens * used_percent / 100);
                            thread::yield_now();
                            let s = r.settle(used);
                            assert!(!s.overspent);
                            settled.fetch_add(used.total_tokens(), Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, Ordering::Release);
        let worst = watcher.join().unwrap();
        let end = ledger.snapshot_of(tpm).unwrap();
        prop_assert!(worst <= LIMIT, "spent + reserved reached {worst}");
        prop_assert_eq!(end.reserved, 0);
        prop_assert_eq!(end.spent, settled.load(Ordering::Relaxed));
        prop_assert!(end.spent <= LIMIT);
        prop_assert_eq!(ledger.outstanding(), 0);
    }
}
