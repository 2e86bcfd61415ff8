//! Shared by the integration tests that need real servers.
#![allow(dead_code, unreachable_pub)]

use std::time::{SystemTime, UNIX_EPOCH};

/// The Redis the suite talks to: `BULWARK_REDIS_URL`, default the local server.
pub fn redis_url() -> String {
    std::env::var("BULWARK_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether `CI=true`: then an unreachable service fails the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports an unreachable service: panics in CI, prints and returns `None` elsewhere.
pub fn unavailable<T>(service: &str, error: impl std::fmt::Display) -> Option<T> {
    if in_ci() {
        panic!("{service} is unreachable in CI: {error}");
    }
    eprintln!("SKIPPED: {service} is unreachable ({error}); CI=true makes this a failure");
    None
}

/// A key prefix no other test run uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("bulwark-test:{test}:{}:{nanos}", std::process::id())
}
