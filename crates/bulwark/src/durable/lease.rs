//! Leases: which executor (replica) may drive a run, for several replicas on one store.
//!
//! An executor built with [`ExecutorBuilder::leases`](super::ExecutorBuilder::leases) takes
//! the run's lease before it drives, starts or cancels it, renews it every third of its time
//! to live while the run runs, and releases it when the run stops. A lease another owner holds
//! and has not let expire refuses the request ([`DurableError::LeasedElsewhere`], naming the
//! owner); an expired one is taken over. A renewal that fails stops the run without writing
//! ([`DurableError::LeaseLost`]). Leases decide who *should* run; the fenced checkpoint
//! saves stay the guarantee that two writers cannot fork a history.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::error::DurableError;

/// Whether a lease was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Acquired {
    /// Held by the caller now (it was free, expired, or already the caller's).
    Held,
    /// Held by `owner`, unexpired.
    Busy {
        /// Who holds it.
        owner: String,
    },
}

/// A lease failure of the backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("lease store: {0}")]
pub struct LeaseError(pub String);

/// Where leases live (PostgreSQL: [`PostgresLeases`]). Expiry is judged by the store's own
/// clock, the one every replica shares.
#[async_trait]
pub trait LeaseStore: Send + Sync + fmt::Debug + 'static {
    /// Takes `run_id`'s lease for `owner` until `ttl` from now, unless another owner holds it
    /// unexpired.
    async fn acquire(
        &self,
        run_id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Acquired, LeaseError>;
    /// Extends `owner`'s lease to `ttl` from now; `false` when `owner` no longer holds it.
    async fn renew(&self, run_id: &str, owner: &str, ttl: Duration) -> Result<bool, LeaseError>;
    /// Gives `owner`'s lease up (nothing when `owner` does not hold it).
    async fn release(&self, run_id: &str, owner: &str) -> Result<(), LeaseError>;
}

/// An executor's lease settings.
#[derive(Clone, Debug)]
pub(crate) struct Leases {
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) owner: String,
    pub(crate) ttl: Duration,
}

impl Leases {
    pub(crate) async fn acquire(&self, run_id: &str) -> Result<(), DurableError> {
        match self.store.acquire(run_id, &self.owner, self.ttl).await {
            Ok(Acquired::Held) => Ok(()),
            Ok(Acquired::Busy { owner }) => Err(DurableError::LeasedElsewhere {
                run_id: run_id.to_owned(),
                owner,
            }),
            Err(error) => Err(DurableError::Lease(error)),
        }
    }

    pub(crate) async fn release(&self, run_id: &str) {
        if let Err(error) = self.store.release(run_id, &self.owner).await {
            // It expires by itself; another replica waits at most its time to live.
            tracing::warn!(run_id, %error, "lease not released");
        }
    }
}

#[cfg(feature = "postgres")]
pub use postgres::PostgresLeases;

#[cfg(feature = "postgres")]
mod postgres {
    use std::time::Duration;

    use async_trait::async_trait;
    use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
    use tokio_postgres::NoTls;

    use super::{Acquired, LeaseError, LeaseStore};

    /// Leases in a PostgreSQL table (`bulwark_durable_leases`: run id, owner, expiry), judged
    /// by the server's `now()`. Each call is one statement, atomic on its own.
    #[derive(Clone)]
    pub struct PostgresLeases {
        pool: Pool,
    }

    impl std::fmt::Debug for PostgresLeases {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PostgresLeases").finish_non_exhaustive()
        }
    }

    fn backend(error: impl std::fmt::Display) -> LeaseError {
        LeaseError(error.to_string())
    }

    fn millis(ttl: Duration) -> f64 {
        ttl.as_secs_f64() * 1000.0
    }

    impl PostgresLeases {
        /// Connects to `url` and creates the table when it is missing.
        pub async fn connect(url: &str) -> Result<Self, LeaseError> {
            let mut config = deadpool_postgres::Config::new();
            config.url = Some(url.to_owned());
            config.manager = Some(ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            });
            let mut pool = deadpool_postgres::PoolConfig::new(4);
            pool.timeouts.wait = Some(Duration::from_secs(5));
            pool.timeouts.create = Some(Duration::from_secs(5));
            config.pool = Some(pool);
            let pool = config
                .create_pool(Some(Runtime::Tokio1), NoTls)
                .map_err(backend)?;
            let leases = Self { pool };
            leases
                .client()
                .await?
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS bulwark_durable_leases (
                        run_id     TEXT PRIMARY KEY,
                        owner      TEXT NOT NULL,
                        expires_at TIMESTAMPTZ NOT NULL
                    )",
                )
                .await
                .map_err(backend)?;
            Ok(leases)
        }

        async fn client(&self) -> Result<deadpool_postgres::Object, LeaseError> {
            self.pool.get().await.map_err(backend)
        }
    }

    #[async_trait]
    impl LeaseStore for PostgresLeases {
        async fn acquire(
            &self,
            run_id: &str,
            owner: &str,
            ttl: Duration,
        ) -> Result<Acquired, LeaseError> {
            let client = self.client().await?;
            let taken = client
                .query_opt(
                    "INSERT INTO bulwark_durable_leases AS l (run_id, owner, expires_at)
                     VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond')
                     ON CONFLICT (run_id) DO UPDATE
                        SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
                        WHERE l.owner = EXCLUDED.owner OR l.expires_at < now()
                     RETURNING owner",
                    &[&run_id, &owner, &millis(ttl)],
                )
                .await
                .map_err(backend)?;
            if taken.is_some() {
                return Ok(Acquired::Held);
            }
            let holder = client
                .query_opt(
                    "SELECT owner FROM bulwark_durable_leases WHERE run_id = $1",
                    &[&run_id],
                )
                .await
                .map_err(backend)?;
            Ok(Acquired::Busy {
                owner: holder
                    .map_or_else(|| "an owner that just let go".to_owned(), |row| row.get(0)),
            })
        }

        async fn renew(
            &self,
            run_id: &str,
            owner: &str,
            ttl: Duration,
        ) -> Result<bool, LeaseError> {
            let rows = self
                .client()
                .await?
                .execute(
                    "UPDATE bulwark_durable_leases
                        SET expires_at = now() + $3::float8 * interval '1 millisecond'
                      WHERE run_id = $1 AND owner = $2 AND expires_at >= now()",
                    &[&run_id, &owner, &millis(ttl)],
                )
                .await
                .map_err(backend)?;
            Ok(rows == 1)
        }

        async fn release(&self, run_id: &str, owner: &str) -> Result<(), LeaseError> {
            self.client()
                .await?
                .execute(
                    "DELETE FROM bulwark_durable_leases WHERE run_id = $1 AND owner = $2",
                    &[&run_id, &owner],
                )
                .await
                .map_err(backend)?;
            Ok(())
        }
    }
}
