//! Named limiters, created once and listed with their state.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::sync::{read, write};

use serde::Serialize;

use super::config::RateLimitConfig;
use super::error::ConfigError;
use super::keyed::KeyedRateLimiter;
use super::limiter::RateLimiter;
use super::observer::RateLimitObserver;

/// A set of named limiters, global or keyed by string, for an application to share and for
/// the HTTP API to list.
///
/// ```
/// use bulwark::ratelimit::{RateLimitConfig, RateLimiterRegistry};
///
/// let registry = RateLimiterRegistry::new();
/// let openai = registry.get_or_create("openai", RateLimitConfig::per_minute(60))?;
/// let same = registry.get_or_create("openai", RateLimitConfig::per_minute(60))?;
/// assert!(openai.try_acquire(60)?);
/// assert!(!same.try_acquire(1)?); // one bucket behind one name
/// assert_eq!(registry.list()[0].name, "openai");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct RateLimiterRegistry {
    limiters: RwLock<BTreeMap<String, Entry>>,
    observer: Option<Arc<dyn RateLimitObserver>>,
}

#[derive(Clone)]
enum Entry {
    Global(RateLimiter),
    Keyed(KeyedRateLimiter<String>),
}

/// One limiter as listed by [`RateLimiterRegistry::list`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RateLimiterInfo {
    /// The registered name.
    pub name: String,
    /// `"global"` (one bucket) or `"keyed"` (one bucket per key).
    pub kind: &'static str,
    /// The limit (the default limit for a keyed limiter).
    pub config: RateLimitConfig,
    /// Tokens a full bucket holds.
    pub capacity: u32,
    /// Tokens available now, for a global limiter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<u32>,
    /// Keys held in memory, for a keyed limiter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracked_keys: Option<usize>,
}

impl RateLimiterRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose limiters all report to `observer`.
    pub fn with_observer(observer: Arc<dyn RateLimitObserver>) -> Self {
        Self {
            limiters: RwLock::default(),
            observer: Some(observer),
        }
    }

    /// The process-wide registry (the one `#[rate_limit(name = "...")]` registers into).
    pub fn global() -> &'static Self {
        static GLOBAL: OnceLock<RateLimiterRegistry> = OnceLock::new();
        GLOBAL.get_or_init(Self::new)
    }

    /// The limiter named `name`, created with `config` if there is none yet.
    ///
    /// An existing limiter is returned as it is, even when `config` differs from the config it
    /// was created with (logged at `debug`), so that every caller shares one bucket. A name
    /// already used by a keyed limiter is an error.
    pub fn get_or_create(
        &self,
        name: &str,
        config: RateLimitConfig,
    ) -> Result<RateLimiter, RegistryError> {
        match self.get_or_insert(name, config, false)? {
            Entry::Global(limiter) => Ok(limiter),
            Entry::Keyed(_) => Err(RegistryError::KindMismatch {
                name: name.to_owned(),
                existing: "keyed",
            }),
        }
    }

    /// The keyed limiter named `name`, created with `config` as every key's default if there
    /// is none yet.
    pub fn get_or_create_keyed(
        &self,
        name: &str,
        config: RateLimitConfig,
    ) -> Result<KeyedRateLimiter<String>, RegistryError> {
        match self.get_or_insert(name, config, true)? {
            Entry::Keyed(limiter) => Ok(limiter),
            Entry::Global(_) => Err(RegistryError::KindMismatch {
                name: name.to_owned(),
                existing: "global",
            }),
        }
    }

    /// The global limiter named `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<RateLimiter> {
        match read(&self.limiters).get(name) {
            Some(Entry::Global(limiter)) => Some(limiter.clone()),
            _ => None,
        }
    }

    /// The keyed limiter named `name`, if there is one.
    pub fn get_keyed(&self, name: &str) -> Option<KeyedRateLimiter<String>> {
        match read(&self.limiters).get(name) {
            Some(Entry::Keyed(limiter)) => Some(limiter.clone()),
            _ => None,
        }
    }

    /// Forgets the limiter named `name`; handles already given out keep working.
    pub fn remove(&self, name: &str) -> bool {
        write(&self.limiters).remove(name).is_some()
    }

    /// Every limiter, sorted by name, with its state now.
    pub fn list(&self) -> Vec<RateLimiterInfo> {
        read(&self.limiters)
            .iter()
            .map(|(name, entry)| match entry {
                Entry::Global(limiter) => RateLimiterInfo {
                    name: name.clone(),
                    kind: "global",
                    config: *limiter.config(),
                    capacity: limiter.capacity(),
                    available: Some(limiter.available()),
                    tracked_keys: None,
                },
                Entry::Keyed(limiter) => RateLimiterInfo {
                    name: name.clone(),
                    kind: "keyed",
                    config: *limiter.config(),
                    capacity: limiter.capacity(),
                    available: None,
                    tracked_keys: Some(limiter.len()),
                },
            })
            .collect()
    }

    fn get_or_insert(
        &self,
        name: &str,
        config: RateLimitConfig,
        keyed: bool,
    ) -> Result<Entry, RegistryError> {
        if let Some(entry) = read(&self.limiters).get(name) {
            log_if_differs(name, entry, &config);
            return Ok(entry.clone());
        }
        let mut limiters = write(&self.limiters);
        if let Some(entry) = limiters.get(name) {
            log_if_differs(name, entry, &config);
            return Ok(entry.clone());
        }
        let entry = if keyed {
            let mut builder = KeyedRateLimiter::builder(config).name(name);
            if let Some(observer) = &self.observer {
                builder = builder.observer(Arc::clone(observer));
            }
            Entry::Keyed(builder.build()?)
        } else {
            let mut builder = RateLimiter::builder(config).name(name);
            if let Some(observer) = &self.observer {
                builder = builder.observer(Arc::clone(observer));
            }
            Entry::Global(builder.build()?)
        };
        limiters.insert(name.to_owned(), entry.clone());
        Ok(entry)
    }
}

fn log_if_differs(name: &str, entry: &Entry, config: &RateLimitConfig) {
    let existing = match entry {
        Entry::Global(limiter) => limiter.config(),
        Entry::Keyed(limiter) => limiter.config(),
    };
    if existing != config {
        tracing::debug!(limiter = name, ?existing, requested = ?config,
            "limiter already registered with another config; keeping the existing one");
    }
}

impl std::fmt::Debug for RateLimiterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiterRegistry")
            .field("limiters", &read(&self.limiters).keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a registry could not hand out a limiter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The name is taken by a limiter of the other kind.
    #[error("limiter {name:?} is already registered as a {existing} limiter")]
    KindMismatch {
        /// The name asked for.
        name: String,
        /// The kind already registered under it.
        existing: &'static str,
    },
}
