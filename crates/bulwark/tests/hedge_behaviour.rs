//! Hedging on the manual clock: when a hedge starts, that the first answer wins and the loser
//! is dropped (a drop guard proves it), the bound on attempts, the percentile delay, errors,
//! events, config errors, and the hedge inside a pipeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::pending;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark::breaker::CircuitBreakerConfig;
use bulwark::clock::ManualClock;
use bulwark::hedge::{ConfigError, Hedge, HedgeConfig, HedgeEvent};
use bulwark::pipeline::{
    PipelineConfig, PipelineConfigError, PipelineObservers, ResiliencePipeline,
};
use bulwark::retry::Classify;

const DELAY: Duration = Duration::from_millis(200);

/// Counts the attempts dropped unfinished: set `finished` before returning to disarm it.
struct DropGuard {
    cancelled: Arc<AtomicU32>,
    finished: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Calls that each take `latency[n]` on the manual clock (the n-th call made), counting starts
/// and cancellations; `None` hangs forever.
#[derive(Clone)]
struct Upstream {
    clock: ManualClock,
    latencies: Arc<Vec<Option<Duration>>>,
    started: Arc<AtomicU32>,
    cancelled: Arc<AtomicU32>,
}

impl Upstream {
    fn new(clock: &ManualClock, latencies: Vec<Option<Duration>>) -> Self {
        Self {
            clock: clock.clone(),
            latencies: Arc::new(latencies),
            started: Arc::default(),
            cancelled: Arc::default(),
        }
    }

    fn call(&self) -> impl Future<Output = Result<u32, String>> + Send + 'static {
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        let latency = self.latencies.get(n as usize).copied().flatten();
        let clock = self.clock.clone();
        let guard = DropGuard {
            cancelled: Arc::clone(&self.cancelled),
            finished: false,
        };
        async move {
            let mut guard = guard;
            match latency {
                Some(latency) => {
                    bulwark::clock::Clock::sleep(&clock, latency).await;
                    guard.finished = true;
                    Ok(n + 1)
                }
                None => pending().await,
            }
        }
    }

    fn started(&self) -> u32 {
        self.started.load(Ordering::SeqCst)
    }

    fn cancelled(&self) -> u32 {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Lets spawned tasks run until they block on the manual clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn hedge(
    clock: &ManualClock,
    config: HedgeConfig,
) -> (Hedge<ManualClock>, Arc<Mutex<Vec<String>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let hedge = Hedge::builder(config)
        .clock(clock.clone())
        .name("search")
        .observer(Arc::new(move |e: &HedgeEvent<'_>| {
            seen.lock()
                .unwrap()
                .push(format!("{}#{}: {:?}", e.name, e.attempt, e.kind));
        }))
        .build()
        .unwrap();
    (hedge, events)
}

#[tokio::test]
async fn a_slow_first_attempt_is_hedged_after_the_delay_and_the_loser_is_dropped() {
    let clock = ManualClock::new();
    let (hedge, events) = hedge(&clock, HedgeConfig::fixed(1, DELAY));
    // The first attempt would take 10 s, the hedge 50 ms.
    let upstream = Upstream::new(
        &clock,
        vec![
            Some(Duration::from_secs(10)),
            Some(Duration::from_millis(50)),
        ],
    );
    let task = tokio::spawn({
        let (hedge, upstream) = (hedge.clone(), upstream.clone());
        async move { hedge.run(|| upstream.call()).await }
    });
    settle().await;
    clock.advance(DELAY - Duration::from_millis(1));
    settle().await;
    assert_eq!(upstream.started(), 1, "hedged before the delay");
    clock.advance(Duration::from_millis(1));
    settle().await;
    assert_eq!(upstream.started(), 2);
    clock.advance(Duration::from_millis(50));
    assert_eq!(task.await.unwrap(), Ok(2), "the hedge's answer wins");
    assert_eq!(
        upstream.cancelled(),
        1,
        "the slow first attempt was dropped"
    );
    assert_eq!(
        *events.lock().unwrap(),
        [
            "search#2: Hedged { delay: 200ms }",
            "search#2: Won { cancelled: 1 }"
        ]
    );
}

#[tokio::test]
async fn an_answer_before_the_delay_starts_no_hedge() {
    let clock = ManualClock::new();
    let (hedge, events) = hedge(&clock, HedgeConfig::fixed(2, DELAY));
    let upstream = Upstream::new(&clock, vec![Some(Duration::from_millis(150))]);
    let task = tokio::spawn({
        let (hedge, upstream) = (hedge.clone(), upstream.clone());
        async move { hedge.run(|| upstream.call()).await }
    });
    settle().await;
    clock.advance(Duration::from_millis(150));
    assert_eq!(task.await.unwrap(), Ok(1));
    clock.advance(Duration::from_secs(1));
    settle().await;
    assert_eq!((upstream.started(), upstream.cancelled()), (1, 0));
    assert_eq!(*events.lock().unwrap(), ["search#1: Won { cancelled: 0 }"]);
}

#[tokio::test]
async fn hedged_attempts_are_bounded_and_dropping_the_call_cancels_every_one() {
    let clock = ManualClock::new();
    let (hedge, _) = hedge(&clock, HedgeConfig::fixed(2, DELAY));
    let upstream = Upstream::new(&clock, vec![None, None, None, None]);
    let task = tokio::spawn({
        let (hedge, upstream) = (hedge.clone(), upstream.clone());
        async move { hedge.run(|| upstream.call()).await }
    });
    for _ in 0..10 {
        settle().await;
        clock.advance(DELAY);
    }
    settle().await;
    assert_eq!(upstream.started(), 3, "one attempt and at most two hedges");
    assert_eq!(upstream.cancelled(), 0);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(
        upstream.cancelled(),
        3,
        "every attempt in flight was dropped"
    );
}

#[tokio::test]
async fn a_failed_attempt_starts_the_next_at_once_and_the_last_error_is_returned() {
    let clock = ManualClock::new();
    let (hedge, events) = hedge(&clock, HedgeConfig::fixed(2, DELAY));
    let calls = AtomicU32::new(0);
    let outcome = hedge
        .run(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Err::<(), _>(format!("503 #{n}")) }
        })
        .await;
    assert_eq!(outcome, Err("503 #3".to_string()));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "no time passed: each failure hedged at once"
    );
    assert_eq!(
        *events.lock().unwrap(),
        [
            "search#2: Hedged { delay: 0ns }",
            "search#3: Hedged { delay: 0ns }",
            "search#3: Failed { cancelled: 0 }"
        ]
    );
}

#[tokio::test]
async fn an_error_that_ends_the_call_is_returned_at_once_and_drops_the_others() {
    let clock = ManualClock::new();
    let (hedge, _) = hedge(&clock, HedgeConfig::fixed(1, DELAY));
    let cancelled = Arc::new(AtomicU32::new(0));
    let calls = AtomicU32::new(0);
    let task = hedge.run_if(
        || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let guard = DropGuard {
                cancelled: Arc::clone(&cancelled),
                finished: n == 1,
            };
            async move {
                let _guard = guard;
                if n == 0 {
                    pending::<()>().await;
                }
                Err::<(), _>("400")
            }
        },
        |e| *e == "400",
    );
    let advance = async {
        settle().await;
        clock.advance(DELAY);
    };
    let (outcome, ()) = tokio::join!(task, advance);
    assert_eq!(outcome, Err("400"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        cancelled.load(Ordering::SeqCst),
        1,
        "the hung first attempt was dropped"
    );
}

#[tokio::test]
async fn the_delay_follows_the_percentile_of_recent_latencies() {
    let clock = ManualClock::new();
    let mut config = HedgeConfig::percentile(1, 0.9, DELAY);
    config.window = 10;
    config.min_samples = 10;
    let (hedge, _) = hedge(&clock, config);
    // Ten calls of 10, 20, ... 100 ms.
    for i in 1..=10u64 {
        assert_eq!(
            hedge.delay(),
            DELAY,
            "the initial delay until 10 samples are known"
        );
        let call = hedge.run(|| {
            let clock = clock.clone();
            async move {
                bulwark::clock::Clock::sleep(&clock, Duration::from_millis(10 * i)).await;
                Ok::<_, String>(i)
            }
        });
        let advance = async {
            settle().await;
            clock.advance(Duration::from_millis(10 * i));
        };
        let (answer, ()) = tokio::join!(call, advance);
        assert_eq!(answer, Ok(i));
    }
    // The nearest-rank 90th percentile of ten samples is the ninth.
    assert_eq!(hedge.delay(), Duration::from_millis(90));

    let upstream = Upstream::new(&clock, vec![None, Some(Duration::from_millis(5))]);
    let task = tokio::spawn({
        let (hedge, upstream) = (hedge.clone(), upstream.clone());
        async move { hedge.run(|| upstream.call()).await }
    });
    settle().await;
    clock.advance(Duration::from_millis(89));
    settle().await;
    assert_eq!(upstream.started(), 1);
    clock.advance(Duration::from_millis(1));
    settle().await;
    assert_eq!(upstream.started(), 2, "hedged at the 90th percentile");
    clock.advance(Duration::from_millis(5));
    assert_eq!(task.await.unwrap(), Ok(2));
    assert_eq!(upstream.cancelled(), 1);
}

#[test]
fn configs_that_cannot_be_enforced_are_typed_errors() {
    let refused = |config: HedgeConfig| Hedge::new(config).unwrap_err();
    assert_eq!(
        refused(HedgeConfig::fixed(0, DELAY)),
        ConfigError::HedgedAttempts(0)
    );
    assert_eq!(
        refused(HedgeConfig::fixed(9, DELAY)),
        ConfigError::HedgedAttempts(9)
    );
    assert_eq!(
        refused(HedgeConfig::percentile(1, 1.5, DELAY)),
        ConfigError::Percentile(1.5)
    );
    assert!(matches!(
        refused(HedgeConfig::percentile(1, f64::NAN, DELAY)),
        ConfigError::Percentile(p) if p.is_nan()
    ));
    let mut config = HedgeConfig::percentile(1, 0.9, DELAY);
    config.window = 0;
    assert_eq!(refused(config), ConfigError::ZeroWindow);
    config.window = 5;
    config.min_samples = 6;
    assert_eq!(
        refused(config),
        ConfigError::MinSamples {
            min_samples: 6,
            window: 5
        }
    );
    // The pipeline names the strategy whose config is refused, from TOML too.
    let toml = "[[strategies]]\nkind = \"hedge\"\nmax_hedged_attempts = 0\ndelay = \"50ms\"\n";
    let config: PipelineConfig = toml::from_str(toml).unwrap();
    let error = config
        .build("search", ManualClock::new(), &PipelineObservers::new())
        .unwrap_err();
    assert_eq!(
        error,
        PipelineConfigError::Hedge(ConfigError::HedgedAttempts(0))
    );
    assert_eq!(
        error.to_string(),
        "hedge: max_hedged_attempts must be 1 to 8, not 0"
    );
}

#[derive(Debug, Clone, PartialEq)]
struct Status(u16);

impl Classify for Status {
    fn is_retryable(&self) -> bool {
        self.0 >= 500
    }
}

#[tokio::test]
async fn in_a_pipeline_each_attempt_takes_a_breaker_permit_and_a_dropped_loser_is_not_counted() {
    let clock = ManualClock::new();
    let toml = "[[strategies]]\nkind = \"hedge\"\nmax_hedged_attempts = 1\ndelay = \"200ms\"\n\n\
                [[strategies]]\nkind = \"circuit_breaker\"\nfailure_threshold = 2\ntimeout = \"30s\"\n";
    let config: PipelineConfig = toml::from_str(toml).unwrap();
    let pipeline = config
        .build("search", clock.clone(), &PipelineObservers::new())
        .unwrap();
    assert_eq!(pipeline.strategies(), ["hedge", "circuit_breaker"]);
    let upstream = Upstream::new(&clock, vec![None, Some(Duration::from_millis(10))]);
    let task = tokio::spawn({
        let (pipeline, upstream) = (pipeline.clone(), upstream.clone());
        async move {
            pipeline
                .execute(|| {
                    let call = upstream.call();
                    async move { call.await.map_err(|_| Status(503)) }
                })
                .await
                .map_err(|e| format!("{e:?}"))
        }
    });
    settle().await;
    clock.advance(DELAY);
    settle().await;
    clock.advance(Duration::from_millis(10));
    assert_eq!(task.await.unwrap(), Ok(2));
    assert_eq!(upstream.cancelled(), 1);
    let snapshot = pipeline.circuit_breaker().unwrap().snapshot();
    assert_eq!((snapshot.successes, snapshot.failures), (1, 0));
}

#[tokio::test]
async fn in_a_pipeline_a_caller_error_is_not_hedged() {
    let clock = ManualClock::new();
    let pipeline = ResiliencePipeline::builder_with_clock(clock.clone())
        .hedge(HedgeConfig::fixed(2, DELAY))
        .circuit_breaker_config(CircuitBreakerConfig::default())
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let outcome = pipeline
        .execute(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Status(404))
        })
        .await;
    assert_eq!(outcome.unwrap_err().into_inner(), Some(Status(404)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A server error is hedged at once, up to the bound.
    let outcome = pipeline
        .execute(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Status(503))
        })
        .await;
    assert_eq!(outcome.unwrap_err().into_inner(), Some(Status(503)));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn hedges_wins_and_cancellations_are_metrics() {
    use bulwark::telemetry::metrics::MetricsRegistry;
    use bulwark::telemetry::resilience_observers::ResilienceMetrics;

    let clock = ManualClock::new();
    let registry = MetricsRegistry::default();
    let pipeline = ResiliencePipeline::builder_with_clock(clock.clone())
        .name("search")
        .observers(ResilienceMetrics::new(&registry).observers())
        .hedge(HedgeConfig::fixed(1, DELAY))
        .build()
        .unwrap();
    let upstream = Upstream::new(&clock, vec![None, Some(Duration::from_millis(10))]);
    let task = tokio::spawn({
        let (pipeline, upstream) = (pipeline.clone(), upstream.clone());
        async move {
            let outcome = pipeline.execute(|| upstream.call()).await;
            outcome.map_err(|e| format!("{e:?}"))
        }
    });
    settle().await;
    clock.advance(DELAY);
    settle().await;
    clock.advance(Duration::from_millis(10));
    assert_eq!(task.await.unwrap(), Ok(2));
    let text = registry.render_prometheus();
    for line in [
        r#"bulwark_hedge_attempts_total{name="search"} 1"#,
        r#"bulwark_hedge_won_total{name="search",winner="hedge"} 1"#,
        r#"bulwark_hedge_won_total{name="search",winner="first"} 0"#,
        r#"bulwark_hedge_cancelled_total{name="search"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}
