//! Bulkheads: never above N under concurrency and cancellation, queue bound, max wait, panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark::bulkhead::{
    Bulkhead, BulkheadConfig, BulkheadEvent, ConfigError, KeyedBulkhead, RejectReason,
};
use bulwark::clock::ManualClock;

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_never_exceeds_the_limit_under_random_cancellation() {
    const LIMIT: u32 = 5;
    let bulkhead = Bulkhead::new(BulkheadConfig::new(LIMIT).with_queue(1000, None)).unwrap();
    let running = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for i in 0..400u32 {
        let (bulkhead, running, peak) = (bulkhead.clone(), Arc::clone(&running), Arc::clone(&peak));
        tasks.push(tokio::spawn(async move {
            let _ = bulkhead
                .run(async {
                    // Counted down on drop too: an aborted call leaves the count with its slot.
                    let _running = Running::enter(&running, &peak);
                    for _ in 0..(i % 7) {
                        tokio::task::yield_now().await;
                    }
                })
                .await;
        }));
    }
    // Cancel a pseudo-random third of the tasks wherever they are: queued, running or done.
    let mut seed = 0x9E37_79B9_u32;
    for task in &tasks {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        if seed.is_multiple_of(3) {
            task.abort();
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    assert!(
        peak.load(Ordering::SeqCst) <= LIMIT,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(peak.load(Ordering::SeqCst) >= 1);
    // Every slot and every queue place came back, cancelled or not.
    assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (0, 0));
    let all: Vec<_> = (0..LIMIT)
        .map(|_| bulkhead.try_acquire().unwrap())
        .collect();
    assert!(bulkhead.try_acquire().is_err());
    drop(all);
}

#[tokio::test]
async fn a_full_queue_refuses_and_a_long_wait_gives_up_on_the_clock() {
    let clock = ManualClock::new();
    let config = BulkheadConfig::new(1).with_queue(1, Some(Duration::from_secs(2)));
    let bulkhead = Bulkhead::builder(config)
        .name("tools")
        .clock(clock.clone())
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let b = bulkhead.clone();
    let waiter = tokio::spawn(async move { b.acquire().await.map(drop) });
    settle().await;
    assert_eq!(bulkhead.queued(), 1);
    let refused = bulkhead.acquire().await.unwrap_err();
    assert_eq!(refused.reason, RejectReason::QueueFull);
    assert_eq!(refused.bulkhead.as_ref(), "tools");
    clock.advance(Duration::from_millis(1999));
    settle().await;
    assert!(!waiter.is_finished());
    clock.advance(Duration::from_millis(1));
    let gave_up = waiter.await.unwrap().unwrap_err();
    assert_eq!(
        gave_up.reason,
        RejectReason::MaxWait(Duration::from_secs(2))
    );
    assert_eq!(bulkhead.queued(), 0);
    drop(held);
}

#[tokio::test]
async fn a_queued_call_gets_the_slot_that_frees_first() {
    let clock = ManualClock::new();
    let bulkhead = Bulkhead::builder(BulkheadConfig::new(1).with_queue(4, None))
        .clock(clock)
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let b = bulkhead.clone();
    let waiter = tokio::spawn(async move { b.acquire().await.map(|_| ()) });
    settle().await;
    assert!(!waiter.is_finished());
    drop(held);
    waiter.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_a_queue_a_full_bulkhead_refuses_at_once_and_reports_depths() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&events);
    let bulkhead = Bulkhead::builder(BulkheadConfig::new(1))
        .observer(Arc::new(move |ev: &BulkheadEvent<'_>| {
            e.lock()
                .unwrap()
                .push((ev.rejected, ev.in_flight, ev.queued));
        }))
        .build()
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    assert_eq!(
        bulkhead.acquire().await.unwrap_err().reason,
        RejectReason::Full
    );
    assert_eq!(
        *events.lock().unwrap(),
        vec![(None, 1, 0), (Some(RejectReason::Full), 1, 0)]
    );
}

#[test]
fn a_panicking_call_gives_its_slot_back() {
    let bulkhead = Bulkhead::new(BulkheadConfig::new(1)).unwrap();
    let b = bulkhead.clone();
    let result = std::thread::spawn(move || {
        let _permit = b.try_acquire().unwrap();
        panic!("tool crashed");
    })
    .join();
    assert!(result.is_err());
    assert_eq!(bulkhead.in_flight(), 0);
    assert!(bulkhead.try_acquire().is_ok());
}

#[test]
fn bad_configs_are_refused() {
    assert_eq!(
        Bulkhead::new(BulkheadConfig::new(0)).unwrap_err(),
        ConfigError::ZeroConcurrency
    );
    let zero_wait = BulkheadConfig::new(1).with_queue(1, Some(Duration::ZERO));
    assert_eq!(Bulkhead::new(zero_wait).unwrap_err(), ConfigError::ZeroWait);
}

#[test]
fn keyed_bulkheads_are_separate_and_idle_keys_are_evicted() {
    let keyed = KeyedBulkhead::<u32>::new(BulkheadConfig::new(1)).unwrap();
    let busy = keyed.try_acquire(&0).unwrap();
    assert!(keyed.try_acquire(&0).is_err());
    for key in 1..64 {
        drop(keyed.try_acquire(&key).unwrap());
    }
    assert_eq!(keyed.len(), 64);
    // The 65th key triggers a sweep: only the busy key survives beside the new one.
    drop(keyed.try_acquire(&1000).unwrap());
    assert_eq!(keyed.len(), 2);
    assert!(
        keyed.try_acquire(&0).is_err(),
        "the busy key lost its state"
    );
    drop(busy);
    assert!(keyed.try_acquire(&0).is_ok());
}

/// One call inside the bulkhead, counted while it lives (however it ends).
struct Running<'a>(&'a AtomicU32);

impl<'a> Running<'a> {
    fn enter(running: &'a AtomicU32, peak: &AtomicU32) -> Self {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        Self(running)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
