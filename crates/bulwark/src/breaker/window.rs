//! The sliding window of sliding-window mode: a fixed ring of buckets, one atomic word each.
//!
//! A bucket word packs `stamp` (the low 24 bits of the bucket's period number), `failures`
//! (20 bits) and `total` (20 bits). Recording an outcome in period `p` is one compare-and-swap
//! on bucket `p % n`: if its stamp is not `p` it held an older period and restarts from this
//! outcome, otherwise its counts grow. A bucket that reaches 2^20 calls halves both counts,
//! which keeps its failure share. Summing takes every bucket whose stamp lies within the last
//! `n` periods. A period is a span of clock time (time windows) or a run of consecutive calls
//! (count windows, numbered by one shared counter).

use std::sync::atomic::{AtomicU64, Ordering};

use super::config::{SlidingWindow, WindowSize};
use crate::clock::duration_to_nanos;

const STAMP_BITS: u32 = 24;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;
const COUNT_MASK: u64 = (1 << 20) - 1;
const FAILURES_SHIFT: u32 = STAMP_BITS;
const TOTAL_SHIFT: u32 = STAMP_BITS + 20;
const CALL_BUCKETS: u64 = 20;
const SECOND: u64 = 1_000_000_000;

#[derive(Debug)]
enum Period {
    /// Periods of `nanos` of clock time.
    Time { nanos: u64 },
    /// Periods of `calls` consecutive calls, numbered by `seq`.
    Calls { calls: u64, seq: AtomicU64 },
}

/// Failures and calls seen over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) failures: u64,
    pub(crate) total: u64,
}

#[derive(Debug)]
pub(crate) struct Window {
    buckets: Box<[AtomicU64]>,
    period: Period,
    failure_rate: f64,
    minimum_calls: u64,
}

impl Window {
    pub(crate) fn new(config: &SlidingWindow) -> Self {
        let (n, period) = match config.size {
            WindowSize::Calls(calls) => {
                let calls = u64::from(calls.max(1));
                let n = calls.min(CALL_BUCKETS);
                let per_bucket = calls.div_ceil(n);
                (
                    n,
                    Period::Calls {
                        calls: per_bucket,
                        seq: AtomicU64::new(0),
                    },
                )
            }
            WindowSize::Time(time) => {
                let nanos = duration_to_nanos(time).max(1);
                let n = nanos
                    .div_ceil(SECOND)
                    .clamp(1, u64::from(SlidingWindow::MAX_BUCKETS));
                (
                    n,
                    Period::Time {
                        nanos: nanos.div_ceil(n),
                    },
                )
            }
        };
        Self {
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            period,
            failure_rate: config.failure_rate,
            minimum_calls: u64::from(config.minimum_calls),
        }
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    fn period(&self, now: u64) -> u64 {
        match &self.period {
            Period::Time { nanos } => now / nanos,
            Period::Calls { calls, seq } => seq.fetch_add(1, Ordering::Relaxed) / calls,
        }
    }

    /// Records one outcome at clock time `now`; for a failure, returns whether the window now
    /// calls for opening the breaker.
    pub(crate) fn record(&self, now: u64, failed: bool) -> bool {
        let period = self.period(now);
        let stamp = period & STAMP_MASK;
        let Some(bucket) = self.buckets.get((period % self.len()) as usize) else {
            return false;
        };
        let mut current = bucket.load(Ordering::Relaxed);
        loop {
            let (mut failures, mut total) = if current & STAMP_MASK == stamp {
                (
                    (current >> FAILURES_SHIFT) & COUNT_MASK,
                    (current >> TOTAL_SHIFT) & COUNT_MASK,
                )
            } else {
                (0, 0)
            };
            if total == COUNT_MASK {
                failures /= 2;
                total /= 2;
            }
            failures += u64::from(failed);
            total += 1;
            let next = stamp | (failures << FAILURES_SHIFT) | (total << TOTAL_SHIFT);
            match bucket.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        failed && self.trips(self.tally_at(period))
    }

    /// Whether a tally crosses the rate threshold.
    pub(crate) fn trips(&self, tally: Tally) -> bool {
        tally.total > 0
            && tally.total >= self.minimum_calls
            && tally.failures as f64 >= self.failure_rate * tally.total as f64
    }

    fn tally_at(&self, period: u64) -> Tally {
        let mut tally = Tally::default();
        for bucket in self.buckets.iter() {
            let word = bucket.load(Ordering::Acquire);
            let age = period.wrapping_sub(word) & STAMP_MASK;
            if age < self.len() {
                tally.failures += (word >> FAILURES_SHIFT) & COUNT_MASK;
                tally.total += (word >> TOTAL_SHIFT) & COUNT_MASK;
            }
        }
        tally
    }

    /// The tally over the window ending at clock time `now` (for listings).
    pub(crate) fn tally(&self, now: u64) -> Tally {
        let period = match &self.period {
            Period::Time { nanos } => now / nanos,
            Period::Calls { calls, seq } => seq.load(Ordering::Relaxed).saturating_sub(1) / calls,
        };
        self.tally_at(period)
    }

    /// Forgets every recorded outcome (on a change of state).
    pub(crate) fn clear(&self) {
        for bucket in self.buckets.iter() {
            // Stamp 0 with zero counts contributes nothing whatever period it is read in.
            bucket.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn count_window_forgets_calls_older_than_the_window() {
        let w = Window::new(&SlidingWindow::calls(20, 0.5, 1));
        assert_eq!(w.len(), 20);
        for _ in 0..20 {
            w.record(0, true);
        }
        assert_eq!(
            w.tally(0),
            Tally {
                failures: 20,
                total: 20
            }
        );
        for _ in 0..20 {
            w.record(0, false);
        }
        assert_eq!(
            w.tally(0),
            Tally {
                failures: 0,
                total: 20
            }
        );
    }

    #[test]
    fn time_window_uses_one_bucket_per_second_and_expires_them() {
        let w = Window::new(&SlidingWindow::time(Duration::from_secs(10), 0.5, 1));
        assert_eq!(w.len(), 10);
        w.record(0, true);
        w.record(9 * SECOND, false);
        assert_eq!(
            w.tally(9 * SECOND),
            Tally {
                failures: 1,
                total: 2
            }
        );
        assert_eq!(
            w.tally(10 * SECOND),
            Tally {
                failures: 0,
                total: 1
            }
        );
    }

    #[test]
    fn a_full_bucket_halves_and_keeps_its_failure_share() {
        let w = Window::new(&SlidingWindow::time(Duration::from_secs(1), 0.5, 1));
        let full = COUNT_MASK;
        let failures = full / 4;
        w.buckets[0].store(
            (failures << FAILURES_SHIFT) | (full << TOTAL_SHIFT),
            Ordering::Relaxed,
        );
        w.record(0, false);
        let t = w.tally(0);
        assert_eq!(t.total, full / 2 + 1);
        assert_eq!(t.failures, failures / 2);
    }
}
