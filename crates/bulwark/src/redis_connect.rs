//! The reconnecting Redis connection the Redis backends (limits, budgets) share the setup of.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Why the first connection failed.
pub(crate) enum ConnectError {
    Redis(redis::RedisError),
    Timeout(Duration),
}

/// Connects to `url` with a reconnecting manager whose connection and response timeouts are
/// `timeout`; the first connection may take `max(timeout, 1s)`.
pub(crate) async fn connect(
    url: &str,
    timeout: Duration,
) -> Result<ConnectionManager, ConnectError> {
    let client = redis::Client::open(url).map_err(ConnectError::Redis)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    let first = timeout.max(Duration::from_secs(1));
    tokio::time::timeout(first, ConnectionManager::new_with_config(client, config))
        .await
        .map_err(|_| ConnectError::Timeout(first))?
        .map_err(ConnectError::Redis)
}
