//! # Bulwark
//!
//! Hardening for the backends that run multi-agent (LLM agent) systems: token-bucket rate
//! limiting, circuit breaking, durable state checkpoints and telemetry, each usable alone.
//!
//! | module | what it gives |
//! |---|---|
//! | [`clock`] | the [`Clock`](clock::Clock) trait, the real [`MonotonicClock`](clock::MonotonicClock) and the test [`ManualClock`](clock::ManualClock) |
//! | [`breaker`] | circuit breakers: [`CircuitBreaker`](breaker::CircuitBreaker) with strict half-open admission, a registry, listeners, a tower layer |
//! | [`checkpoint`] | durable, SHA-256-verified state snapshots: [`StateCheckpointManager`](checkpoint::StateCheckpointManager), [`AutoCheckpointer`](checkpoint::AutoCheckpointer), filesystem and PostgreSQL stores |
//! | [`durable`] | durable agent workflows on checkpoints: steps and fan-outs, memoized effects with an idempotency key, interrupts, retries and timeouts, cancel, fork |
//! | [`ratelimit`] | GCRA token buckets: [`RateLimiter`](ratelimit::RateLimiter), [`KeyedRateLimiter`](ratelimit::KeyedRateLimiter), a registry, a tower layer, a Redis backend |
//! | [`telemetry`] | W3C-id spans from `tracing` in a bounded [`TraceStore`](telemetry::TraceStore), `traceparent` propagation, a metrics registry (Prometheus text, JSON), OTLP export |
//!
//! ## Feature flags
//!
//! * `macros` (default): the `#[rate_limit]`, `#[circuit_breaker]` and `#[resilient]` attribute macros.
//! * `axum`: the client-IP key extractor also reads axum's `ConnectInfo<SocketAddr>`.
//! * `redis`: `ratelimit::redis`, limits shared by every replica through Redis.
//! * `postgres`: `checkpoint::store::PostgresStore`, checkpoints shared through PostgreSQL.
//! * `encryption`: checkpoint encryption at rest (XChaCha20-Poly1305, ids bound as associated data).
//! * `otlp`: OTLP span export (HTTP/protobuf or gRPC) from [`telemetry`].
//!
//! ```
//! use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
//! use std::time::Duration;
//!
//! let limiter = RateLimiter::new(RateLimitConfig::new(100, Duration::from_secs(60), 20))?;
//! assert!(limiter.try_acquire(1)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod breaker;
pub mod bulkhead;
pub mod checkpoint;
pub mod clock;
pub mod durable;
pub mod pipeline;
pub mod ratelimit;
pub mod retry;
mod serde_duration;
mod sync;
pub mod telemetry;
pub mod timeout;

#[cfg(feature = "macros")]
pub use bulwark_macros::{circuit_breaker, rate_limit, resilient};
