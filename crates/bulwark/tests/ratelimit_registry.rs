//! The registry of named limiters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bulwark::ratelimit::{
    ConfigError, Decision, RateLimitConfig, RateLimiterRegistry, RegistryError,
};

#[test]
fn one_name_is_one_bucket_and_the_first_config_wins() {
    let registry = RateLimiterRegistry::new();
    let a = registry
        .get_or_create("tools", RateLimitConfig::per_minute(3))
        .unwrap();
    let b = registry
        .get_or_create("tools", RateLimitConfig::per_minute(50))
        .unwrap();
    assert_eq!(b.config().max_requests, 3);
    assert!(a.try_acquire(3).unwrap());
    assert!(!b.try_acquire(1).unwrap());
    assert!(registry.get("tools").is_some());
    assert!(registry.remove("tools"));
    assert!(registry.get("tools").is_none());
}

#[test]
fn listing_shows_config_and_tokens_available_now() {
    let registry = RateLimiterRegistry::new();
    let global = registry
        .get_or_create(
            "openai",
            RateLimitConfig::new(10, Duration::from_secs(60), 5),
        )
        .unwrap();
    let keyed = registry
        .get_or_create_keyed("per_user", RateLimitConfig::per_second(1))
        .unwrap();
    global.try_acquire(4).unwrap();
    keyed.try_acquire(&"u1".to_string(), 1).unwrap();
    keyed.try_acquire(&"u2".to_string(), 1).unwrap();
    let list = registry.list();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].name.as_str(), list[0].kind), ("openai", "global"));
    assert_eq!(list[0].capacity, 15);
    assert_eq!(list[0].available, Some(11));
    assert_eq!(
        (list[1].name.as_str(), list[1].tracked_keys),
        ("per_user", Some(2))
    );
    let json = serde_json::to_value(&list[0]).unwrap();
    assert_eq!(json["config"]["time_window"], "1m");
    assert_eq!(json["available"], 11);
}

#[test]
fn a_name_cannot_change_kind_and_bad_configs_are_refused() {
    let registry = RateLimiterRegistry::new();
    registry
        .get_or_create("x", RateLimitConfig::per_second(1))
        .unwrap();
    assert!(matches!(
        registry.get_or_create_keyed("x", RateLimitConfig::per_second(1)),
        Err(RegistryError::KindMismatch {
            existing: "global",
            ..
        })
    ));
    assert_eq!(
        registry
            .get_or_create("y", RateLimitConfig::per_second(0))
            .unwrap_err(),
        RegistryError::Config(ConfigError::ZeroRequests)
    );
    assert!(registry.list().iter().all(|info| info.name != "y"));
}

#[test]
fn a_registry_observer_sees_every_limiter_it_created() {
    let decisions = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&decisions);
    let registry = RateLimiterRegistry::with_observer(Arc::new(move |_: &Decision<'_>| {
        counter.fetch_add(1, Ordering::Relaxed);
    }));
    registry
        .get_or_create("a", RateLimitConfig::per_second(5))
        .unwrap()
        .try_acquire(1)
        .unwrap();
    registry
        .get_or_create_keyed("b", RateLimitConfig::per_second(5))
        .unwrap()
        .try_acquire(&"k".into(), 1)
        .unwrap();
    assert_eq!(decisions.load(Ordering::Relaxed), 2);
}
