//! Rate limits shared by every replica: the same GCRA, decided atomically inside Redis.
//!
//! Each decision is one `EVALSHA` of a Lua script (`gcra.lua`) that reads the bucket's TAT,
//! decides, writes the new TAT and sets the key to expire when the bucket would be full again,
//! all atomically on the server. Time comes from the server's `TIME`, so clients with skewed
//! clocks still share one timeline and cannot over-admit. Keys are `{prefix}:{key}`, one string
//! per bucket, and an idle bucket disappears by itself.
//!
//! When Redis cannot answer within the per-decision timeout, a [`FailurePolicy`] decides:
//! admit, refuse, or fall back to a local limiter holding a share of the quota. The switch and
//! the recovery are logged once each and counted in [`RedisLimiterStats`].
//!
//! ```no_run
//! use bulwark::ratelimit::redis::{FailurePolicy, RedisRateLimiter};
//! use bulwark::ratelimit::{RateLimitBackend, RateLimitConfig};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = RedisRateLimiter::builder(RateLimitConfig::per_minute(60))
//!     .prefix("myapp:openai")
//!     .timeout(Duration::from_millis(50))
//!     .on_failure(FailurePolicy::Fallback { share: 0.5 })
//!     .connect("redis://127.0.0.1:6379")
//!     .await?;
//! limiter.check("user-42", 1).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::Serialize;

use super::backend::{CheckFuture, RateLimitBackend};
use super::config::RateLimitConfig;
use super::error::{ConfigError, ExceedsCapacity, RateLimitError, RateLimited};
use super::gcra::Gcra;
use super::keyed::KeyedRateLimiter;
use super::limiter::Admitted;
use super::observer::{Decision, RateLimitObserver};
use crate::clock::Clock;

const SCRIPT: &str = include_str!("gcra.lua");
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// What a [`RedisRateLimiter`] does when Redis cannot decide in time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit every request: availability over protection.
    FailOpen,
    /// Refuse every request with [`RateLimitError::Unavailable`]: protection over availability.
    FailClosed,
    /// Decide with a limiter in this process holding `share` (0 < share ≤ 1) of the quota,
    /// so that N replicas falling back together stay near the shared limit with `1 / N`.
    Fallback {
        /// The fraction of `max_requests` and `burst_size` the local limiter holds.
        share: f64,
    },
}

/// How a [`RedisRateLimiter`] has fared with its backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RedisLimiterStats {
    /// Decisions Redis failed to make (errors and timeouts).
    pub backend_errors: u64,
    /// Times Redis answered again after failing.
    pub recoveries: u64,
    /// Decisions made by the failure policy instead of Redis.
    pub policy_decisions: u64,
    /// Whether the last attempt to reach Redis failed.
    pub degraded: bool,
}

/// Why a [`RedisRateLimiter`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The limit is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `share` is not in (0, 1].
    #[error("fallback share must be in (0, 1], got {0}")]
    InvalidShare(f64),
    /// The URL is invalid or the first connection failed.
    #[error("cannot connect to redis: {0}")]
    Connect(#[from] redis::RedisError),
    /// The first connection did not complete within the timeout.
    #[error("cannot connect to redis within {0:?}")]
    ConnectTimeout(Duration),
}

type NowFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A keyed rate limiter whose buckets live in Redis; clones share the connection.
#[derive(Clone)]
pub struct RedisRateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    script: redis::Script,
    gcra: Gcra,
    config: RateLimitConfig,
    prefix: String,
    timeout: Duration,
    policy: FailurePolicy,
    fallback: Option<KeyedRateLimiter<String>>,
    now: Option<NowFn>,
    name: Option<Arc<str>>,
    observer: Option<Arc<dyn RateLimitObserver>>,
    degraded: AtomicBool,
    backend_errors: AtomicU64,
    recoveries: AtomicU64,
    policy_decisions: AtomicU64,
}

impl RedisRateLimiter {
    /// A builder for a limiter enforcing `config` per key.
    pub fn builder(config: RateLimitConfig) -> RedisRateLimiterBuilder {
        RedisRateLimiterBuilder {
            config,
            prefix: "bulwark:ratelimit".into(),
            timeout: Duration::from_millis(100),
            policy: FailurePolicy::FailClosed,
            now: None,
            name: None,
            observer: None,
        }
    }

    /// Takes `tokens` from `key`'s bucket, or says how long until it could.
    pub async fn check(&self, key: &str, tokens: u32) -> Result<Admitted, RateLimitError> {
        let inner = &*self.inner;
        let capacity = inner.gcra.capacity();
        if tokens > capacity {
            return Err(ExceedsCapacity {
                requested: tokens,
                capacity,
            }
            .into());
        }
        let result = match tokio::time::timeout(inner.timeout, self.eval(key, tokens)).await {
            Ok(Ok(reply)) => {
                if inner.degraded.swap(false, Ordering::AcqRel) {
                    inner.recoveries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(prefix = %inner.prefix, "redis answers again; shared rate limits resume");
                }
                self.interpret(&reply, tokens)
            }
            Ok(Err(error)) => return self.on_failure(key, tokens, error.to_string()),
            Err(_) => {
                return self.on_failure(
                    key,
                    tokens,
                    format!("no answer within {:?}", inner.timeout),
                );
            }
        };
        self.notify(key, tokens, &result);
        result
    }

    /// The backend's health so far.
    pub fn stats(&self) -> RedisLimiterStats {
        let inner = &*self.inner;
        RedisLimiterStats {
            backend_errors: inner.backend_errors.load(Ordering::Relaxed),
            recoveries: inner.recoveries.load(Ordering::Relaxed),
            policy_decisions: inner.policy_decisions.load(Ordering::Relaxed),
            degraded: inner.degraded.load(Ordering::Relaxed),
        }
    }

    /// Whether Redis answers a `PING` within the timeout.
    pub async fn ping(&self) -> bool {
        let mut connection = self.inner.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        matches!(
            tokio::time::timeout(self.inner.timeout, ping).await,
            Ok(Ok(_))
        )
    }

    /// The limit every key gets.
    pub fn config(&self) -> &RateLimitConfig {
        &self.inner.config
    }

    /// The Redis key holding `key`'s bucket.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}:{}", self.inner.prefix, key)
    }

    async fn eval(&self, key: &str, tokens: u32) -> redis::RedisResult<Vec<i64>> {
        let inner = &*self.inner;
        let increment = inner
            .gcra
            .interval_nanos()
            .saturating_mul(u64::from(tokens));
        let tau = inner.gcra.tau_nanos();
        let mut invocation = inner.script.key(self.redis_key(key));
        invocation
            .arg(increment / NANOS_PER_SEC)
            .arg(increment % NANOS_PER_SEC)
            .arg(tau / NANOS_PER_SEC)
            .arg(tau % NANOS_PER_SEC);
        if let Some(now) = &inner.now {
            let now = now();
            invocation.arg(now / NANOS_PER_SEC).arg(now % NANOS_PER_SEC);
        }
        let mut connection = inner.connection.clone();
        invocation.invoke_async(&mut connection).await
    }

    fn interpret(&self, reply: &[i64], tokens: u32) -> Result<Admitted, RateLimitError> {
        let gcra = &self.inner.gcra;
        let [verdict, a_s, a_ns, b_s, b_ns] = reply else {
            return Err(self.bad_reply(reply));
        };
        let (Some(a), Some(b)) = (pair_to_nanos(*a_s, *a_ns), pair_to_nanos(*b_s, *b_ns)) else {
            return Err(self.bad_reply(reply));
        };
        let whole_tokens =
            |room: u64| u32::try_from(room / gcra.interval_nanos()).unwrap_or(gcra.capacity());
        match verdict {
            1 => Ok(Admitted {
                remaining: whole_tokens(a),
                reset_after: Duration::from_nanos(b),
                capacity: gcra.capacity(),
            }),
            0 => Err(RateLimited {
                retry_after: Duration::from_nanos(a),
                available: whole_tokens(b),
                requested: tokens,
                capacity: gcra.capacity(),
            }
            .into()),
            _ => Err(self.bad_reply(reply)),
        }
    }

    fn bad_reply(&self, reply: &[i64]) -> RateLimitError {
        tracing::error!(?reply, "unexpected reply from the rate-limit script");
        RateLimitError::Unavailable(format!("unexpected reply from redis: {reply:?}"))
    }

    fn on_failure(
        &self,
        key: &str,
        tokens: u32,
        reason: String,
    ) -> Result<Admitted, RateLimitError> {
        let inner = &*self.inner;
        inner.backend_errors.fetch_add(1, Ordering::Relaxed);
        inner.policy_decisions.fetch_add(1, Ordering::Relaxed);
        if !inner.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(prefix = %inner.prefix, %reason, policy = ?inner.policy,
                "redis cannot decide; applying the failure policy");
        }
        let result = match (&inner.policy, &inner.fallback) {
            (FailurePolicy::FailOpen, _) => Ok(Admitted {
                remaining: inner.gcra.capacity(),
                reset_after: Duration::ZERO,
                capacity: inner.gcra.capacity(),
            }),
            (FailurePolicy::Fallback { .. }, Some(local)) => {
                local.check_detailed(&key.to_owned(), tokens)
            }
            _ => Err(RateLimitError::Unavailable(reason)),
        };
        self.notify(key, tokens, &result);
        result
    }

    fn notify(&self, key: &str, tokens: u32, result: &Result<Admitted, RateLimitError>) {
        let Some(observer) = &self.inner.observer else {
            return;
        };
        let (allowed, available, retry_after) = match result {
            Ok(admitted) => (true, admitted.remaining, None),
            Err(RateLimitError::Limited(limited)) => {
                (false, limited.available, Some(limited.retry_after))
            }
            Err(_) => (false, 0, None),
        };
        observer.on_decision(&Decision {
            limiter: self.inner.name.as_deref(),
            key: Some(&key),
            requested: tokens,
            allowed,
            available,
            retry_after,
        });
    }
}

fn pair_to_nanos(seconds: i64, nanos: i64) -> Option<u64> {
    let seconds = u64::try_from(seconds).ok()?;
    let nanos = u64::try_from(nanos).ok().filter(|n| *n < NANOS_PER_SEC)?;
    seconds.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

impl RateLimitBackend for RedisRateLimiter {
    fn check<'a>(&'a self, key: &'a str, tokens: u32) -> CheckFuture<'a> {
        Box::pin(RedisRateLimiter::check(self, key, tokens))
    }

    fn capacity(&self) -> u32 {
        self.inner.gcra.capacity()
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.inner.prefix)
            .field("config", &self.inner.config)
            .field("policy", &self.inner.policy)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Builds a [`RedisRateLimiter`]; see [`RedisRateLimiter::builder`].
#[must_use]
pub struct RedisRateLimiterBuilder {
    config: RateLimitConfig,
    prefix: String,
    timeout: Duration,
    policy: FailurePolicy,
    now: Option<NowFn>,
    name: Option<Arc<str>>,
    observer: Option<Arc<dyn RateLimitObserver>>,
}

impl RedisRateLimiterBuilder {
    /// The prefix of every bucket's Redis key (default `bulwark:ratelimit`); limits with
    /// different configs need different prefixes.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a decision may wait for Redis before the failure policy applies
    /// (default 100 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when Redis cannot decide (default [`FailurePolicy::FailClosed`]).
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sends `clock`'s time with every decision instead of using the server's `TIME`. Meant
    /// for tests that drive Redis and a local limiter with one manual clock; in production,
    /// the server's clock is what keeps replicas with skewed clocks on one timeline.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.now = Some(Arc::new(move || clock.now_nanos()));
        self
    }

    /// Names the limiter for observers.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Attaches an observer that sees every decision, including those of the failure policy.
    pub fn observer(mut self, observer: Arc<dyn RateLimitObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Connects to the Redis at `url` (`redis://host:port/db`) with a reconnecting connection.
    pub async fn connect(self, url: &str) -> Result<RedisRateLimiter, RedisSetupError> {
        let connection = crate::redis_connect::connect(url, self.timeout)
            .await
            .map_err(|error| match error {
                crate::redis_connect::ConnectError::Redis(e) => RedisSetupError::Connect(e),
                crate::redis_connect::ConnectError::Timeout(t) => {
                    RedisSetupError::ConnectTimeout(t)
                }
            })?;
        self.build(connection)
    }

    /// Uses an existing connection manager.
    pub fn build(self, connection: ConnectionManager) -> Result<RedisRateLimiter, RedisSetupError> {
        let gcra = Gcra::new(&self.config)?;
        let fallback = match self.policy {
            FailurePolicy::Fallback { share } => {
                if !(share > 0.0 && share <= 1.0) {
                    return Err(RedisSetupError::InvalidShare(share));
                }
                let scale = |n: u32| ((f64::from(n) * share).ceil() as u32).max(1);
                let local = RateLimitConfig::new(
                    scale(self.config.max_requests),
                    self.config.time_window,
                    if self.config.burst_size == 0 {
                        0
                    } else {
                        scale(self.config.burst_size)
                    },
                );
                Some(KeyedRateLimiter::new(local)?)
            }
            FailurePolicy::FailOpen | FailurePolicy::FailClosed => None,
        };
        Ok(RedisRateLimiter {
            inner: Arc::new(Inner {
                connection,
                script: redis::Script::new(SCRIPT),
                gcra,
                config: self.config,
                prefix: self.prefix,
                timeout: self.timeout,
                policy: self.policy,
                fallback,
                now: self.now,
                name: self.name,
                observer: self.observer,
                degraded: AtomicBool::new(false),
                backend_errors: AtomicU64::new(0),
                recoveries: AtomicU64::new(0),
                policy_decisions: AtomicU64::new(0),
            }),
        })
    }
}

impl fmt::Debug for RedisRateLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiterBuilder")
            .field("config", &self.config)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .finish()
    }
}
