//! The signed webhook against a real HTTP receiver on loopback: the signature verifies,
//! 5xx answers are retried with backoff on the manual clock, a firing batch is given up after
//! the bound while a resolve is retried until delivered, and a hanging receiver neither delays
//! evaluation nor grows the queue past its bound.
#![cfg(feature = "alerting")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bulwark::alerting::notify::{DeliveryPolicy, SIGNATURE_HEADER, WebhookNotifier, verify};
use bulwark::alerting::{AlertEngine, AlertRule, Comparison, Condition, EngineConfig};
use bulwark::breaker::BreakerRegistry;
use bulwark::clock::ManualClock;
use bulwark::telemetry::metrics::MetricsRegistry;

const SECRET: &[u8] = b"webhook-test-secret";

#[derive(Default)]
struct Receiver {
    /// Status to answer for the n-th request (0-based); 200 beyond the list.
    script: Vec<u16>,
    hang: bool,
    calls: AtomicUsize,
    received: Mutex<Vec<(HeaderMap, Bytes)>>,
}

async fn start(receiver: Arc<Receiver>) -> String {
    let r = Arc::clone(&receiver);
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let r = Arc::clone(&r);
            async move {
                let n = r.calls.fetch_add(1, Ordering::SeqCst);
                r.received.lock().unwrap().push((headers, body));
                if r.hang {
                    std::future::pending::<()>().await;
                }
                StatusCode::from_u16(r.script.get(n).copied().unwrap_or(200)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

struct Setup {
    clock: ManualClock,
    metrics: MetricsRegistry,
    engine: AlertEngine<ManualClock>,
}

fn setup(url: &str, policy: DeliveryPolicy) -> Setup {
    let clock = ManualClock::new();
    let metrics = MetricsRegistry::default();
    let rule = AlertRule::new(
        "Deep",
        Condition::Gauge {
            metric: "queue_depth".into(),
            matchers: Vec::new(),
            op: Comparison::Above,
            threshold: 10.0,
        },
    )
    .with_label("severity", "page");
    let notifier = WebhookNotifier::new(url, SECRET, Duration::from_secs(30)).unwrap();
    let config = EngineConfig::default()
        .with_known_metric("queue_depth")
        .with_notifier(Arc::new(notifier))
        .with_delivery(policy);
    let engine = AlertEngine::new(
        vec![rule],
        config,
        metrics.clone(),
        None::<Arc<BreakerRegistry<ManualClock>>>,
        clock.clone(),
    )
    .unwrap();
    tokio::spawn(engine.clone().run_notifiers());
    Setup {
        clock,
        metrics,
        engine,
    }
}

/// Waits (real time, bounded) until `done`, advancing the manual clock so backoffs elapse.
async fn drive(clock: &ManualClock, step: Duration, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        clock.advance(step);
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn the_signature_verifies_and_a_tampered_body_does_not() {
    let receiver = Arc::new(Receiver::default());
    let url = start(Arc::clone(&receiver)).await;
    let t = setup(&url, DeliveryPolicy::default());
    t.metrics.set_gauge("queue_depth", 11.0, &[]).unwrap();
    t.engine.evaluate();
    drive(&t.clock, Duration::ZERO, || {
        receiver.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    let (headers, body) = receiver.received.lock().unwrap()[0].clone();
    let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
    assert!(verify(SECRET, &body, signature));
    assert!(!verify(b"another secret", &body, signature));
    let mut tampered = body.to_vec();
    tampered[0] ^= 1;
    assert!(!verify(SECRET, &tampered, signature));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "firing");
    assert_eq!(json["alerts"][0]["labels"]["alertname"], "Deep");
    assert_eq!(json["alerts"][0]["labels"]["severity"], "page");
    assert_eq!(headers["x-bulwark-delivery"], "0");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_delivered() {
    let receiver = Arc::new(Receiver {
        script: vec![500, 503],
        ..Receiver::default()
    });
    let url = start(Arc::clone(&receiver)).await;
    let policy = DeliveryPolicy::new(8, 5, Duration::from_secs(1), Duration::from_secs(4));
    let t = setup(&url, policy);
    t.metrics.set_gauge("queue_depth", 11.0, &[]).unwrap();
    t.engine.evaluate();
    // Without the clock moving, the first retry never happens.
    drive(&t.clock, Duration::ZERO, || {
        receiver.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.calls.load(Ordering::SeqCst), 1);
    drive(&t.clock, Duration::from_millis(250), || {
        t.engine.queue_stats()[0].sent == 1
    })
    .await;
    let stats = &t.engine.queue_stats()[0];
    assert_eq!((stats.failures, stats.sent, stats.queued), (2, 1, 0));
    assert_eq!(receiver.calls.load(Ordering::SeqCst), 3);
    let bodies: Vec<Bytes> = receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every retry sends the same batch"
    );
    let text = t.metrics.render_prometheus();
    assert!(
        text.contains(r#"bulwark_alert_notification_failures_total{notifier="webhook"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_firing_batch_is_given_up_after_the_bound_but_a_resolve_is_retried_until_delivered() {
    let receiver = Arc::new(Receiver {
        // 3 failures for the firing batch (given up), then 6 for the resolve, then success.
        script: vec![500; 9],
        ..Receiver::default()
    });
    let url = start(Arc::clone(&receiver)).await;
    let policy = DeliveryPolicy::new(8, 3, Duration::from_secs(1), Duration::from_secs(1));
    let t = setup(&url, policy);
    t.metrics.set_gauge("queue_depth", 11.0, &[]).unwrap();
    t.engine.evaluate();
    drive(&t.clock, Duration::from_millis(500), || {
        t.engine.queue_stats()[0].given_up == 1
    })
    .await;
    assert_eq!(receiver.calls.load(Ordering::SeqCst), 3);
    t.metrics.set_gauge("queue_depth", 0.0, &[]).unwrap();
    t.engine.evaluate();
    drive(&t.clock, Duration::from_millis(500), || {
        t.engine.queue_stats()[0].sent == 1
    })
    .await;
    assert_eq!(receiver.calls.load(Ordering::SeqCst), 10);
    let (_, body) = receiver.received.lock().unwrap().last().cloned().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "resolved");
    assert!(
        t.metrics
            .render_prometheus()
            .contains(r#"bulwark_alert_notifications_given_up_total{notifier="webhook"} 1"#)
    );
}

#[tokio::test]
async fn a_hanging_receiver_delays_no_evaluation_and_the_queue_drops_the_oldest() {
    let receiver = Arc::new(Receiver {
        hang: true,
        ..Receiver::default()
    });
    let url = start(Arc::clone(&receiver)).await;
    let policy = DeliveryPolicy::new(2, 3, Duration::from_secs(1), Duration::from_secs(1));
    let t = setup(&url, policy);
    let started = std::time::Instant::now();
    for round in 0..20 {
        let depth = if round % 2 == 0 { 11.0 } else { 0.0 };
        t.metrics.set_gauge("queue_depth", depth, &[]).unwrap();
        t.engine.evaluate();
        t.clock.advance(Duration::from_secs(15));
        if round == 0 {
            drive(&t.clock, Duration::ZERO, || {
                receiver.calls.load(Ordering::SeqCst) == 1
            })
            .await;
        }
    }
    // Twenty rounds while the receiver holds the first request open: evaluation never waited
    // for it (the request timeout is 30 s).
    assert!(started.elapsed() < Duration::from_secs(25));
    let stats = &t.engine.queue_stats()[0];
    assert_eq!(stats.queued, 2, "{stats:?}");
    assert_eq!(stats.dropped, 18, "{stats:?}");
    assert_eq!(stats.sent, 0);
    assert!(
        t.metrics
            .render_prometheus()
            .contains(r#"bulwark_alert_notifications_dropped_total{notifier="webhook"} 18"#)
    );
}
