//! `CircuitBreakerConfig`, `CircuitBreaker`, the permit the async decorator holds across an
//! `await`, and `circuit_breaker_registry`.

use std::sync::{Arc, Mutex, PoisonError};

use bulwark::breaker::{self as cb, BreakerRegistry, OwnedPermit};
use bulwark::telemetry::observers::BreakerMetricsListener;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::errors;
use crate::ratelimit::seconds;

/// The breaker's thresholds; `expected_exception` (a type or a tuple of types) says which
/// exceptions count as failures: others count as successes (the dependency answered), and a
/// `BaseException` that is not an `Exception` (a cancellation) is not counted at all.
#[pyclass(module = "bulwark", frozen)]
#[derive(Debug)]
pub(crate) struct CircuitBreakerConfig {
    /// Consecutive failures that open the breaker.
    #[pyo3(get)]
    failure_threshold: u32,
    /// Successes in HALF_OPEN that close it.
    #[pyo3(get)]
    success_threshold: u32,
    /// Seconds in OPEN before a trial call.
    #[pyo3(get)]
    timeout: f64,
    /// Trial calls at once in HALF_OPEN.
    #[pyo3(get)]
    half_open_max_calls: u32,
    /// What counts as a failure.
    #[pyo3(get)]
    expected_exception: Py<PyAny>,
    inner: cb::CircuitBreakerConfig,
}

#[pymethods]
impl CircuitBreakerConfig {
    #[new]
    #[pyo3(signature = (failure_threshold = 5, success_threshold = 2, timeout = 60.0, half_open_max_calls = 3, expected_exception = None))]
    fn new(
        py: Python<'_>,
        failure_threshold: i64,
        success_threshold: i64,
        timeout: f64,
        half_open_max_calls: i64,
        expected_exception: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let count = |what: &str, v: i64| {
            u32::try_from(v)
                .map_err(|_| PyValueError::new_err(format!("{what} must be at least 1, got {v}")))
        };
        let inner = cb::CircuitBreakerConfig {
            failure_threshold: count("failure_threshold", failure_threshold)?,
            success_threshold: count("success_threshold", success_threshold)?,
            timeout: seconds("timeout", timeout)?,
            half_open_max_calls: count("half_open_max_calls", half_open_max_calls)?,
            ..cb::CircuitBreakerConfig::default()
        };
        inner
            .validate()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let expected_exception = match expected_exception {
            Some(e) => e,
            None => py.get_type::<PyException>().into_any().unbind(),
        };
        Ok(Self {
            failure_threshold: inner.failure_threshold,
            success_threshold: inner.success_threshold,
            timeout,
            half_open_max_calls: inner.half_open_max_calls,
            expected_exception,
            inner,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "CircuitBreakerConfig(failure_threshold={}, success_threshold={}, timeout={}, half_open_max_calls={})",
            self.failure_threshold, self.success_threshold, self.timeout, self.half_open_max_calls
        )
    }
}

/// How an exception settles a call: counted as a failure, as a success, or not at all.
fn settle(py: Python<'_>, expected: &Py<PyAny>, error: &PyErr) -> Option<bool> {
    if error.is_instance(py, expected.bind(py)) {
        Some(true)
    } else if error.is_instance_of::<PyException>(py) {
        Some(false)
    } else {
        None
    }
}

/// A named breaker from the process-wide registry (the one the observability API lists).
#[pyclass(module = "bulwark", frozen)]
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    inner: cb::CircuitBreaker,
    expected: Py<PyAny>,
}

#[pymethods]
impl CircuitBreaker {
    /// The breaker named `name` (created with `config` on first use).
    #[new]
    #[pyo3(signature = (name, config = None))]
    fn new(
        py: Python<'_>,
        name: &str,
        config: Option<PyRef<'_, CircuitBreakerConfig>>,
    ) -> PyResult<Self> {
        get_or_create(py, name, config)
    }

    /// Calls `func(*args, **kwargs)` through the breaker: raises `CircuitBreakerOpenError`
    /// without calling it while open; otherwise returns its result or re-raises its exception
    /// after counting it.
    #[pyo3(signature = (func, *args, **kwargs))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        func: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let permit = self
            .inner
            .try_acquire()
            .map_err(|r| errors::breaker_open(py, &r))?;
        match func.call(args, kwargs) {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(error) => {
                if let Some(failed) = settle(py, &self.expected, &error) {
                    permit.record(failed);
                }
                Err(error)
            }
        }
    }

    /// A permit for one call, for code that settles it later (the async decorator):
    /// `permit.success()` or `permit.failure(exc)`. Raises `CircuitBreakerOpenError` while
    /// open.
    fn acquire(&self, py: Python<'_>) -> PyResult<BreakerPermit> {
        let permit = self
            .inner
            .try_acquire_owned()
            .map_err(|r| errors::breaker_open(py, &r))?;
        Ok(BreakerPermit {
            permit: Mutex::new(Some(permit)),
            expected: self.expected.clone_ref(py),
        })
    }

    /// `"closed"`, `"open"`, `"half_open"`, `"forced_open"` or `"disabled"`.
    #[getter]
    fn state(&self) -> &'static str {
        self.inner.state().as_str()
    }

    /// The breaker's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Seconds until the next trial call, while open.
    #[getter]
    fn next_trial_in(&self) -> Option<f64> {
        self.inner.next_trial_in().map(|d| d.as_secs_f64())
    }

    /// Back to CLOSED with zeroed counts.
    fn reset(&self) {
        self.inner.reset();
    }

    /// Rejects every call until `reset`.
    fn force_open(&self) {
        self.inner.force_open();
    }

    /// Lets every call through, counting nothing, until `reset`.
    fn disable(&self) {
        self.inner.disable();
    }

    /// State, counts and config as a dict (the observability API's shape).
    fn snapshot(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = serde_json::to_value(self.inner.snapshot())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        crate::json::to_python(py, &value)
    }

    fn __repr__(&self) -> String {
        format!(
            "CircuitBreaker(name={:?}, state={:?})",
            self.inner.name(),
            self.inner.state().as_str()
        )
    }
}

/// One admitted call, settled once by `success()` or `failure(exc)`; dropped unsettled it
/// gives its trial slot back without counting.
#[pyclass(module = "bulwark", frozen)]
#[derive(Debug)]
pub(crate) struct BreakerPermit {
    permit: Mutex<Option<OwnedPermit>>,
    expected: Py<PyAny>,
}

impl BreakerPermit {
    fn take(&self) -> Option<OwnedPermit> {
        self.permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[pymethods]
impl BreakerPermit {
    /// The call succeeded.
    fn success(&self) {
        if let Some(permit) = self.take() {
            permit.success();
        }
    }

    /// The call raised `error`; it counts as `expected_exception` says.
    fn failure(&self, py: Python<'_>, error: &Bound<'_, PyAny>) {
        let Some(permit) = self.take() else { return };
        let error = PyErr::from_value(error.clone());
        match settle(py, &self.expected, &error) {
            Some(failed) => permit.record(failed),
            None => drop(permit),
        }
    }
}

fn get_or_create(
    py: Python<'_>,
    name: &str,
    config: Option<PyRef<'_, CircuitBreakerConfig>>,
) -> PyResult<CircuitBreaker> {
    let (inner_config, expected) = match &config {
        Some(c) => (c.inner, c.expected_exception.clone_ref(py)),
        None => (
            cb::CircuitBreakerConfig::default(),
            py.get_type::<PyException>().into_any().unbind(),
        ),
    };
    let inner = BreakerRegistry::global()
        .get_or_create(name, inner_config)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(CircuitBreaker { inner, expected })
}

/// The process's breakers by name (`circuit_breaker_registry`).
#[pyclass(module = "bulwark", frozen)]
#[derive(Debug)]
pub(crate) struct CircuitBreakerRegistry {}

#[pymethods]
impl CircuitBreakerRegistry {
    #[new]
    fn new() -> Self {
        Self {}
    }

    /// The breaker named `name`, created with `config` (default thresholds when None) if
    /// there is none yet; an existing breaker keeps its thresholds.
    #[pyo3(signature = (name, config = None))]
    fn get_or_create(
        &self,
        py: Python<'_>,
        name: &str,
        config: Option<PyRef<'_, CircuitBreakerConfig>>,
    ) -> PyResult<CircuitBreaker> {
        get_or_create(py, name, config)
    }

    /// The breaker named `name`, if there is one.
    fn get(&self, py: Python<'_>, name: &str) -> Option<CircuitBreaker> {
        BreakerRegistry::global()
            .get(name)
            .map(|inner| CircuitBreaker {
                inner,
                expected: py.get_type::<PyException>().into_any().unbind(),
            })
    }

    /// Every breaker's name, sorted.
    fn names(&self) -> Vec<String> {
        BreakerRegistry::global()
            .breakers()
            .iter()
            .map(|b| b.name().to_owned())
            .collect()
    }

    /// Every breaker's snapshot.
    fn get_all_states(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = serde_json::to_value(BreakerRegistry::global().snapshot())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        crate::json::to_python(py, &value)
    }

    /// Removes the breaker named `name`; true when there was one.
    fn remove(&self, name: &str) -> bool {
        BreakerRegistry::global().remove(name).is_some()
    }

    /// Resets every breaker to CLOSED.
    fn reset_all(&self) {
        BreakerRegistry::global().reset_all();
    }

    fn __len__(&self) -> usize {
        BreakerRegistry::global().len()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    BreakerRegistry::global().add_listener(Arc::new(BreakerMetricsListener::global()));
    m.add_class::<CircuitBreakerConfig>()?;
    m.add_class::<CircuitBreaker>()?;
    m.add_class::<BreakerPermit>()?;
    m.add_class::<CircuitBreakerRegistry>()?;
    m.add("circuit_breaker_registry", CircuitBreakerRegistry {})?;
    Ok(())
}
