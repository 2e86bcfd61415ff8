//! A fresh PostgreSQL schema per test, for the server's tests that share the suite's database.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

/// Creates a schema no other test uses and returns a URL whose connections use it, with a
/// client already on it; `None` when PostgreSQL is down (a panic under `CI=true`). Names
/// start with `bt_` and end in the creation time, so the library's PostgreSQL tests sweep
/// them once they are an hour old.
pub async fn fresh_schema(test: &str) -> Option<(String, tokio_postgres::Client)> {
    let base = std::env::var("BULWARK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (client, connection) = match tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL is unreachable in CI: {error}")
        }
        Err(error) => {
            eprintln!("SKIPPED: PostgreSQL is unreachable ({error}); CI=true makes this a failure");
            return None;
        }
    };
    tokio::spawn(connection);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("bt_{test}_{}_{nanos}", std::process::id());
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}"
        ))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    Some((url, client))
}
