//! Budgets shared by every replica: reserve, settle and release are each one atomic Lua
//! script (`budget.lua`) in Redis, which also gives back stale reservations server-side.
//!
//! Layout, all keys under one hash tag `{prefix}`: a hash per budget key (`w` window, `s`
//! spent, `r` reserved), a hash per reservation (budget key → amount held), a sorted set of
//! reservation ids by deadline (each script first gives back up to 64 that are due), and a
//! short-lived marker per settled reservation, so settling a restored record twice charges
//! once. Budget hashes expire a day after their window ends.
//!
//! Windows are placed by the client's clock (Unix milliseconds): replicas need clocks in step
//! to well within a window, which NTP gives for per-minute and longer windows. The same
//! [`BudgetBackend`] conformance suite as the local [`Ledger`](super::Ledger) runs against it.
//!
//! ```no_run
//! use bulwark::budget::redis::RedisBudgets;
//! use bulwark::budget::{BudgetBackend, BudgetRef, BudgetSpec, Charge, Period, Unit, Usage};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let budgets = RedisBudgets::builder()
//!     .prefix("myapp:budgets")
//!     .budget(BudgetSpec::new("gpt-4o:tpm", Unit::Tokens, 30_000, Period::minute()))
//!     .connect("redis://127.0.0.1:6379")
//!     .await?;
//! let stack = [BudgetRef::new("gpt-4o:tpm", "")];
//! let record = budgets.reserve(&stack, &Charge::tokens(Usage::estimate(1_200, 800))).await?;
//! budgets.settle(&record, Usage::new(1_200, 90)).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

use super::backend::{BudgetBackend, BudgetFuture, BudgetRef};
use super::error::{BudgetError, BudgetExceeded, ConfigError};
use super::ledger::{BudgetSnapshot, Charge, DEFAULT_RESERVATION_TTL};
use super::price::{Price, PriceTable};
use super::reservation::{PartRecord, ReservationRecord, Settlement};
use super::spec::{BudgetSpec, Unit};
use super::state::MAX_STACK;
use super::usage::Usage;
use crate::clock::{Clock, duration_to_nanos};

const SCRIPT: &str = include_str!("budget.lua");
/// Lua numbers are doubles: integers are exact up to 2^53.
const MAX_EXACT: u64 = 1 << 53;
/// How long a settled reservation's marker lives: longer than any reservation's deadline.
const SETTLED_MARKER_MS: u64 = 24 * 3_600_000;

type NowFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Why a [`RedisBudgets`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// A budget or price is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The URL is invalid or the first connection failed.
    #[error("cannot connect to redis: {0}")]
    Connect(#[from] redis::RedisError),
    /// The first connection did not complete within the timeout.
    #[error("cannot connect to redis within {0:?}")]
    ConnectTimeout(Duration),
}

/// Budgets in Redis; clones share the connection.
#[derive(Clone)]
pub struct RedisBudgets {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
    specs: HashMap<String, BudgetSpec>,
    prices: PriceTable,
    ttl_ms: u64,
    timeout: Duration,
    now: NowFn,
    nonce: u64,
    next: AtomicU64,
}

impl RedisBudgets {
    /// A builder with no budgets, the prefix `bulwark:budget` and the system clock.
    pub fn builder() -> RedisBudgetsBuilder {
        RedisBudgetsBuilder {
            prefix: "bulwark:budget".into(),
            specs: Vec::new(),
            prices: PriceTable::new(),
            ttl: DEFAULT_RESERVATION_TTL,
            timeout: Duration::from_millis(500),
            now: None,
        }
    }

    fn budget_key(&self, budget: &str, key: &str) -> String {
        format!("{{{}}}:b:{budget}:{key}", self.inner.prefix)
    }

    fn reservation_prefix(&self) -> String {
        format!("{{{}}}:r:", self.inner.prefix)
    }

    fn spec(&self, budget: &str) -> Result<&BudgetSpec, BudgetError> {
        self.inner
            .specs
            .get(budget)
            .ok_or_else(|| BudgetError::UnknownBudget(budget.to_owned()))
    }

    fn now_ms(&self) -> u64 {
        (self.inner.now)() / 1_000_000
    }

    async fn run(&self, invocation: redis::ScriptInvocation<'_>) -> Result<Vec<i64>, BudgetError> {
        let mut connection = self.inner.connection.clone();
        match tokio::time::timeout(self.inner.timeout, invocation.invoke_async(&mut connection))
            .await
        {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(BudgetError::Unavailable(error.to_string())),
            Err(_) => Err(BudgetError::Unavailable(format!(
                "no answer within {:?}",
                self.inner.timeout
            ))),
        }
    }

    /// Pushes `op` for `parts` (budget, key, amount) with the common arguments.
    fn invocation<'a>(
        &'a self,
        op: &str,
        id: &str,
        fourth: u64,
        parts: &[(&BudgetSpec, &str, u64)],
        now_ms: u64,
    ) -> redis::ScriptInvocation<'a> {
        let mut invocation = self.inner.script.prepare_invoke();
        let tag = &self.inner.prefix;
        invocation
            .key(format!("{{{tag}}}:exp"))
            .key(format!("{}{id}", self.reservation_prefix()))
            .key(format!("{{{tag}}}:done:{id}"))
            .arg(op)
            .arg(now_ms)
            .arg(id)
            .arg(fourth)
            .arg(self.reservation_prefix());
        for (spec, key, amount) in parts {
            let (window, end) = spec.period.window(now_ms.saturating_mul(1_000_000));
            let end_ms = if end == u64::MAX { 0 } else { end / 1_000_000 };
            invocation
                .key(self.budget_key(&spec.name, key))
                .arg(window)
                .arg(end_ms)
                .arg(spec.limit)
                .arg(*amount)
                .arg(
                    spec.soft_limit
                        .map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX)),
                );
        }
        invocation
    }

    fn price(
        &self,
        stack: &[BudgetRef<'_>],
        charge: &Charge<'_>,
    ) -> Result<Option<Price>, BudgetError> {
        let needs = stack
            .iter()
            .map(|r| self.spec(r.budget))
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .any(|s| s.unit == Unit::Cost);
        let price = charge.model.and_then(|m| self.inner.prices.get(m));
        if needs && price.is_none() {
            return Err(BudgetError::UnknownModel(
                charge.model.unwrap_or_default().to_owned(),
            ));
        }
        Ok(price)
    }

    async fn reserve_inner(
        &self,
        stack: &[BudgetRef<'_>],
        charge: &Charge<'_>,
    ) -> Result<ReservationRecord, BudgetError> {
        if stack.is_empty() || stack.len() > MAX_STACK {
            return Err(BudgetError::StackTooDeep {
                got: stack.len(),
                max: MAX_STACK,
            });
        }
        let price = self.price(stack, charge)?;
        let cost = price.map_or(0, |p| p.cost(&charge.usage));
        let mut parts: Vec<(&BudgetSpec, &str, u64)> = Vec::with_capacity(stack.len());
        for r in stack {
            let spec = self.spec(r.budget)?;
            if parts
                .iter()
                .any(|(s, k, _)| s.name == spec.name && *k == r.key)
            {
                continue;
            }
            parts.push((
                spec,
                r.key,
                spec.unit.amount(&charge.usage, cost).min(MAX_EXACT),
            ));
        }
        let number = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let id = ReservationRecord::format_id(self.inner.nonce, number);
        let now_ms = self.now_ms();
        let deadline = now_ms.saturating_add(self.inner.ttl_ms);
        let reply = self
            .run(self.invocation("reserve", &id, deadline, &parts, now_ms))
            .await?;
        match reply.as_slice() {
            [1, ..] => Ok(ReservationRecord {
                nonce: self.inner.nonce,
                id: number,
                parts: parts
                    .iter()
                    .map(|(spec, key, amount)| PartRecord {
                        budget: spec.name.clone(),
                        key: (*key).to_owned(),
                        amount: *amount,
                    })
                    .collect(),
                price,
                estimate: charge.usage,
                model: charge.model.map(str::to_owned),
                expires_at_unix_ms: deadline,
            }),
            [0, index, limit, used] => {
                let (spec, key, amount) = usize::try_from(*index - 1)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .ok_or_else(|| bad_reply(&reply))?;
                let limit = u64::try_from(*limit).unwrap_or(0);
                let used = u64::try_from(*used).unwrap_or(0);
                let (_, end) = spec.period.window(now_ms.saturating_mul(1_000_000));
                Err(BudgetExceeded {
                    budget: spec.name.clone(),
                    key: (*key).to_owned(),
                    unit: spec.unit,
                    limit,
                    used,
                    requested: *amount,
                    remaining: limit.saturating_sub(used),
                    resets_in: (end != u64::MAX).then(|| {
                        Duration::from_nanos(end.saturating_sub(now_ms.saturating_mul(1_000_000)))
                    }),
                }
                .into())
            }
            _ => Err(bad_reply(&reply)),
        }
    }

    async fn finish(
        &self,
        op: &str,
        record: &ReservationRecord,
        actual: Option<Usage>,
    ) -> Result<Vec<i64>, BudgetError> {
        let cost = match (actual, record.price) {
            (Some(usage), Some(price)) => price.cost(&usage),
            _ => 0,
        };
        let mut parts = Vec::with_capacity(record.parts.len());
        for part in &record.parts {
            let spec = self.spec(&part.budget)?;
            let amount = actual.map_or(0, |usage| spec.unit.amount(&usage, cost).min(MAX_EXACT));
            parts.push((spec, part.key.as_str(), amount));
        }
        let now_ms = self.now_ms();
        let marker = SETTLED_MARKER_MS.max(self.inner.ttl_ms.saturating_mul(2));
        self.run(self.invocation(op, &record.id(), marker, &parts, now_ms))
            .await
    }

    async fn snapshot_inner(&self, budget: BudgetRef<'_>) -> Result<BudgetSnapshot, BudgetError> {
        let spec = self.spec(budget.budget)?;
        let key = self.budget_key(budget.budget, budget.key);
        let mut connection = self.inner.connection.clone();
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(&["w", "s", "r", "c", "cu"])
            .query_async(&mut connection)
            .await
            .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
        let number = |i: usize| {
            values
                .get(i)
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<u64>().ok())
        };
        let now = self.now_ms().saturating_mul(1_000_000);
        let (window, end) = spec.period.window(now);
        let current = number(0) == Some(window);
        let spent = if current { number(1).unwrap_or(0) } else { 0 };
        let reserved = number(2).unwrap_or(0);
        let mut limit = spec.limit;
        if let (Some(ceiling), Some(until)) = (number(3), number(4))
            && now / 1_000_000 < until
        {
            limit = limit.min(ceiling);
        }
        Ok(BudgetSnapshot {
            budget: spec.name.clone(),
            key: budget.key.to_owned(),
            unit: spec.unit,
            period: spec.period,
            limit,
            soft_limit: spec.soft_limit,
            spent,
            reserved,
            remaining: limit.saturating_sub(spent.saturating_add(reserved)),
            resets_in: (end != u64::MAX).then(|| Duration::from_nanos(end.saturating_sub(now))),
        })
    }
}

fn bad_reply(reply: &[i64]) -> BudgetError {
    tracing::error!(?reply, "unexpected reply from the budget script");
    BudgetError::Unavailable(format!("unexpected reply from redis: {reply:?}"))
}

impl BudgetBackend for RedisBudgets {
    fn reserve<'a>(
        &'a self,
        stack: &'a [BudgetRef<'a>],
        charge: &'a Charge<'a>,
    ) -> BudgetFuture<'a, ReservationRecord> {
        Box::pin(self.reserve_inner(stack, charge))
    }

    fn settle<'a>(
        &'a self,
        record: &'a ReservationRecord,
        actual: Usage,
    ) -> BudgetFuture<'a, Settlement> {
        Box::pin(async move {
            let reply = self.finish("settle", record, Some(actual)).await?;
            let cost = record.price.map_or(0, |p| p.cost(&actual));
            match reply.as_slice() {
                [2] => Ok(Settlement {
                    expired: false,
                    overspent: false,
                    cost: 0,
                    replayed: true,
                }),
                [held, overspent] => Ok(Settlement {
                    expired: *held == 0,
                    overspent: *overspent == 1,
                    cost,
                    replayed: false,
                }),
                _ => Err(bad_reply(&reply)),
            }
        })
    }

    fn release<'a>(&'a self, record: &'a ReservationRecord) -> BudgetFuture<'a, ()> {
        Box::pin(async move {
            self.finish("release", record, None).await?;
            Ok(())
        })
    }

    fn snapshot<'a>(&'a self, budget: BudgetRef<'a>) -> BudgetFuture<'a, BudgetSnapshot> {
        Box::pin(self.snapshot_inner(budget))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

impl fmt::Debug for RedisBudgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgets")
            .field("prefix", &self.inner.prefix)
            .field("budgets", &self.inner.specs.len())
            .finish()
    }
}

/// Builds a [`RedisBudgets`]; see [`RedisBudgets::builder`].
#[must_use]
pub struct RedisBudgetsBuilder {
    prefix: String,
    specs: Vec<BudgetSpec>,
    prices: PriceTable,
    ttl: Duration,
    timeout: Duration,
    now: Option<NowFn>,
}

impl RedisBudgetsBuilder {
    /// The prefix (and hash tag) of every key (default `bulwark:budget`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Defines a budget.
    pub fn budget(mut self, spec: BudgetSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// The prices cost budgets use.
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// How long a reservation may stay unsettled (default 10 minutes).
    pub fn reservation_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The longest one script may wait for Redis (default 500 ms); then
    /// [`BudgetError::Unavailable`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Places windows and deadlines by `clock`, whose origin is Unix time `unix_origin`
    /// (tests drive Redis and a local ledger with one manual clock); default: the system clock.
    pub fn clock(mut self, clock: impl Clock, unix_origin: Duration) -> Self {
        let origin = duration_to_nanos(unix_origin);
        self.now = Some(Arc::new(move || origin.saturating_add(clock.now_nanos())));
        self
    }

    /// Connects to the Redis at `url` with a reconnecting connection.
    pub async fn connect(self, url: &str) -> Result<RedisBudgets, RedisSetupError> {
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
    pub fn build(self, connection: ConnectionManager) -> Result<RedisBudgets, RedisSetupError> {
        let mut specs = HashMap::new();
        for spec in self.specs {
            spec.validate()?;
            if spec.limit >= MAX_EXACT {
                return Err(ConfigError::LimitTooLarge {
                    budget: spec.name,
                    limit: spec.limit,
                    max: MAX_EXACT - 1,
                }
                .into());
            }
            if specs.contains_key(&spec.name) {
                return Err(ConfigError::Duplicate(spec.name).into());
            }
            specs.insert(spec.name.clone(), spec);
        }
        let now = self.now.unwrap_or_else(|| {
            Arc::new(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, duration_to_nanos)
            })
        });
        Ok(RedisBudgets {
            inner: Arc::new(Inner {
                connection,
                script: redis::Script::new(SCRIPT),
                prefix: self.prefix,
                specs,
                prices: self.prices,
                ttl_ms: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
                timeout: self.timeout,
                now,
                nonce: fastrand::u64(..),
                next: AtomicU64::new(0),
            }),
        })
    }
}

impl fmt::Debug for RedisBudgetsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgetsBuilder")
            .field("prefix", &self.prefix)
            .field("budgets", &self.specs)
            .finish()
    }
}
