//! One bulkhead per key (tenant, agent), with memory bounded by the keys in use.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use super::bulkhead::{Bulkhead, BulkheadPermit};
use super::config::{BulkheadConfig, ConfigError};
use super::error::BulkheadRejected;
use super::observer::BulkheadObserver;
use crate::clock::{Clock, MonotonicClock};
use crate::sync::lock;

/// Below this many keys the map is never swept.
const MIN_SWEEP_LEN: usize = 64;

/// A bulkhead per key, each with the same config; clones share every key's slots.
///
/// **Memory** stays bounded by the keys in use, as in the keyed rate limiter: a bulkhead with
/// no call in flight and none queued carries no information (a fresh one is the same), so when
/// the map has doubled since its last sweep, inserting a new key first drops every idle
/// bulkhead. A permit keeps its bulkhead alive, so an evicted key's running calls still count
/// against the slots they took; only a key that is idle is ever dropped.
///
/// ```
/// use bulwark::bulkhead::{BulkheadConfig, KeyedBulkhead};
///
/// let bulkheads = KeyedBulkhead::<&str>::new(BulkheadConfig::new(1))?;
/// let alice = bulkheads.try_acquire(&"alice")?;
/// assert!(bulkheads.try_acquire(&"alice").is_err());
/// assert!(bulkheads.try_acquire(&"bob").is_ok()); // bob has his own slots
/// drop(alice);
/// assert!(bulkheads.try_acquire(&"alice").is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedBulkhead<K, C: Clock = MonotonicClock> {
    inner: Arc<Inner<K, C>>,
}

struct Inner<K, C: Clock> {
    name: Arc<str>,
    config: BulkheadConfig,
    clock: C,
    observers: Vec<Arc<dyn BulkheadObserver>>,
    map: Mutex<Map<K, C>>,
}

struct Map<K, C: Clock> {
    bulkheads: HashMap<K, Bulkhead<C>>,
    sweep_at: usize,
}

impl<K, C: Clock> Clone for KeyedBulkhead<K, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Hash + Eq + Clone + Send + 'static> KeyedBulkhead<K, MonotonicClock> {
    /// A bulkhead per key with `config`, named `"bulkhead"`, on the real clock.
    pub fn new(config: BulkheadConfig) -> Result<Self, ConfigError> {
        Self::with_parts("bulkhead", config, MonotonicClock::new(), Vec::new())
    }
}

impl<K: Hash + Eq + Clone + Send + 'static, C: Clock> KeyedBulkhead<K, C> {
    /// A bulkhead per key, every one named `name`, reading `clock`, reporting to `observers`.
    pub fn with_parts(
        name: impl Into<Arc<str>>,
        config: BulkheadConfig,
        clock: C,
        observers: Vec<Arc<dyn BulkheadObserver>>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.into(),
                config,
                clock,
                observers,
                map: Mutex::new(Map {
                    bulkheads: HashMap::new(),
                    sweep_at: MIN_SWEEP_LEN,
                }),
            }),
        })
    }

    /// The bulkhead of `key`, made on first use.
    pub fn bulkhead(&self, key: &K) -> Bulkhead<C> {
        let mut map = lock(&self.inner.map);
        if let Some(existing) = map.bulkheads.get(key) {
            return existing.clone();
        }
        if map.bulkheads.len() >= map.sweep_at {
            map.bulkheads.retain(|_, bulkhead| !bulkhead.is_idle());
            map.sweep_at = (map.bulkheads.len() * 2).max(MIN_SWEEP_LEN);
        }
        let bulkhead = Bulkhead::from_parts(
            Arc::clone(&self.inner.name),
            self.inner.config,
            self.inner.clock.clone(),
            self.inner.observers.clone(),
        );
        map.bulkheads.insert(key.clone(), bulkhead.clone());
        bulkhead
    }

    /// Takes a slot of `key`'s bulkhead if one is free now.
    pub fn try_acquire(&self, key: &K) -> Result<BulkheadPermit, BulkheadRejected> {
        self.bulkhead(key).try_acquire()
    }

    /// Takes a slot of `key`'s bulkhead, queueing as its config allows.
    pub async fn acquire(&self, key: &K) -> Result<BulkheadPermit, BulkheadRejected> {
        self.bulkhead(key).acquire().await
    }

    /// Keys held now (idle ones included until the next sweep).
    pub fn len(&self) -> usize {
        lock(&self.inner.map).bulkheads.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The config every key's bulkhead enforces.
    pub fn config(&self) -> &BulkheadConfig {
        &self.inner.config
    }
}

impl<K, C: Clock> fmt::Debug for KeyedBulkhead<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkhead")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
