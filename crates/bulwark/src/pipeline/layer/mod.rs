//! [`ResilienceLayer`]: a resilience pipeline in front of an HTTP service (axum, tonic,
//! tower clients).

pub mod future;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use layer::{DEFAULT_MAX_BODY_BYTES, ResilienceLayer};
pub use service::Resilience;
