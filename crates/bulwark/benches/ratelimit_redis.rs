//! Redis limiter decisions beside the floor any Redis-backed limiter pays: a plain `INCR`
//! round trip on the same connection, in the same run.
//!
//! `cargo bench -p bulwark --features redis --bench ratelimit_redis` (needs Redis at
//! `BULWARK_REDIS_URL`, default `redis://127.0.0.1:6379`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bulwark::ratelimit::RateLimitConfig;
use bulwark::ratelimit::redis::RedisRateLimiter;
use criterion::{Criterion, criterion_group, criterion_main};

const IN_FLIGHT: u64 = 32;

fn url() -> String {
    std::env::var("BULWARK_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (limiter, connection) = runtime.block_on(async {
        let limiter = RedisRateLimiter::builder(RateLimitConfig::per_second(1_000_000_000))
            .prefix("bulwark-bench")
            .timeout(Duration::from_secs(5))
            .connect(&url())
            .await
            .unwrap();
        let client = redis::Client::open(url()).unwrap();
        let connection = redis::aio::ConnectionManager::new(client).await.unwrap();
        (limiter, connection)
    });

    let mut group = c.benchmark_group("redis_sequential");
    group.bench_function("bulwark_check", |b| {
        b.to_async(&runtime)
            .iter(|| async { limiter.check("k", 1).await.unwrap() })
    });
    group.bench_function("incr_floor", |b| {
        b.to_async(&runtime).iter(|| {
            let mut connection = connection.clone();
            async move {
                redis::cmd("INCR")
                    .arg("bulwark-bench:incr")
                    .query_async::<i64>(&mut connection)
                    .await
                    .unwrap()
            }
        })
    });
    group.finish();

    // Many decisions in flight on one multiplexed connection: the time reported is per
    // decision, so decisions per second = 1 / time.
    let mut group = c.benchmark_group(format!("redis_{IN_FLIGHT}_in_flight"));
    group.bench_function("bulwark_check", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let limiter = limiter.clone();
            async move {
                let start = Instant::now();
                let tasks: Vec<_> = (0..IN_FLIGHT)
                    .map(|task| {
                        let limiter = limiter.clone();
                        tokio::spawn(async move {
                            for _ in 0..iters.div_ceil(IN_FLIGHT) {
                                limiter.check(&format!("k{task}"), 1).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    group.bench_function("incr_floor", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let connection = connection.clone();
            async move {
                let start = Instant::now();
                let tasks: Vec<_> = (0..IN_FLIGHT)
                    .map(|task| {
                        let mut connection = connection.clone();
                        tokio::spawn(async move {
                            for _ in 0..iters.div_ceil(IN_FLIGHT) {
                                redis::cmd("INCR")
                                    .arg(format!("bulwark-bench:incr{task}"))
                                    .query_async::<i64>(&mut connection)
                                    .await
                                    .unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    group.finish();
}

criterion_group!(benches, redis);
criterion_main!(benches);
