//! One bucket per key, with memory bounded by the keys that are active.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::sync::{read, write};

use hashbrown::HashTable;

use super::config::RateLimitConfig;
use super::error::{ConfigError, ExceedsCapacity, RateLimitError, RateLimited};
use super::gcra::Gcra;
use super::limiter::{Admitted, limited, wait_until_admitted};
use super::observer::{Decision, RateLimitObserver};
use crate::clock::{Clock, MonotonicClock};

/// Below this many keys a shard is never swept.
const MIN_SWEEP_LEN: usize = 64;

/// The most per-key overrides one keyed limiter holds. Overrides are configuration, not
/// traffic, so they are never evicted; past this cap [`KeyedRateLimiter::set_key_config`]
/// refuses a new key with [`ConfigError::TooManyOverrides`] (replacing an existing key's
/// override still works), so that overrides set from untrusted input cannot grow memory
/// without bound.
pub const MAX_KEY_OVERRIDES: usize = 10_000;

/// Shards are chosen by hash bits 48..56, which the table itself does not use.
const MAX_SHARDS: usize = 256;

/// A rate limiter with one bucket per key (per user, endpoint, provider...).
///
/// Every key gets the default config unless a per-key override is set with
/// [`set_key_config`](Self::set_key_config). Clones share all buckets.
///
/// **Memory** stays bounded by the keys seen recently, without the caller pruning: a bucket
/// that has refilled completely carries no information (a fresh bucket is full too), so when a
/// shard has doubled in size since its last sweep, inserting a new key first drops every full
/// bucket in that shard. The sweep is amortised O(1) per insertion, and what stays is at most
/// twice the keys that were active (not yet refilled) at the last sweep, per shard.
///
/// ```
/// use bulwark::clock::ManualClock;
/// use bulwark::ratelimit::{KeyedRateLimiter, RateLimitConfig};
/// use std::time::Duration;
///
/// let limiter = KeyedRateLimiter::<String, _>::builder(RateLimitConfig::per_second(2))
///     .clock(ManualClock::new())
///     .build()?;
/// assert!(limiter.try_acquire(&"alice".to_string(), 2)?);
/// assert!(!limiter.try_acquire(&"alice".to_string(), 1)?);
/// assert!(limiter.try_acquire(&"bob".to_string(), 1)?); // bob has his own bucket
/// # Ok::<(), bulwark::ratelimit::RateLimitError>(())
/// ```
pub struct KeyedRateLimiter<K, C: Clock = MonotonicClock> {
    inner: Arc<Inner<K, C>>,
}

struct Inner<K, C> {
    default: Gcra,
    config: RateLimitConfig,
    shards: Box<[Shard<K>]>,
    hasher: foldhash::fast::RandomState,
    overrides: RwLock<hashbrown::HashMap<K, (Gcra, RateLimitConfig)>>,
    has_overrides: AtomicBool,
    clock: C,
    name: Option<Arc<str>>,
    observer: Option<Arc<dyn RateLimitObserver>>,
}

struct Shard<K> {
    buckets: RwLock<HashTable<(K, AtomicU64)>>,
    /// Sweep when the shard reaches this many keys.
    sweep_at: AtomicUsize,
}

impl<K, C: Clock> Clone for KeyedRateLimiter<K, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K> KeyedRateLimiter<K, MonotonicClock>
where
    K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
{
    /// A keyed limiter applying `config` to every key, on the real clock.
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder to set a name, a clock or an observer.
    pub fn builder(config: RateLimitConfig) -> KeyedRateLimiterBuilder<K, MonotonicClock> {
        KeyedRateLimiterBuilder {
            config,
            clock: MonotonicClock::new(),
            name: None,
            observer: None,
            shards: None,
            _key: std::marker::PhantomData,
        }
    }
}

impl<K, C> KeyedRateLimiter<K, C>
where
    K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
    C: Clock,
{
    /// Takes `tokens` from `key`'s bucket if it holds them now; never waits.
    #[inline]
    pub fn try_acquire(&self, key: &K, tokens: u32) -> Result<bool, ExceedsCapacity> {
        match self.decide(key, tokens) {
            Ok(_) => Ok(true),
            Err(RateLimitError::Limited(_)) => Ok(false),
            Err(RateLimitError::ExceedsCapacity(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// Takes `tokens` from `key`'s bucket, or says how long until it could.
    #[inline]
    pub fn check(&self, key: &K, tokens: u32) -> Result<(), RateLimitError> {
        self.decide(key, tokens).map(|_| ())
    }

    /// Like [`check`](Self::check), reporting the bucket's state after an admitted request.
    pub fn check_detailed(&self, key: &K, tokens: u32) -> Result<Admitted, RateLimitError> {
        self.decide(key, tokens)
    }

    /// Waits until `key`'s bucket holds `tokens`, at most `max_wait`; cancellation safe.
    pub async fn acquire(
        &self,
        key: &K,
        tokens: u32,
        max_wait: std::time::Duration,
    ) -> Result<(), RateLimitError> {
        wait_until_admitted(&self.inner.clock, max_wait, || self.check(key, tokens)).await
    }

    /// Whole tokens in `key`'s bucket now.
    pub fn available(&self, key: &K) -> u32 {
        let gcra = self.gcra_for(key);
        let now = self.inner.clock.now_nanos();
        let hash = self.inner.hasher.hash_one(key);
        let shard = self.shard(hash);
        let buckets = read(&shard.buckets);
        let tat = buckets
            .find(hash, |(k, _)| k == key)
            .map_or(0, |(_, tat)| tat.load(Ordering::Acquire));
        gcra.available(tat, now)
    }

    /// Gives `key` its own limit instead of the default (a premium user, a provider with a
    /// different quota). The key's bucket keeps its current state. At most
    /// [`MAX_KEY_OVERRIDES`] keys hold an override; a new key past that is refused with
    /// [`ConfigError::TooManyOverrides`] and nothing changes.
    pub fn set_key_config(&self, key: K, config: RateLimitConfig) -> Result<(), ConfigError> {
        let gcra = Gcra::new(&config)?;
        let mut overrides = write(&self.inner.overrides);
        if overrides.len() >= MAX_KEY_OVERRIDES && !overrides.contains_key(&key) {
            return Err(ConfigError::TooManyOverrides {
                max: MAX_KEY_OVERRIDES,
            });
        }
        overrides.insert(key, (gcra, config));
        self.inner.has_overrides.store(true, Ordering::Release);
        Ok(())
    }

    /// Returns `key` to the default limit; `true` if it had an override.
    pub fn remove_key_config(&self, key: &K) -> bool {
        let mut overrides = write(&self.inner.overrides);
        let removed = overrides.remove(key).is_some();
        self.inner
            .has_overrides
            .store(!overrides.is_empty(), Ordering::Release);
        removed
    }

    /// The config `key` is limited by.
    pub fn key_config(&self, key: &K) -> RateLimitConfig {
        if self.inner.has_overrides.load(Ordering::Acquire)
            && let Some((_, config)) = read(&self.inner.overrides).get(key)
        {
            return *config;
        }
        self.inner.config
    }

    /// The number of keys whose buckets are held in memory (active keys, plus full buckets not
    /// yet swept).
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| read(&shard.buckets).len())
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every full bucket now and releases the memory it held; returns how many remain.
    /// Never needed for boundedness, useful before measuring memory or after a burst of keys.
    pub fn shrink(&self) -> usize {
        let now = self.inner.clock.now_nanos();
        self.inner
            .shards
            .iter()
            .map(|shard| {
                let mut buckets = write(&shard.buckets);
                sweep(&mut buckets, &shard.sweep_at, now, &self.inner.hasher);
                buckets.len()
            })
            .sum()
    }

    /// The default config.
    pub fn config(&self) -> &RateLimitConfig {
        &self.inner.config
    }

    /// Tokens a full bucket holds under the default config.
    pub fn capacity(&self) -> u32 {
        self.inner.default.capacity()
    }

    /// The limiter's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K> {
        // shards.len() is a power of two; the top bits pick the shard so that the table,
        // which uses the low bits, still sees well-spread hashes.
        let index = (hash >> 48) as usize & (self.inner.shards.len() - 1);
        &self.inner.shards[index]
    }

    #[inline]
    fn gcra_for(&self, key: &K) -> Gcra {
        if self.inner.has_overrides.load(Ordering::Acquire)
            && let Some((gcra, _)) = read(&self.inner.overrides).get(key)
        {
            return *gcra;
        }
        self.inner.default
    }

    fn decide(&self, key: &K, tokens: u32) -> Result<Admitted, RateLimitError> {
        let gcra = self.gcra_for(key);
        let capacity = gcra.capacity();
        if tokens > capacity {
            return Err(ExceedsCapacity {
                requested: tokens,
                capacity,
            }
            .into());
        }
        let hash = self.inner.hasher.hash_one(key);
        let shard = self.shard(hash);
        let now = self.inner.clock.now_nanos();
        let result = {
            let buckets = read(&shard.buckets);
            buckets
                .find(hash, |(k, _)| k == key)
                .map(|(_, tat)| update(tat, &gcra, now, tokens))
        };
        let result = match result {
            Some(result) => result,
            None => self.insert_and_decide(shard, hash, key, &gcra, now, tokens),
        };
        let result = result
            .map(|tat| Admitted {
                remaining: gcra.available(tat, now),
                reset_after: gcra.until_full(tat, now),
                capacity,
            })
            .map_err(RateLimitError::Limited);
        if let Some(observer) = &self.inner.observer {
            notify(
                observer.as_ref(),
                self.inner.name.as_deref(),
                key,
                tokens,
                &result,
            );
        }
        result
    }

    #[cold]
    fn insert_and_decide(
        &self,
        shard: &Shard<K>,
        hash: u64,
        key: &K,
        gcra: &Gcra,
        now: u64,
        tokens: u32,
    ) -> Result<u64, RateLimited> {
        let mut buckets = write(&shard.buckets);
        if let Some((_, tat)) = buckets.find(hash, |(k, _)| k == key) {
            // Another thread inserted it between our read and write locks.
            return update(tat, gcra, now, tokens);
        }
        if buckets.len() >= shard.sweep_at.load(Ordering::Relaxed) {
            sweep(&mut buckets, &shard.sweep_at, now, &self.inner.hasher);
        }
        // A fresh bucket is full; the decision on it is the decision on state 0.
        let decision = gcra.decide(0, now, tokens);
        if let Ok(tat) = decision {
            let hasher = &self.inner.hasher;
            buckets.insert_unique(hash, (key.clone(), AtomicU64::new(tat)), |(k, _)| {
                hasher.hash_one(k)
            });
        }
        decision.map_err(|refusal| limited(refusal, tokens, gcra.capacity()))
    }
}

#[inline]
fn update(tat: &AtomicU64, gcra: &Gcra, now: u64, tokens: u32) -> Result<u64, RateLimited> {
    let mut current = tat.load(Ordering::Acquire);
    loop {
        match gcra.decide(current, now, tokens) {
            Ok(new_tat) => {
                match tat.compare_exchange_weak(
                    current,
                    new_tat,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(new_tat),
                    Err(actual) => current = actual,
                }
            }
            Err(refusal) => return Err(limited(refusal, tokens, gcra.capacity())),
        }
    }
}

/// Drops the full buckets of one shard and sets its next sweep point.
fn sweep<K: Hash>(
    buckets: &mut HashTable<(K, AtomicU64)>,
    sweep_at: &AtomicUsize,
    now: u64,
    hasher: &foldhash::fast::RandomState,
) {
    buckets.retain(|(_, tat)| *tat.get_mut() > now);
    if buckets.capacity() > 4 * buckets.len().max(MIN_SWEEP_LEN) {
        buckets.shrink_to(buckets.len(), |(k, _)| hasher.hash_one(k));
    }
    sweep_at.store((buckets.len() * 2).max(MIN_SWEEP_LEN), Ordering::Relaxed);
}

#[cold]
fn notify<K: fmt::Debug>(
    observer: &dyn RateLimitObserver,
    name: Option<&str>,
    key: &K,
    tokens: u32,
    result: &Result<Admitted, RateLimitError>,
) {
    let (allowed, available, retry_after) = match result {
        Ok(admitted) => (true, admitted.remaining, None),
        Err(RateLimitError::Limited(limited)) => {
            (false, limited.available, Some(limited.retry_after))
        }
        Err(_) => return,
    };
    observer.on_decision(&Decision {
        limiter: name,
        key: Some(key),
        requested: tokens,
        allowed,
        available,
        retry_after,
    });
}

impl<K, C> fmt::Debug for KeyedRateLimiter<K, C>
where
    K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
    C: Clock,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("keys", &self.len())
            .finish()
    }
}

/// Builds a [`KeyedRateLimiter`]; see [`KeyedRateLimiter::builder`].
#[must_use]
pub struct KeyedRateLimiterBuilder<K, C: Clock> {
    config: RateLimitConfig,
    clock: C,
    name: Option<Arc<str>>,
    observer: Option<Arc<dyn RateLimitObserver>>,
    shards: Option<usize>,
    _key: std::marker::PhantomData<fn() -> K>,
}

impl<K, C> KeyedRateLimiterBuilder<K, C>
where
    K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
    C: Clock,
{
    /// Names the limiter.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Reads time from `clock`.
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedRateLimiterBuilder<K, C2> {
        KeyedRateLimiterBuilder {
            config: self.config,
            clock,
            name: self.name,
            observer: self.observer,
            shards: self.shards,
            _key: std::marker::PhantomData,
        }
    }

    /// Attaches an observer that sees every decision with its key.
    pub fn observer(mut self, observer: Arc<dyn RateLimitObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The number of independently locked shards (rounded up to a power of two, at most 256);
    /// by default four per available CPU.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Validates the config and builds the limiter.
    pub fn build(self) -> Result<KeyedRateLimiter<K, C>, ConfigError> {
        let default = Gcra::new(&self.config)?;
        let shards = self
            .shards
            .unwrap_or_else(|| {
                4 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            })
            .clamp(1, MAX_SHARDS)
            .next_power_of_two();
        let shards = (0..shards)
            .map(|_| Shard {
                buckets: RwLock::new(HashTable::new()),
                sweep_at: AtomicUsize::new(MIN_SWEEP_LEN),
            })
            .collect();
        Ok(KeyedRateLimiter {
            inner: Arc::new(Inner {
                default,
                config: self.config,
                shards,
                hasher: foldhash::fast::RandomState::default(),
                overrides: RwLock::new(hashbrown::HashMap::new()),
                has_overrides: AtomicBool::new(false),
                clock: self.clock,
                name: self.name,
                observer: self.observer,
            }),
        })
    }
}

impl<K, C: Clock> fmt::Debug for KeyedRateLimiterBuilder<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiterBuilder")
            .field("config", &self.config)
            .field("name", &self.name)
            .field("shards", &self.shards)
            .finish()
    }
}
