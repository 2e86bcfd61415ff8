//! The exception types, and the conversion of library errors into them.

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    RateLimitError,
    PyException,
    "A call was refused by a rate limiter; `retry_after` (seconds or None) says when it may pass."
);
pyo3::create_exception!(
    _native,
    CircuitBreakerOpenError,
    PyException,
    "A call was refused by an open circuit breaker; it did not run. `breaker`, `state` and `retry_after` say which and until when."
);
pyo3::create_exception!(
    _native,
    CheckpointError,
    PyException,
    "A checkpoint operation failed."
);
pyo3::create_exception!(
    _native,
    CheckpointCorruptedError,
    CheckpointError,
    "A checkpoint's bytes do not verify (checksum or SHA-256 mismatch): it cannot be trusted."
);
pyo3::create_exception!(
    _native,
    CheckpointNotFoundError,
    CheckpointError,
    "No checkpoint has this id."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RateLimitError", py.get_type::<RateLimitError>())?;
    m.add(
        "CircuitBreakerOpenError",
        py.get_type::<CircuitBreakerOpenError>(),
    )?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add(
        "CheckpointCorruptedError",
        py.get_type::<CheckpointCorruptedError>(),
    )?;
    m.add(
        "CheckpointNotFoundError",
        py.get_type::<CheckpointNotFoundError>(),
    )?;
    Ok(())
}

/// A rate-limit refusal as `RateLimitError`, with `retry_after` in seconds.
pub(crate) fn rate_limited(
    py: Python<'_>,
    error: &bulwark::ratelimit::RateLimitError,
    name: Option<&str>,
) -> PyErr {
    use bulwark::ratelimit::RateLimitError as E;
    match error {
        E::Limited(_) | E::Unavailable(_) => {
            let message = match name {
                Some(name) => format!("{name}: {error}"),
                None => error.to_string(),
            };
            let err = RateLimitError::new_err(message);
            let retry_after = error.retry_after().map(|d| d.as_secs_f64());
            if let Err(e) = err.value(py).setattr("retry_after", retry_after) {
                return e;
            }
            err
        }
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A breaker refusal as `CircuitBreakerOpenError`.
pub(crate) fn breaker_open(py: Python<'_>, rejected: &bulwark::breaker::Rejected) -> PyErr {
    let err = CircuitBreakerOpenError::new_err(rejected.to_string());
    let value = err.value(py);
    let set = value
        .setattr("breaker", &*rejected.breaker)
        .and_then(|()| value.setattr("state", rejected.state.as_str()))
        .and_then(|()| value.setattr("retry_after", rejected.retry_after.map(|d| d.as_secs_f64())));
    match set {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// A checkpoint error as the matching exception: bad input is a `ValueError`, damage a
/// `CheckpointCorruptedError`, a missing id a `CheckpointNotFoundError`.
pub(crate) fn checkpoint(error: bulwark::checkpoint::CheckpointError) -> PyErr {
    use bulwark::checkpoint::CheckpointError as E;
    match &error {
        E::InvalidId(_) | E::InvalidInput { .. } | E::Serialize(_) => {
            PyValueError::new_err(error.to_string())
        }
        E::NotFound { .. } => CheckpointNotFoundError::new_err(error.to_string()),
        _ if error.is_corruption() => CheckpointCorruptedError::new_err(error.to_string()),
        _ => CheckpointError::new_err(error.to_string()),
    }
}
