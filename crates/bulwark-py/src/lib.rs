//! Python bindings of Bulwark: the original Python module's names and call shapes
//! (`RateLimiter(config).try_acquire()`, `@circuit_breaker(config)`,
//! `StateCheckpointManager(checkpoint_dir=...)`, `telemetry.trace(...)`) over the Rust
//! primitives, in one process.
//!
//! The crate builds the extension module `bulwark._native` (a PyO3 abi3 module, built by
//! maturin); the Python package around it (`python/bulwark/`) adds the decorators, the
//! contextvar that nests spans across `await`, and the FastAPI router. How a call crosses:
//!
//! - A Python value meant for a checkpoint is walked once under the GIL straight into JSON
//!   bytes (`json.rs`, no intermediate tree); hashing, compression and the fsynced write then
//!   run with the GIL released (`Python::detach`), on the crate's tokio runtime.
//! - Limiter and breaker decisions are one atomic operation each: they keep the GIL, since
//!   releasing and retaking it would cost more than the decision. Waits release it.
//! - Spans are `tracing` spans with an explicit parent (the Python-side current span), so
//!   they land in the process's trace store and OTLP exporter beside the Rust spans.
//!
//! Every Rust error becomes a Python exception with the Rust message; no panic crosses
//! (PyO3 turns one into `PanicException`, and the library paths here do not panic).
//!
//! The tests are the pytest suite in `tests/` (cargo's harness has no interpreter to link).

mod breaker;
mod checkpoint;
mod errors;
mod json;
mod observability;
mod ratelimit;
mod runtime;
mod telemetry;

use pyo3::prelude::*;

/// The `bulwark._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    telemetry::install();
    errors::register(m)?;
    ratelimit::register(m)?;
    breaker::register(m)?;
    checkpoint::register(m)?;
    telemetry::register(m)?;
    observability::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
