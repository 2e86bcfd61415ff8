//! Sample history per series, and the window functions rules compute over it.
//!
//! Each evaluation appends one sample per watched counter or histogram series; samples older
//! than the longest window a rule needs on that metric (plus one, the baseline) are dropped.
//! `rate = (v(now) - v(base)) / (now - base)` where `base` is the newest sample at or before
//! `now - window` (or the oldest sample while history is shorter than the window); a counter
//! that went down was reset and counts from zero. A series first seen after the first
//! evaluation starts from an implied zero at the previous evaluation, so a counter's first
//! increment (a first corrupt checkpoint) is an increase. Prometheus extrapolates `rate` to the
//! window's edges instead; with samples on every evaluation the two agree once the window is
//! covered.

use std::collections::VecDeque;
use std::time::Duration;

use crate::telemetry::metrics::Bucket;

/// One sample's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Sample {
    /// A counter's total.
    Counter(f64),
    /// A histogram's cumulative bucket counts and total count.
    Histogram { buckets: Vec<Bucket>, count: u64 },
}

impl Sample {
    /// The same shape with nothing counted.
    pub(crate) fn zero(&self) -> Self {
        match self {
            Self::Counter(_) => Self::Counter(0.0),
            Self::Histogram { buckets, .. } => Self::Histogram {
                buckets: buckets
                    .iter()
                    .map(|b| Bucket { le: b.le, count: 0 })
                    .collect(),
                count: 0,
            },
        }
    }
}

/// The samples of one series, oldest first, with their clock times in nanoseconds.
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    samples: VecDeque<(u64, Sample)>,
    /// When the series was first seen.
    pub(crate) first_seen: u64,
    /// When the counter last increased.
    pub(crate) last_increase: u64,
    /// The evaluation that last saw the series.
    pub(crate) seen_at: u64,
}

impl History {
    pub(crate) fn new(now: u64) -> Self {
        Self {
            samples: VecDeque::new(),
            first_seen: now,
            last_increase: now,
            seen_at: now,
        }
    }

    /// Appends a sample and drops those no window of `keep` needs.
    pub(crate) fn push(&mut self, now: u64, sample: Sample, keep: Duration) {
        if let (Some((_, Sample::Counter(prev))), Sample::Counter(v)) =
            (self.samples.back(), &sample)
            && v != prev
        {
            self.last_increase = now;
        }
        if let (Some((_, Sample::Histogram { count: prev, .. })), Sample::Histogram { count, .. }) =
            (self.samples.back(), &sample)
            && count != prev
        {
            self.last_increase = now;
        }
        self.samples.push_back((now, sample));
        let horizon = now.saturating_sub(crate::clock::duration_to_nanos(keep));
        // Keep the newest sample at or before the horizon: it is the baseline.
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|(t, _)| *t <= horizon) {
            self.samples.pop_front();
        }
    }

    fn baseline(&self, now: u64, window: Duration) -> Option<&(u64, Sample)> {
        let start = now.saturating_sub(crate::clock::duration_to_nanos(window));
        let mut base = self.samples.front()?;
        for s in &self.samples {
            if s.0 <= start {
                base = s;
            } else {
                break;
            }
        }
        Some(base)
    }

    /// The counter's per-second rate over `window`; `None` with fewer than two samples.
    pub(crate) fn rate(&self, now: u64, window: Duration) -> Option<f64> {
        let (t0, base) = self.baseline(now, window)?;
        let (t1, last) = self.samples.back()?;
        if t1 <= t0 {
            return None;
        }
        let increase = self.increase_between(*t0, base, last)?;
        Some(increase / ((t1 - t0) as f64 / 1e9))
    }

    /// The counter's increase over `window`; `None` without a sample.
    pub(crate) fn increase(&self, now: u64, window: Duration) -> Option<f64> {
        let (t0, base) = self.baseline(now, window)?;
        let (_, last) = self.samples.back()?;
        self.increase_between(*t0, base, last)
    }

    fn increase_between(&self, t0: u64, base: &Sample, last: &Sample) -> Option<f64> {
        let (Sample::Counter(_), Sample::Counter(_)) = (base, last) else {
            return None;
        };
        // Sum the positive steps so a reset (a drop) counts from zero.
        let mut total = 0.0;
        let mut prev: Option<f64> = None;
        for (t, s) in &self.samples {
            if *t < t0 {
                continue;
            }
            if let Sample::Counter(v) = s {
                if let Some(p) = prev {
                    total += if *v >= p { v - p } else { *v };
                }
                prev = Some(*v);
            }
        }
        Some(total)
    }

    /// The histogram's `q` quantile over the observations of the last `window`; `None`
    /// without observations in it.
    pub(crate) fn quantile(&self, now: u64, window: Duration, q: f64) -> Option<f64> {
        let (_, base) = self.baseline(now, window)?;
        let (_, last) = self.samples.back()?;
        let (
            Sample::Histogram {
                buckets: b0,
                count: c0,
            },
            Sample::Histogram {
                buckets: b1,
                count: c1,
            },
        ) = (base, last)
        else {
            return None;
        };
        if std::ptr::eq(base, last) {
            return None;
        }
        let (deltas, total): (Vec<(f64, u64)>, u64) = if c1 < c0 || b0.len() != b1.len() {
            // A reset: everything recorded since counts.
            (b1.iter().map(|b| (b.le, b.count)).collect(), *c1)
        } else {
            (
                b1.iter()
                    .zip(b0)
                    .map(|(n, o)| (n.le, n.count.saturating_sub(o.count)))
                    .collect(),
                c1 - c0,
            )
        };
        histogram_quantile(q, &deltas, total)
    }
}

/// Prometheus' `histogram_quantile` over cumulative `(le, count)` buckets and the `+Inf`
/// total: find the bucket holding rank `q * total`, interpolate linearly inside it (from 0 for
/// the first bucket); a rank in the `+Inf` bucket gives the highest finite bound.
pub(crate) fn histogram_quantile(q: f64, buckets: &[(f64, u64)], total: u64) -> Option<f64> {
    if total == 0 || q.is_nan() {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = 0.0;
    let mut below = 0u64;
    for (le, count) in buckets {
        if *count as f64 >= rank && *count > 0 {
            let inside = (count - below) as f64;
            if inside == 0.0 {
                return Some(*le);
            }
            return Some(lower + (le - lower) * ((rank - below as f64) / inside));
        }
        lower = *le;
        below = *count;
    }
    buckets.last().map(|(le, _)| *le)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        // 10 observations: 5 at or below 0.1, 9 at or below 0.5, all at or below 1.
        let b = [(0.1, 5), (0.5, 9), (1.0, 10)];
        // p50: rank 5 is the end of the first bucket.
        assert_eq!(histogram_quantile(0.5, &b, 10), Some(0.1));
        // p90: rank 9, end of the second.
        assert_eq!(histogram_quantile(0.9, &b, 10), Some(0.5));
        // p70: rank 7, halfway through (0.1, 0.5].
        let p70 = histogram_quantile(0.7, &b, 10).unwrap_or(f64::NAN);
        assert!((p70 - 0.3).abs() < 1e-12, "{p70}");
        // Above every finite bucket: the highest bound.
        assert_eq!(histogram_quantile(0.99, &[(0.1, 1)], 10), Some(0.1));
        assert_eq!(histogram_quantile(0.5, &b, 0), None);
    }

    #[test]
    fn rate_uses_the_sample_at_the_window_start_and_survives_resets() {
        let mut h = History::new(0);
        for (t, v) in [(0, 0.0), (15, 30.0), (30, 60.0), (45, 10.0), (60, 40.0)] {
            h.push(t * S, Sample::Counter(v), Duration::from_secs(60));
        }
        // Window 30 s at t=60: base t=30 (60), then reset to 10, then 40: increase 10 + 30.
        assert_eq!(h.rate(60 * S, Duration::from_secs(30)), Some(40.0 / 30.0));
        assert_eq!(h.increase(60 * S, Duration::from_secs(60)), Some(100.0));
    }
}
