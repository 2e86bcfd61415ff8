//! A step's retry and timeout policy: exponential backoff with full jitter, capped, never
//! sooner than an error's `retry_after`, waited on the executor's clock.
//!
//! Kept private to this module and small, so that it can give way to the shared retry
//! strategy once that exists: [`RetryPolicy::delay`] is the only thing the runner asks.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often and how patiently a step (or each fan-out branch) is retried.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry.
    pub initial_backoff: Duration,
    /// No backoff ceiling above this (a `retry_after` may still be longer).
    pub max_backoff: Duration,
    /// Growth of the ceiling per failed attempt.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// Three attempts, backoff ceilings 100 ms then 200 ms, capped at 10 s.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// `max_attempts` attempts with the default backoff.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// The same policy with this backoff: ceiling `initial` before the first retry, growing by
    /// `multiplier`, capped at `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration, multiplier: f64) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self.multiplier = if multiplier.is_finite() && multiplier >= 1.0 {
            multiplier
        } else {
            1.0
        };
        self
    }

    /// The ceiling of the wait after `failed` failed attempts (1 for the first retry).
    pub fn ceiling(&self, failed: u32) -> Duration {
        let exponent = i32::try_from(failed.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        let cap = self.max_backoff.as_secs_f64();
        Duration::try_from_secs_f64(grown.min(cap)).unwrap_or(self.max_backoff)
    }

    /// The wait before the next attempt after `failed` failed attempts: uniform in
    /// `[0, ceiling]` (full jitter), but never less than `retry_after`.
    pub(crate) fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(failed);
        let jittered = ceiling.mul_f64(unit_random());
        retry_after.map_or(jittered, |after| after.max(jittered))
    }
}

/// The policy of a step or of a fan-out's branches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct StepPolicy {
    /// Retries of retryable errors (and of attempts that time out).
    pub retry: RetryPolicy,
    /// Each attempt is cancelled after this long (then counts as a retryable failure).
    pub attempt_timeout: Option<Duration>,
    /// The step fails (fatally) once this long has passed since its first attempt started in
    /// this executor, backoffs included.
    pub step_timeout: Option<Duration>,
}

impl StepPolicy {
    /// The default: three attempts, no timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the per-attempt timeout.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Sets the per-step timeout.
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = Some(timeout);
        self
    }
}

/// A uniform number in `[0, 1)`: splitmix64 over a process-wide counter, seeded once from a
/// UUIDv7's random bits. Jitter needs spread, not secrecy.
fn unit_random() -> f64 {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    // The low 64 bits of a UUIDv7 are random but for the variant bits.
    let seed = *SEED.get_or_init(|| uuid::Uuid::now_v7().as_u128() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut z = seed.wrapping_add(n.wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_grows_then_stops_at_the_cap() {
        let policy = RetryPolicy::attempts(10).backoff(
            Duration::from_millis(100),
            Duration::from_millis(350),
            2.0,
        );
        let ceilings: Vec<_> = (1..=4).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 350, 350]);
    }

    #[test]
    fn full_jitter_stays_under_the_ceiling_and_spreads() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (0..200).map(|_| policy.delay(1, None)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(100)));
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(50))
            .count();
        assert!(
            (40..=160).contains(&low),
            "{low} of 200 below half the ceiling"
        );
    }

    #[test]
    fn retry_after_is_a_floor() {
        let policy = RetryPolicy::default();
        let after = Duration::from_secs(7);
        assert!((0..50).all(|_| policy.delay(3, Some(after)) == after));
    }
}
