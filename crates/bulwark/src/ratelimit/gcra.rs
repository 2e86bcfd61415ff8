//! The generic cell rate algorithm (GCRA), in the "virtual scheduling" form.
//!
//! Two quantities define a limit: the emission interval `t` (nanoseconds per token, rounded up
//! so that rounding can only make the limit stricter) and the burst tolerance
//! `tau = capacity * t`. The whole state of a bucket is one number, the theoretical arrival
//! time `tat`: the instant at which the bucket would be full again. A request for `n` tokens at
//! `now` moves it to `max(tat, now) + n * t` and is admitted when that is no later than
//! `now + tau`. A bucket with `tat <= now` is full, which is why `0` is a fresh bucket and why
//! such a bucket can be forgotten without changing any decision.
//!
//! All arithmetic saturates, and a `now` below the stored `tat` (a clock stepping back) only
//! makes the bucket look emptier, so no clock reading can grant extra tokens or overflow.

use std::time::Duration;

use super::config::RateLimitConfig;
use super::error::ConfigError;
use crate::clock::duration_to_nanos;

/// The parameters of one limit, derived from a validated [`RateLimitConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Nanoseconds per token.
    t: u64,
    /// `capacity * t`.
    tau: u64,
    capacity: u32,
}

/// Why a request was refused: how long until it could pass, and how many tokens are left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) wait_nanos: u64,
    pub(crate) available: u32,
}

impl Gcra {
    pub(crate) fn new(config: &RateLimitConfig) -> Result<Self, ConfigError> {
        if config.max_requests == 0 {
            return Err(ConfigError::ZeroRequests);
        }
        if config.time_window.is_zero() {
            return Err(ConfigError::ZeroWindow);
        }
        let window = duration_to_nanos(config.time_window);
        let t = window.div_ceil(u64::from(config.max_requests));
        let capacity =
            u32::try_from(config.capacity()).map_err(|_| ConfigError::CapacityTooLarge {
                capacity: config.capacity(),
            })?;
        let tau = t
            .checked_mul(u64::from(capacity))
            .ok_or(ConfigError::WindowTooLong {
                time_window: config.time_window,
            })?;
        Ok(Self { t, tau, capacity })
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Nanoseconds per token.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn interval_nanos(&self) -> u64 {
        self.t
    }

    /// Nanoseconds a full bucket takes to refill from empty.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn tau_nanos(&self) -> u64 {
        self.tau
    }

    /// Time for one token to refill.
    pub(crate) fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.t)
    }

    /// The new `tat` if `n` tokens may be taken from a bucket in state `tat` at `now`.
    #[inline]
    pub(crate) fn decide(&self, tat: u64, now: u64, n: u32) -> Result<u64, Refusal> {
        let base = tat.max(now);
        // n <= capacity, so n * t <= tau fits; only the addition can run off the clock's range.
        let Some(new_tat) = base.checked_add(self.t.saturating_mul(u64::from(n))) else {
            return Err(Refusal {
                wait_nanos: u64::MAX,
                available: self.available(tat, now),
            });
        };
        let limit = now.saturating_add(self.tau);
        if new_tat <= limit {
            Ok(new_tat)
        } else {
            Err(Refusal {
                wait_nanos: new_tat - limit,
                available: self.available(tat, now),
            })
        }
    }

    /// Whole tokens in a bucket in state `tat` at `now`.
    #[inline]
    pub(crate) fn available(&self, tat: u64, now: u64) -> u32 {
        let room = now.saturating_add(self.tau).saturating_sub(tat.max(now));
        // room <= tau = capacity * t, so the quotient fits in u32.
        u32::try_from(room / self.t).unwrap_or(self.capacity)
    }

    /// Time until a bucket in state `tat` is full again.
    #[inline]
    pub(crate) fn until_full(&self, tat: u64, now: u64) -> Duration {
        Duration::from_nanos(tat.saturating_sub(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcra(max: u32, window_ms: u64, burst: u32) -> Gcra {
        Gcra::new(&RateLimitConfig::new(
            max,
            Duration::from_millis(window_ms),
            burst,
        ))
        .unwrap()
    }

    #[test]
    fn emission_interval_rounds_up_so_the_limit_is_never_looser() {
        let g = gcra(3, 1000, 0);
        assert_eq!(g.emission_interval(), Duration::from_nanos(333_333_334));
    }

    #[test]
    fn refusal_reports_the_wait_for_the_missing_tokens() {
        let g = gcra(10, 1000, 0); // t = 100 ms, capacity 10
        let tat = g.decide(0, 0, 10).unwrap();
        let refusal = g.decide(tat, 0, 3).unwrap_err();
        assert_eq!(refusal.wait_nanos, 300_000_000);
        assert_eq!(refusal.available, 0);
    }

    #[test]
    fn a_clock_before_the_state_never_grants_tokens() {
        let g = gcra(10, 1000, 0);
        let tat = g.decide(0, 5_000_000_000, 10).unwrap();
        // time steps back by a second: the bucket looks emptier, not fuller
        assert!(g.decide(tat, 4_000_000_000, 1).is_err());
        assert_eq!(g.available(tat, 4_000_000_000), 0);
    }

    #[test]
    fn the_end_of_time_refuses_instead_of_overflowing() {
        let g = gcra(1, 1000, 0);
        assert!(g.decide(0, u64::MAX, 1).is_err());
        assert!(g.decide(0, u64::MAX - 1_000_000_000, 1).is_ok());
        assert_eq!(g.available(0, u64::MAX), 0);
    }
}
