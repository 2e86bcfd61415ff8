//! Time for every primitive: a real monotonic clock and a manual clock for tests.
//!
//! A [`Clock`] reports nanoseconds elapsed since its own origin as a `u64` (about 584 years of
//! range), which is what the primitives store in their atomic state. Two clocks ship:
//!
//! * [`MonotonicClock`], the default. It reads the CPU's time-stamp counter through `quanta`
//!   when the Linux kernel itself trusts that counter (its clocksource is `tsc`, which the
//!   kernel only selects after checking that the counters of all cores agree and never warp;
//!   this is the check quanta alone lacks, governor #299), and `std::time::Instant` otherwise.
//!   A read costs what the counter costs (about 10 ns under KVM here, against 23 ns for
//!   `Instant::now()`). As a second line of defence the primitives treat a reading below their
//!   stored state as "no time has passed", so even a clock stepping backwards could only delay
//!   a refill, never grant one (tested with the manual clock).
//! * [`ManualClock`], for tests: time moves only when [`ManualClock::advance`] or
//!   [`ManualClock::set`] is called, and clones share the same time. Its [`Clock::sleep`]
//!   completes when the clock is advanced past the deadline, so async code that waits on a
//!   clock can be tested without real sleeping.
//!
//! ```
//! use bulwark::clock::{Clock, ManualClock};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let shared = clock.clone();
//! clock.advance(Duration::from_millis(1500));
//! assert_eq!(shared.now_nanos(), 1_500_000_000);
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of monotonic time, in nanoseconds since the clock's own origin.
///
/// Implementations must be cheap to read and safe to share between threads; clones of one clock
/// must report the same time.
pub trait Clock: Clone + Send + Sync + fmt::Debug + 'static {
    /// Nanoseconds elapsed since this clock's origin.
    fn now_nanos(&self) -> u64;

    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// [`Clock::now_nanos`] as a [`Duration`].
    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }
}

/// Converts a duration to whole nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_to_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The real clock: cheap, monotonic, shared by the whole process.
///
/// All instances share one origin (the first time any of them was read), so readings from
/// different limiters and breakers are comparable.
#[derive(Clone, Copy, Default)]
pub struct MonotonicClock {
    _private: (),
}

enum Source {
    /// The counter and its raw reading at the origin; raw readings are converted straight to
    /// nanoseconds, skipping `Instant`/`Duration` arithmetic on the hot path.
    Tsc(quanta::Clock, u64),
    Std(Instant),
}

fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        if kernel_trusts_tsc() {
            let clock = quanta::Clock::new();
            let origin = clock.raw();
            Source::Tsc(clock, origin)
        } else {
            Source::Std(Instant::now())
        }
    })
}

/// The kernel selects the `tsc` clocksource only after it has verified that the time-stamp
/// counters are invariant and synchronised across cores; anything else means we must not use
/// the counter directly.
fn kernel_trusts_tsc() -> bool {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim() == "tsc")
        .unwrap_or(false)
}

impl MonotonicClock {
    /// A handle on the process-wide monotonic clock.
    pub fn new() -> Self {
        Self { _private: () }
    }

    /// Whether readings come from the CPU's time-stamp counter (`true`) or from
    /// `std::time::Instant` (`false`).
    pub fn uses_tsc() -> bool {
        matches!(source(), Source::Tsc(..))
    }
}

impl fmt::Debug for MonotonicClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonotonicClock")
            .field("tsc", &Self::uses_tsc())
            .finish()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        match source() {
            Source::Tsc(clock, origin) => clock.delta_as_nanos(*origin, clock.raw()),
            Source::Std(origin) => duration_to_nanos(origin.elapsed()),
        }
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// Starts at zero unless built with [`ManualClock::starting_at`].
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    now: AtomicU64,
    changed: watch::Sender<u64>,
}

impl ManualClock {
    /// A manual clock at time zero.
    pub fn new() -> Self {
        Self::starting_at(Duration::ZERO)
    }

    /// A manual clock at `start`.
    pub fn starting_at(start: Duration) -> Self {
        let nanos = duration_to_nanos(start);
        let (changed, _) = watch::channel(nanos);
        Self {
            inner: Arc::new(ManualInner {
                now: AtomicU64::new(nanos),
                changed,
            }),
        }
    }

    /// Moves time forward by `by` (saturating at the end of the clock's range).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        let previous = self
            .inner
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            })
            .unwrap_or_else(|now| now);
        self.inner.changed.send_replace(previous.saturating_add(by));
    }

    /// Sets the time to `to`. Moving it backwards is allowed, to test how primitives react to
    /// a clock that steps back.
    pub fn set(&self, to: Duration) {
        let nanos = duration_to_nanos(to);
        self.inner.now.store(nanos, Ordering::Release);
        self.inner.changed.send_replace(nanos);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.inner.now.load(Ordering::Acquire)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.now_nanos().saturating_add(duration_to_nanos(duration));
        let mut changes = self.inner.changed.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if every clone is gone,
            // time can never reach the deadline, so the sleep simply never completes.
            if changes.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_never_goes_backwards_on_one_thread() {
        let clock = MonotonicClock::new();
        let mut last = clock.now_nanos();
        for _ in 0..10_000 {
            let now = clock.now_nanos();
            assert!(now >= last);
            last = now;
        }
    }

    #[test]
    fn manual_clock_clones_share_time_and_can_step_back() {
        let clock = ManualClock::starting_at(Duration::from_secs(5));
        let clone = clock.clone();
        clock.advance(Duration::from_secs(1));
        assert_eq!(clone.now(), Duration::from_secs(6));
        clone.set(Duration::from_secs(2));
        assert_eq!(clock.now(), Duration::from_secs(2));
    }

    #[test]
    fn manual_clock_saturates_at_the_end_of_its_range() {
        let clock = ManualClock::starting_at(Duration::from_nanos(u64::MAX - 1));
        clock.advance(Duration::from_secs(10));
        assert_eq!(clock.now_nanos(), u64::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn manual_sleep_completes_only_when_time_reaches_the_deadline() {
        let clock = ManualClock::new();
        let mut sleep = tokio::spawn(clock.sleep(Duration::from_secs(10)));
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(9));
        // tokio's paused clock auto-advances, so this timeout costs no real time.
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), &mut sleep)
                .await
                .is_err()
        );
        clock.advance(Duration::from_secs(1));
        assert!(sleep.await.is_ok());
    }
}
