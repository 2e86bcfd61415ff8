//! How many series a metric may hold and where histogram buckets fall.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::registry::MetricsError;

/// Prometheus's default buckets, in seconds: 5 ms to 10 s.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets for sizes in bytes (any metric named `*_bytes` without its own buckets): powers of 4
/// from 1 KiB to 1 GiB.
pub const BYTE_BUCKETS: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
];

/// Label sets a metric holds at most unless configured otherwise.
pub const DEFAULT_MAX_SERIES_PER_METRIC: usize = 1000;

/// The registry's configuration, a plain value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Label sets per metric; further ones fold into one overflow series. Default 1000.
    pub max_series_per_metric: usize,
    /// Bucket upper bounds for histograms without their own. Default: [`DEFAULT_BUCKETS`].
    pub default_buckets: Vec<f64>,
    /// Bucket upper bounds per metric name.
    pub buckets: BTreeMap<String, Vec<f64>>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            max_series_per_metric: DEFAULT_MAX_SERIES_PER_METRIC,
            default_buckets: DEFAULT_BUCKETS.to_vec(),
            buckets: BTreeMap::new(),
        }
    }
}

fn valid_bounds(bounds: &[f64]) -> bool {
    !bounds.is_empty()
        && bounds.iter().all(|b| b.is_finite())
        && bounds.windows(2).all(|w| w[0] < w[1])
}

impl MetricsConfig {
    /// The same config with `bounds` as the buckets of the histogram `name`.
    pub fn with_buckets(mut self, name: &str, bounds: Vec<f64>) -> Result<Self, MetricsError> {
        if !valid_bounds(&bounds) {
            return Err(MetricsError::InvalidBuckets(name.to_owned()));
        }
        self.buckets.insert(name.to_owned(), bounds);
        Ok(self)
    }

    /// The same config with at most `max` label sets per metric.
    pub fn with_max_series_per_metric(mut self, max: usize) -> Self {
        self.max_series_per_metric = max;
        self
    }

    /// Checks every bucket list.
    pub fn validate(&self) -> Result<(), MetricsError> {
        if !valid_bounds(&self.default_buckets) {
            return Err(MetricsError::InvalidBuckets("(default)".to_owned()));
        }
        for (name, bounds) in &self.buckets {
            if !valid_bounds(bounds) {
                return Err(MetricsError::InvalidBuckets(name.clone()));
            }
        }
        Ok(())
    }

    /// The bucket bounds the histogram `name` gets.
    pub fn buckets_for(&self, name: &str) -> Vec<f64> {
        if let Some(bounds) = self.buckets.get(name).filter(|b| valid_bounds(b)) {
            return bounds.clone();
        }
        if name.ends_with("_bytes") {
            return BYTE_BUCKETS.to_vec();
        }
        if valid_bounds(&self.default_buckets) {
            self.default_buckets.clone()
        } else {
            DEFAULT_BUCKETS.to_vec()
        }
    }
}
