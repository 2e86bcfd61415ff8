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

/// An environment variable `scripts/test.sh` sets (a tool's path): `None` with a message when
/// unset, a panic when `CI=true`.
pub fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if in_ci() => panic!("{name} is not set but CI=true: scripts/test.sh must provide it"),
        _ => {
            eprintln!(
                "SKIPPED: {name} is not set (run through scripts/test.sh to enable this test)"
            );
            None
        }
    }
}

/// A key prefix no other test run uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("bulwark-test:{test}:{}:{nanos}", std::process::id())
}

/// The PostgreSQL the suite talks to: `BULWARK_POSTGRES_URL`, default the local server.
pub fn postgres_url() -> String {
    std::env::var("BULWARK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[cfg(feature = "postgres")]
/// Drops test schemas made more than an hour ago (their name ends in the creation time), so
/// that runs do not pile schemas up in the shared database. Younger ones may belong to a test
/// running now and are left alone; a sweep that races another one ignores the error.
async fn sweep_old_schemas(client: &tokio_postgres::Client, now_nanos: u128) {
    const HOUR_NANOS: u128 = 3_600_000_000_000;
    let Ok(rows) = client
        .query(
            r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bt\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .rsplit('_')
            .next()
            .and_then(|nanos| nanos.parse::<u128>().ok());
        if created.is_some_and(|created| now_nanos.saturating_sub(created) > HOUR_NANOS) {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await;
        }
    }
}

/// Creates a fresh schema and returns a URL whose connections use it, so each test sees
/// empty tables and its own migrations. `None` (or a panic in CI) when PostgreSQL is down.
#[cfg(feature = "postgres")]
pub async fn fresh_postgres_schema(test: &str) -> Option<String> {
    let base = postgres_url();
    let (client, connection) = match tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(error) => return unavailable("postgresql", error),
    };
    tokio::spawn(connection);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    sweep_old_schemas(&client, nanos).await;
    // PostgreSQL cuts identifiers at 63 bytes: keep the unique part whole, the name short.
    let short: String = test.chars().take(24).collect();
    let schema = format!("bt_{short}_{}_{nanos}", std::process::id());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!(
        "{base}{separator}options=-c%20search_path%3D{schema}"
    ))
}
