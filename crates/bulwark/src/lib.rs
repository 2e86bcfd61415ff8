//! # Bulwark
//!
//! Hardening for the backends that run multi-agent (LLM agent) systems: token-bucket rate
//! limiting, circuit breaking, retries, timeouts, bulkheads, durable state checkpoints and
//! telemetry, each usable alone; a resilience pipeline and durable workflows compose them.
//!
//! | module | what it gives |
//! |---|---|
//! | [`clock`] | the [`Clock`](clock::Clock) trait, the real [`MonotonicClock`](clock::MonotonicClock) and the test [`ManualClock`](clock::ManualClock) |
//! | `alerting` (feature `alerting`) | alert rules over breakers and metrics, evaluated on the clock (pending, firing, resolved, keep-firing-for), notifiers to Alertmanager v2, signed webhooks and the log, export as Prometheus rules |
//! | [`breaker`] | circuit breakers: [`CircuitBreaker`](breaker::CircuitBreaker) with strict half-open admission, a registry, listeners, a tower layer |
//! | [`budget`] | token, request and cost budgets for LLM calls: reserve the bound before a call, settle the real usage after it; stacked, expiring, priced from TOML, local or on Redis |
//! | [`bulkhead`] | at most N calls at once: [`Bulkhead`](bulkhead::Bulkhead) with an optional bounded queue and max wait, keyed bulkheads with idle keys evicted |
//! | [`checkpoint`] | durable, SHA-256-verified state snapshots: [`StateCheckpointManager`](checkpoint::StateCheckpointManager), [`AutoCheckpointer`](checkpoint::AutoCheckpointer), filesystem and PostgreSQL stores |
//! | [`durable`] | durable agent workflows on checkpoints: steps and fan-outs, memoized effects with an idempotency key, interrupts, retries and timeouts, cancel, fork |
//! | [`hedge`] | hedged requests: a second attempt after a fixed delay or a latency percentile, the first answer kept, the others dropped (cancelled) |
//! | [`events`] | the event stream: an [`EventBus`](events::EventBus) fed by the breaker, limiter and checkpoint hooks, with replay after an id, filters and lagging subscribers dropped |
//! | [`llm`] | provider rate-limit headers (OpenAI, Anthropic, `Retry-After`) read into signals that tighten limiters and budgets and pause on a 429; LLM failure classes for retries and breakers |
//! | [`pipeline`] | the resilience pipeline: [`ResiliencePipeline`](pipeline::ResiliencePipeline) composing limiter, bulkhead, timeouts, retry, breaker and fallback outer to inner, from code or a TOML config by name, as a tower layer |
//! | [`ratelimit`] | GCRA token buckets: [`RateLimiter`](ratelimit::RateLimiter), [`KeyedRateLimiter`](ratelimit::KeyedRateLimiter), a registry, a tower layer, a Redis backend |
//! | [`retry`] | retries with capped backoff (constant, linear, exponential, AWS jitter), `retry_after` honoured, a shared retry budget |
//! | [`telemetry`] | W3C-id spans from `tracing` in a bounded [`TraceStore`](telemetry::TraceStore), `traceparent` propagation, a metrics registry (Prometheus text, JSON), OTLP export |
//! | [`timeout`] | per-attempt and overall timeouts on the clock; the inner future is dropped on expiry |
//!
//! ## Feature flags
//!
//! * `macros` (default): the `#[rate_limit]`, `#[circuit_breaker]` and `#[resilient]` attribute macros.
//! * `axum`: the client-IP key extractor also reads axum's `ConnectInfo<SocketAddr>`.
//! * `redis`: `ratelimit::redis` and `budget::redis`, limits and budgets shared by every replica through Redis.
//! * `postgres`: `checkpoint::store::PostgresStore`, checkpoints shared through PostgreSQL.
//! * `encryption`: checkpoint encryption at rest (XChaCha20-Poly1305, ids bound as associated data).
//! * `otlp`: OTLP span export (HTTP/protobuf or gRPC) from [`telemetry`].
//! * `alerting`: the `alerting` module (its notifiers bring an HTTP client).
//!
//! ```
//! use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
//! use std::time::Duration;
//!
//! let limiter = RateLimiter::new(RateLimitConfig::new(100, Duration::from_secs(60), 20))?;
//! assert!(limiter.try_acquire(1)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "alerting")]
pub mod alerting;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod checkpoint;
pub mod clock;
pub mod durable;
pub mod events;
pub mod hedge;
pub mod llm;
pub mod pipeline;
pub mod ratelimit;
#[cfg(feature = "redis")]
mod redis_connect;
pub mod retry;
mod serde_duration;
mod sync;
pub mod telemetry;
pub mod timeout;

#[cfg(feature = "macros")]
pub use bulwark_macros::{circuit_breaker, rate_limit, resilient};
