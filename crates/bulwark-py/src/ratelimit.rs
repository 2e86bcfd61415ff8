//! `RateLimitConfig`, `RateLimiter` and the named-limiter registry.

use std::time::Duration;

use bulwark::ratelimit::{self as rl, RateLimiterRegistry};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors;

/// Seconds (a Python number) as a `Duration`, refusing negative, NaN and infinite values.
pub(crate) fn seconds(what: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a finite number of seconds >= 0, got {value}"
        ))
    })
}

/// `max_requests` per `time_window` seconds, plus `burst_size` extra tokens at once.
#[pyclass(module = "bulwark", eq, frozen)]
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RateLimitConfig {
    /// Tokens added per window.
    #[pyo3(get)]
    max_requests: u32,
    /// The window in seconds.
    #[pyo3(get)]
    time_window: f64,
    /// Extra tokens above `max_requests`.
    #[pyo3(get)]
    burst_size: u32,
    inner: rl::RateLimitConfig,
}

#[pymethods]
impl RateLimitConfig {
    #[new]
    #[pyo3(signature = (max_requests = 100, time_window = 60.0, burst_size = 20))]
    fn new(max_requests: i64, time_window: f64, burst_size: i64) -> PyResult<Self> {
        let count = |what: &str, v: i64| {
            u32::try_from(v).map_err(|_| {
                PyValueError::new_err(format!(
                    "{what} must be between 0 and {}, got {v}",
                    u32::MAX
                ))
            })
        };
        let max_requests = count("max_requests", max_requests)?;
        let burst_size = count("burst_size", burst_size)?;
        let inner = rl::RateLimitConfig::new(
            max_requests,
            seconds("time_window", time_window)?,
            burst_size,
        );
        inner
            .validate()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Self {
            max_requests,
            time_window,
            burst_size,
            inner,
        })
    }

    /// Tokens a full bucket holds: `max_requests + burst_size`.
    #[getter]
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }

    fn __repr__(&self) -> String {
        format!(
            "RateLimitConfig(max_requests={}, time_window={}, burst_size={})",
            self.max_requests, self.time_window, self.burst_size
        )
    }
}

/// A token bucket (GCRA: one atomic word, no refill thread).
#[pyclass(module = "bulwark", frozen, subclass)]
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limiter: rl::RateLimiter,
    config: RateLimitConfig,
}

#[pymethods]
impl RateLimiter {
    /// A limiter enforcing `config`; with `name`, the registry's limiter of that name
    /// (created on first use, shared by every caller, listed by the observability API).
    #[new]
    #[pyo3(signature = (config = None, name = None))]
    fn new(config: Option<PyRef<'_, RateLimitConfig>>, name: Option<&str>) -> PyResult<Self> {
        let config = match config {
            Some(c) => c.clone(),
            None => RateLimitConfig::new(100, 60.0, 20)?,
        };
        let limiter = match name {
            Some(name) => RateLimiterRegistry::global()
                .get_or_create(name, config.inner)
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
            None => rl::RateLimiter::new(config.inner)
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
        };
        Ok(Self { limiter, config })
    }

    /// Takes `tokens` if the bucket holds them; never waits. `ValueError` when `tokens` is
    /// more than the bucket can ever hold.
    #[pyo3(signature = (tokens = 1))]
    fn try_acquire(&self, tokens: u32) -> PyResult<bool> {
        self.limiter
            .try_acquire(tokens)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Takes `tokens` now and returns 0.0, or takes nothing and returns the seconds until
    /// they could be taken (the async decorator sleeps that long and asks again).
    #[pyo3(signature = (tokens = 1))]
    fn wait_time(&self, tokens: u32) -> PyResult<f64> {
        use bulwark::ratelimit::RateLimitError as E;
        match self.limiter.check(tokens) {
            Ok(()) => Ok(0.0),
            Err(E::Limited(limited)) => Ok(limited.retry_after.as_secs_f64().max(1e-6)),
            Err(other) => Err(PyValueError::new_err(other.to_string())),
        }
    }

    /// Takes `tokens` or raises `RateLimitError` carrying `retry_after`.
    #[pyo3(signature = (tokens = 1))]
    fn check(&self, py: Python<'_>, tokens: u32) -> PyResult<()> {
        self.limiter
            .check(tokens)
            .map_err(|e| errors::rate_limited(py, &e, self.limiter.name()))
    }

    /// Waits (the GIL released) until `tokens` can be taken, at most `max_wait` seconds
    /// (default 30); raises `RateLimitError` at once when the wait needed is longer.
    #[pyo3(signature = (tokens = 1, max_wait = None))]
    fn acquire(&self, py: Python<'_>, tokens: u32, max_wait: Option<f64>) -> PyResult<()> {
        let max_wait = seconds("max_wait", max_wait.unwrap_or(30.0))?;
        let runtime = crate::runtime::get()?;
        let limiter = self.limiter.clone();
        py.detach(move || runtime.block_on(limiter.acquire_with_max_wait(tokens, max_wait)))
            .map_err(|e| errors::rate_limited(py, &e, self.limiter.name()))
    }

    /// Whole tokens in the bucket now.
    #[getter]
    fn available(&self) -> u32 {
        self.limiter.available()
    }

    /// Tokens a full bucket holds.
    #[getter]
    fn capacity(&self) -> u32 {
        self.limiter.capacity()
    }

    /// The config it enforces.
    #[getter]
    fn config(&self) -> RateLimitConfig {
        self.config.clone()
    }

    /// The registry name, if it has one.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.limiter.name()
    }

    /// Refills the bucket.
    fn reset(&self) {
        self.limiter.reset();
    }

    fn __repr__(&self) -> String {
        format!(
            "RateLimiter(name={:?}, {}, available={})",
            self.limiter.name(),
            self.config.__repr__(),
            self.limiter.available()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RateLimitConfig>()?;
    m.add_class::<RateLimiter>()?;
    Ok(())
}
