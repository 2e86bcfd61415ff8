//! Breakers by name, one per protected dependency, and the process-wide default registry.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use super::circuit_breaker::CircuitBreaker;
use super::config::CircuitBreakerConfig;
use super::error::ConfigError;
use super::listener::BreakerListener;
use super::snapshot::BreakerSnapshot;
use crate::clock::{Clock, MonotonicClock};

/// Breakers by name: the same name always gives the same breaker.
///
/// [`BreakerRegistry::global`] is the process-wide registry (the original system's
/// `circuit_breaker_registry`), used by the `#[circuit_breaker]` macro and listed by the HTTP
/// API. Listeners added to a registry are attached to every breaker in it, present and future.
///
/// ```
/// use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig};
///
/// let registry = BreakerRegistry::new();
/// let a = registry.get_or_create("payments", CircuitBreakerConfig::default())?;
/// let b = registry.get_or_create("payments", CircuitBreakerConfig::default())?;
/// a.force_open();
/// assert!(b.state().is_open());
/// assert_eq!(registry.snapshot()[0].name, "payments");
/// # Ok::<(), bulwark::breaker::ConfigError>(())
/// ```
pub struct BreakerRegistry<C: Clock = MonotonicClock> {
    breakers: RwLock<BTreeMap<Arc<str>, CircuitBreaker<C>>>,
    listeners: RwLock<Vec<Arc<dyn BreakerListener>>>,
    clock: C,
}

impl BreakerRegistry<MonotonicClock> {
    /// An empty registry on the real clock.
    pub fn new() -> Self {
        Self::with_clock(MonotonicClock::new())
    }

    /// The process-wide registry.
    pub fn global() -> &'static Self {
        static GLOBAL: OnceLock<BreakerRegistry> = OnceLock::new();
        GLOBAL.get_or_init(Self::new)
    }
}

impl Default for BreakerRegistry<MonotonicClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> BreakerRegistry<C> {
    /// An empty registry whose breakers read `clock`.
    pub fn with_clock(clock: C) -> Self {
        Self {
            breakers: RwLock::new(BTreeMap::new()),
            listeners: RwLock::new(Vec::new()),
            clock,
        }
    }

    /// The breaker named `name`, created with `config` if there is none yet. An existing
    /// breaker keeps the config it was created with.
    pub fn get_or_create(
        &self,
        name: &str,
        config: CircuitBreakerConfig,
    ) -> Result<CircuitBreaker<C>, ConfigError> {
        if let Some(existing) = self.get(name) {
            return Ok(existing);
        }
        config.validate()?;
        Ok(self.insert_validated(name, config))
    }

    fn insert_validated(&self, name: &str, config: CircuitBreakerConfig) -> CircuitBreaker<C> {
        let mut breakers = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = breakers.get(name) {
            return existing.clone();
        }
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let name: Arc<str> = Arc::from(name);
        let breaker =
            CircuitBreaker::from_parts(Arc::clone(&name), config, self.clock.clone(), listeners);
        breakers.insert(name, breaker.clone());
        breaker
    }

    /// For the `#[circuit_breaker]` macro, whose config is validated at compile time: a config
    /// that is somehow invalid is logged and replaced by the default rather than failing.
    #[doc(hidden)]
    pub fn __get_or_create_checked(
        &self,
        name: &str,
        config: CircuitBreakerConfig,
    ) -> CircuitBreaker<C> {
        if let Some(existing) = self.get(name) {
            return existing;
        }
        let config = match config.validate() {
            Ok(()) => config,
            Err(error) => {
                tracing::error!(breaker = name, %error, "invalid breaker config; using the default");
                CircuitBreakerConfig::default()
            }
        };
        self.insert_validated(name, config)
    }

    /// The breaker named `name`, if any.
    pub fn get(&self, name: &str) -> Option<CircuitBreaker<C>> {
        self.breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Removes the breaker named `name` from the registry (handles on it keep working).
    pub fn remove(&self, name: &str) -> Option<CircuitBreaker<C>> {
        self.breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
    }

    /// Every breaker, sorted by name.
    pub fn breakers(&self) -> Vec<CircuitBreaker<C>> {
        self.breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Every breaker's listing, sorted by name.
    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        self.breakers()
            .iter()
            .map(CircuitBreaker::snapshot)
            .collect()
    }

    /// Number of breakers.
    pub fn len(&self) -> usize {
        self.breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the registry holds no breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Attaches `listener` to every breaker in the registry and to every breaker created later.
    pub fn add_listener(&self, listener: Arc<dyn BreakerListener>) {
        // Hold the map's write lock so no breaker is created between the two steps.
        let breakers = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&listener));
        for breaker in breakers.values() {
            breaker.add_listener(Arc::clone(&listener));
        }
    }

    /// Resets every breaker to CLOSED.
    pub fn reset_all(&self) {
        for breaker in self.breakers() {
            breaker.reset();
        }
    }
}

impl<C: Clock> fmt::Debug for BreakerRegistry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self
            .breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_struct("BreakerRegistry")
            .field("breakers", &names)
            .field("clock", &self.clock)
            .finish()
    }
}
