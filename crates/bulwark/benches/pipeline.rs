//! Resilience pipeline overhead beside `tower` + `failsafe`, `tower-resilience` and `backon`,
//! in the same run. Every call is a trivial async function that succeeds (the closed path).
//!
//! * `full/1`, `full/2`: rate limit > bulkhead > timeout > retry > circuit breaker around the
//!   call, on one thread and on two threads sharing the strategies (time per call per thread).
//!   Peers: the same composition from tower (`RateLimit`, `ConcurrencyLimit`, `Timeout`,
//!   `Retry` with an attempts policy) around a `failsafe` breaker, and from `tower-resilience`
//!   (`RateLimiter`, `Bulkhead`, `TimeLimiter`, `Retry`, `CircuitBreaker`). A tower
//!   `RateLimit` cannot be shared between threads (it is `!Clone`; users put it behind a
//!   `Buffer`), so with two threads each has its own: the tower stack pays no contention there.
//! * `retry/1`: our `Retry::run` beside `backon` (constant backoff, 3 attempts) and
//!   tower-resilience's retry.
//! * `timeout/1`: our `Timeout::run` beside tower's `Timeout` and tower-resilience's
//!   `TimeLimiter` (each arms and disarms one tokio timer per call).
//! * `bulkhead/1`, `bulkhead/2`: our bulkhead beside tower's `ConcurrencyLimit`, a bare tokio
//!   `Semaphore` and tower-resilience's `Bulkhead`.
//! * `breaker/1`, `breaker/2`: our breaker's `call_async` beside failsafe's futures breaker and
//!   tower-resilience's `CircuitBreaker`.
//! * `bare/1`: the call alone, the floor under every case.
//!
//! Time is each thread's CPU time (`BENCH_WALL_CLOCK=1` for wall time), each thread in its own
//! current-thread tokio runtime with timers.
//!
//! `cargo bench -p bulwark --bench pipeline -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/async_timing.rs"]
mod async_timing;
#[path = "support/timing.rs"]
mod timing;

use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig};
use bulwark::bulkhead::{Bulkhead, BulkheadConfig};
use bulwark::pipeline::ResiliencePipeline;
use bulwark::ratelimit::RateLimitConfig;
use bulwark::retry::{Backoff, Retry, RetryConfig};
use bulwark::timeout::Timeout;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use async_timing::parallel_async;

const TIMEOUT: Duration = Duration::from_secs(30);
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(10);
const SLOTS: u32 = 64;
/// A rate no bench run reaches, so that every call is admitted.
const RATE: u32 = 1_000_000_000;

async fn trivial() -> io::Result<u64> {
    Ok(black_box(1))
}

/// Benches `make(thread)` — a loop of `iters` calls — on `threads` threads.
fn case<M, F, Fut>(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, threads: usize, make: M)
where
    M: Fn(usize) -> F + Sync,
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    group.bench_function(id, |b| {
        b.iter_custom(|iters| parallel_async(threads, iters, &make))
    });
}

/// `iters` calls through a tower service, readiness included.
async fn drive_tower<S>(mut svc: S, iters: u64)
where
    S: Service<()>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..iters {
        black_box(svc.ready().await.unwrap().call(()).await.unwrap());
    }
}

fn bulwark_pipeline() -> ResiliencePipeline {
    ResiliencePipeline::builder()
        .name("bench")
        .rate_limit_config(RateLimitConfig::new(RATE, Duration::from_secs(1), 0), None)
        .bulkhead(BulkheadConfig::new(SLOTS))
        .timeout(TIMEOUT)
        .retry(RetryConfig::new(ATTEMPTS, Backoff::constant(BACKOFF)))
        .circuit_breaker_config(CircuitBreakerConfig::default())
        .build()
        .unwrap()
}

/// tower's retry policy for "up to `ATTEMPTS` attempts, every error retryable".
#[derive(Clone)]
struct Attempts(u32);

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 1 => {
                self.0 -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

fn failsafe_breaker() -> impl failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static {
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            5,
            failsafe::backoff::constant(Duration::from_secs(60)),
        ))
        .build()
}

/// The failsafe breaker around the call, as a tower service.
fn failsafe_service<B>(
    breaker: B,
) -> impl Service<(), Response = u64, Error = failsafe::Error<io::Error>, Future: Send> + Clone + Send
where
    B: failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static,
{
    tower::service_fn(move |()| failsafe::futures::CircuitBreaker::call(&breaker, trivial()))
}

/// The tower + failsafe stack; the semaphore and the breaker are shared with other stacks.
fn tower_stack<B>(
    semaphore: Arc<tokio::sync::Semaphore>,
    breaker: B,
) -> impl Service<(), Response = u64, Error = tower::BoxError>
where
    B: failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static,
{
    let retry = tower::retry::Retry::new(Attempts(ATTEMPTS), failsafe_service(breaker));
    let timeout = tower::timeout::Timeout::new(retry, TIMEOUT);
    let limit = tower::limit::ConcurrencyLimit::with_semaphore(timeout, semaphore);
    tower::limit::RateLimit::new(
        limit,
        tower::limit::rate::Rate::new(u64::from(RATE), Duration::from_secs(1)),
    )
}

mod tr {
    //! tower-resilience's layers, configured like ours.
    use super::*;
    use tower_resilience::bulkhead::BulkheadLayer;
    use tower_resilience::circuitbreaker::{CircuitBreakerError, CircuitBreakerLayer};
    use tower_resilience::ratelimiter::RateLimiterLayer;
    use tower_resilience::retry::RetryLayer;
    use tower_resilience::timelimiter::TimeLimiterLayer;

    pub(super) type BreakerError = CircuitBreakerError<io::Error>;

    pub(super) fn rate_limit() -> RateLimiterLayer {
        RateLimiterLayer::builder()
            .limit_for_period(RATE as usize)
            .refresh_period(Duration::from_secs(1))
            .build()
            .unwrap()
    }

    pub(super) fn bulkhead() -> BulkheadLayer {
        BulkheadLayer::builder()
            .max_concurrent_calls(SLOTS as usize)
            .reject_when_full()
            .build()
            .unwrap()
    }

    pub(super) fn timeout()
    -> tower_resilience::timelimiter::TimeLimiterLayer<tower_resilience::timelimiter::FixedTimeout>
    {
        TimeLimiterLayer::builder()
            .timeout_duration(TIMEOUT)
            .build()
    }

    pub(super) fn retry<E: Send + 'static>() -> RetryLayer<(), u64, E> {
        RetryLayer::<(), u64, E>::builder()
            .max_attempts(ATTEMPTS as usize)
            .fixed_backoff(BACKOFF)
            .build()
    }

    pub(super) fn breaker() -> CircuitBreakerLayer {
        CircuitBreakerLayer::builder()
            .consecutive_failures(5)
            .wait_duration_in_open(Duration::from_secs(60))
            .build()
            .unwrap()
    }
}

fn full(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline/full");
    for threads in [1, 2] {
        let pipeline = bulwark_pipeline();
        case(&mut group, &format!("bulwark/{threads}"), threads, |_| {
            let pipeline = pipeline.clone();
            move |iters| async move {
                for _ in 0..iters {
                    black_box(pipeline.execute(trivial).await.unwrap());
                }
            }
        });

        let semaphore = Arc::new(tokio::sync::Semaphore::new(SLOTS as usize));
        let breaker = failsafe_breaker();
        case(
            &mut group,
            &format!("tower+failsafe/{threads}"),
            threads,
            |_| {
                let svc = tower_stack(Arc::clone(&semaphore), breaker.clone());
                move |iters| drive_tower(svc, iters)
            },
        );

        let stack = ServiceBuilder::new()
            .layer(tr::rate_limit())
            .layer(tr::bulkhead())
            .layer(tr::timeout())
            .layer(tr::retry::<tr::BreakerError>())
            .layer(tr::breaker())
            .service(tower::service_fn(|()| trivial()));
        case(
            &mut group,
            &format!("tower-resilience/{threads}"),
            threads,
            |_| {
                let svc = stack.clone();
                move |iters| drive_tower(svc, iters)
            },
        );
    }
    group.finish();
}

fn strategies(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline/strategy");

    case(&mut group, "bare/1", 1, |_| {
        move |iters| async move {
            for _ in 0..iters {
                black_box(trivial().await.unwrap());
            }
        }
    });

    // Retry alone.
    let retry = Retry::new(RetryConfig::new(ATTEMPTS, Backoff::constant(BACKOFF))).unwrap();
    case(&mut group, "retry/bulwark/1", 1, |_| {
        let retry = retry.clone();
        move |iters| async move {
            for _ in 0..iters {
                black_box(retry.run(trivial).await.unwrap());
            }
        }
    });
    case(&mut group, "retry/backon/1", 1, |_| {
        use backon::{ConstantBuilder, Retryable};
        let policy = ConstantBuilder::default()
            .with_delay(BACKOFF)
            .with_max_times(ATTEMPTS as usize - 1);
        move |iters| async move {
            for _ in 0..iters {
                black_box(trivial.retry(policy).await.unwrap());
            }
        }
    });
    case(&mut group, "retry/tower-resilience/1", 1, |_| {
        let svc = tr::retry::<io::Error>().layer(tower::service_fn(|()| trivial()));
        move |iters| drive_tower(svc, iters)
    });

    // Timeout alone.
    let timeout = Timeout::new(TIMEOUT).unwrap();
    case(&mut group, "timeout/bulwark/1", 1, |_| {
        let timeout = timeout.clone();
        move |iters| async move {
            for _ in 0..iters {
                black_box(timeout.run(trivial()).await.unwrap().unwrap());
            }
        }
    });
    case(&mut group, "timeout/tower/1", 1, |_| {
        let svc = tower::timeout::Timeout::new(tower::service_fn(|()| trivial()), TIMEOUT);
        move |iters| drive_tower(svc, iters)
    });
    case(&mut group, "timeout/tower-resilience/1", 1, |_| {
        let svc = tr::timeout().layer(tower::service_fn(|()| trivial()));
        move |iters| drive_tower(svc, iters)
    });

    for threads in [1, 2] {
        // Bulkhead alone.
        let bulkhead = Bulkhead::new(BulkheadConfig::new(SLOTS)).unwrap();
        case(
            &mut group,
            &format!("bulkhead/bulwark/{threads}"),
            threads,
            |_| {
                let bulkhead = bulkhead.clone();
                move |iters| async move {
                    for _ in 0..iters {
                        black_box(bulkhead.run(trivial()).await.unwrap().unwrap());
                    }
                }
            },
        );
        let semaphore = Arc::new(tokio::sync::Semaphore::new(SLOTS as usize));
        case(
            &mut group,
            &format!("bulkhead/tower/{threads}"),
            threads,
            |_| {
                let svc = tower::limit::ConcurrencyLimit::with_semaphore(
                    tower::service_fn(|()| trivial()),
                    Arc::clone(&semaphore),
                );
                move |iters| drive_tower(svc, iters)
            },
        );
        let semaphore = Arc::new(tokio::sync::Semaphore::new(SLOTS as usize));
        case(
            &mut group,
            &format!("bulkhead/semaphore/{threads}"),
            threads,
            |_| {
                let semaphore = Arc::clone(&semaphore);
                move |iters| async move {
                    for _ in 0..iters {
                        let _permit = semaphore.acquire().await.unwrap();
                        black_box(trivial().await.unwrap());
                    }
                }
            },
        );
        let shared = tr::bulkhead().layer(tower::service_fn(|()| trivial()));
        case(
            &mut group,
            &format!("bulkhead/tower-resilience/{threads}"),
            threads,
            |_| {
                let svc = shared.clone();
                move |iters| drive_tower(svc, iters)
            },
        );

        // Breaker alone.
        let breaker = CircuitBreaker::new("bench", CircuitBreakerConfig::default()).unwrap();
        case(
            &mut group,
            &format!("breaker/bulwark/{threads}"),
            threads,
            |_| {
                let breaker = breaker.clone();
                move |iters| async move {
                    for _ in 0..iters {
                        black_box(breaker.call_async(trivial()).await.unwrap());
                    }
                }
            },
        );
        let breaker = failsafe_breaker();
        case(
            &mut group,
            &format!("breaker/failsafe/{threads}"),
            threads,
            |_| {
                let breaker = breaker.clone();
                move |iters| async move {
                    for _ in 0..iters {
                        let call = failsafe::futures::CircuitBreaker::call(&breaker, trivial());
                        black_box(call.await.unwrap());
                    }
                }
            },
        );
        let shared = tr::breaker().layer(tower::service_fn(|()| trivial()));
        case(
            &mut group,
            &format!("breaker/tower-resilience/{threads}"),
            threads,
            |_| {
                let svc = shared.clone();
                move |iters| drive_tower(svc, iters)
            },
        );
    }
    group.finish();
}

criterion_group!(benches, full, strategies);
criterion_main!(benches);
