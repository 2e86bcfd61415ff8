//! Reserve + settle on one budget and on three stacked budgets, on the local ledger and on
//! Redis, beside one Redis round trip (`PING`); LiteLLM's router pre-call check for the same
//! limits is timed in the same run by `scripts/bench-budget.sh`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use bulwark::budget::{BudgetBackend, BudgetRef, BudgetSpec, Charge, Ledger, Period, Unit, Usage};
use criterion::{Criterion, criterion_group, criterion_main};

fn specs() -> [BudgetSpec; 3] {
    [
        BudgetSpec::new("tpm", Unit::Tokens, u64::MAX / 4, Period::minute()),
        BudgetSpec::new("tenant", Unit::Tokens, u64::MAX / 4, Period::Day),
        BudgetSpec::new("rpm", Unit::Requests, u64::MAX / 4, Period::minute()),
    ]
}

const ESTIMATE: Usage = Usage::estimate(1_000, 800);
const ACTUAL: Usage = Usage::new(1_000, 300);

fn local(c: &mut Criterion) {
    let mut builder = Ledger::builder();
    for spec in specs() {
        builder = builder.budget(spec);
    }
    let ledger = builder.build().unwrap();
    let stack = [
        ledger.budget("tpm", "").unwrap(),
        ledger.budget("tenant", "acme").unwrap(),
        ledger.budget("rpm", "").unwrap(),
    ];
    let mut group = c.benchmark_group("budget/local");
    for (name, depth) in [("one", 1), ("three", 3)] {
        group.bench_function(format!("reserve+settle/{name}"), |b| {
            b.iter(|| {
                let r = ledger
                    .reserve(black_box(&stack[..depth]), &Charge::tokens(ESTIMATE))
                    .unwrap();
                black_box(r.settle(ACTUAL))
            });
        });
    }
    group.finish();
}

fn redis(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url =
        std::env::var("BULWARK_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let Ok(client) = redis::Client::open(url.as_str()) else {
        return;
    };
    let Ok(mut connection) = runtime.block_on(client.get_multiplexed_async_connection()) else {
        eprintln!("redis unreachable at {url}: skipping the redis benches");
        return;
    };
    let mut builder = bulwark::budget::redis::RedisBudgets::builder()
        .prefix(format!("bulwark-bench:budget:{}", std::process::id()))
        .timeout(Duration::from_secs(2));
    for mut spec in specs() {
        spec.limit = 1 << 52;
        builder = builder.budget(spec);
    }
    let budgets = runtime.block_on(builder.connect(&url)).unwrap();
    let stack = [
        BudgetRef::new("tpm", ""),
        BudgetRef::new("tenant", "acme"),
        BudgetRef::new("rpm", ""),
    ];
    let mut group = c.benchmark_group("budget/redis");
    group.bench_function("round_trip/ping", |b| {
        b.iter(|| {
            runtime.block_on(async {
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .unwrap()
            })
        });
    });
    for (name, depth) in [("one", 1), ("three", 3)] {
        group.bench_function(format!("reserve/{name}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let charge = Charge::tokens(ESTIMATE);
                    let record = budgets.reserve(&stack[..depth], &charge).await.unwrap();
                    // Give it back outside the timed part's meaning: release is a second trip.
                    black_box(record)
                })
            });
        });
        group.bench_function(format!("reserve+settle/{name}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let charge = Charge::tokens(ESTIMATE);
                    let record = budgets.reserve(&stack[..depth], &charge).await.unwrap();
                    black_box(budgets.settle(&record, ACTUAL).await.unwrap())
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, local, redis);
criterion_main!(benches);
