//! Checkpoints in PostgreSQL, shared by every replica.
//!
//! One row per checkpoint: the metadata as columns (for indexes) and as JSONB (for an exact
//! round trip), and the envelope bytes exactly as the filesystem store writes them, so the
//! manager verifies the SHA-256 on load the same way for both stores. A second table holds each
//! workflow's head (its newest checkpoint); a fenced save locks that row, compares, inserts and
//! moves the head in one transaction, which is what makes two writers of one workflow fail
//! with a typed conflict instead of forking its history.
//!
//! The schema is created by embedded, numbered migrations run under a transaction-scoped
//! advisory lock, so any number of processes may start at once and each migration runs once.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{CheckpointPage, CheckpointStore, ListFilter, UnreadableCheckpoint};
use crate::checkpoint::error::StoreError;
use crate::checkpoint::id::CheckpointId;
use crate::checkpoint::metadata::CheckpointMetadata;

/// The advisory lock key that serialises migrations ("bulwark" in ASCII).
const MIGRATION_LOCK: i64 = 0x62_75_6c_77_61_72_6b;

/// Numbered migrations; a number is never reused or edited once released.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r"
    CREATE TABLE bulwark_checkpoints (
        id                UUID PRIMARY KEY,
        agent_id          TEXT NOT NULL,
        workflow_id       TEXT NOT NULL,
        sequence          BIGINT NOT NULL,
        parent_id         UUID,
        created_at        TIMESTAMPTZ NOT NULL,
        uncompressed_size BIGINT NOT NULL,
        stored_size       BIGINT NOT NULL,
        sha256            TEXT NOT NULL,
        metadata          JSONB NOT NULL,
        envelope          BYTEA NOT NULL
    );
    -- latest for (agent, workflow), and a workflow's history in either order
    CREATE INDEX bulwark_checkpoints_by_workflow
        ON bulwark_checkpoints (agent_id, workflow_id, id);
    -- filtered listings by workflow alone and by time
    CREATE INDEX bulwark_checkpoints_by_workflow_id ON bulwark_checkpoints (workflow_id, id);
    CREATE INDEX bulwark_checkpoints_by_created ON bulwark_checkpoints (created_at, id);
    CREATE TABLE bulwark_checkpoint_heads (
        agent_id    TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        head_id     UUID NOT NULL,
        PRIMARY KEY (agent_id, workflow_id)
    );
    ",
)];

/// Connection settings of a [`PostgresStore`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresStoreOptions {
    /// Connections kept in the pool (default 8).
    pub max_connections: usize,
    /// How long an operation waits for a connection from the pool (default 5 s).
    pub acquire_timeout: Duration,
}

impl Default for PostgresStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl PostgresStoreOptions {
    /// Keeps at most `n` connections.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Waits at most `timeout` for a connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

/// A [`CheckpointStore`] in PostgreSQL, with a connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    acquire_timeout: Duration,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`), then runs the migrations.
    pub async fn connect(url: &str, options: PostgresStoreOptions) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL url: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        let store = Self {
            pool,
            acquire_timeout: options.acquire_timeout,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet applied; safe to run from many processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS bulwark_schema_migrations (
                version    INT PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(backend)?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM bulwark_schema_migrations", &[])
            .await
            .map_err(backend)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tracing::info!(version, "applying checkpoint schema migration");
            tx.batch_execute(sql).await.map_err(backend)?;
            tx.execute(
                "INSERT INTO bulwark_schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    /// The schema versions applied, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i32>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT version FROM bulwark_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            StoreError::Backend(format!(
                "PostgreSQL unavailable (no connection within {:?}): {e}",
                self.acquire_timeout
            ))
        })
    }

    async fn insert(
        tx: &deadpool_postgres::Transaction<'_>,
        metadata: &CheckpointMetadata,
        envelope: &[u8],
    ) -> Result<(), StoreError> {
        let json = serde_json::to_value(metadata)
            .map_err(|e| StoreError::Backend(format!("cannot encode metadata: {e}")))?;
        let sequence = to_i64(metadata.sequence)?;
        let uncompressed = to_i64(metadata.uncompressed_size)?;
        let stored = to_i64(metadata.stored_size)?;
        let parent = metadata.parent_id.map(|p| *p.as_uuid());
        let result = tx
            .execute(
                "INSERT INTO bulwark_checkpoints (id, agent_id, workflow_id, sequence, parent_id,
                    created_at, uncompressed_size, stored_size, sha256, metadata, envelope)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    metadata.id.as_uuid(),
                    &metadata.agent_id,
                    &metadata.workflow_id,
                    &sequence,
                    &parent,
                    &metadata.created_at,
                    &uncompressed,
                    &stored,
                    &metadata.sha256,
                    &json,
                    &envelope,
                ],
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::AlreadyExists { id: metadata.id })
            }
            Err(e) => Err(backend(e)),
        }
    }
}

#[async_trait]
impl CheckpointStore for PostgresStore {
    async fn put(
        &self,
        metadata: &CheckpointMetadata,
        envelope: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        Self::insert(&tx, metadata, &envelope).await?;
        // Ids sort by time, so the head is the greatest id.
        tx.execute(
            "INSERT INTO bulwark_checkpoint_heads (agent_id, workflow_id, head_id)
             VALUES ($1, $2, $3)
             ON CONFLICT (agent_id, workflow_id)
             DO UPDATE SET head_id = GREATEST(bulwark_checkpoint_heads.head_id, EXCLUDED.head_id)",
            &[
                &metadata.agent_id,
                &metadata.workflow_id,
                metadata.id.as_uuid(),
            ],
        )
        .await
        .map_err(backend)?;
        // COMMIT returns once the WAL record is flushed (synchronous_commit, the default).
        tx.commit().await.map_err(backend)
    }

    async fn put_fenced(
        &self,
        metadata: &CheckpointMetadata,
        envelope: Vec<u8>,
        expected_latest: Option<&CheckpointId>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let conflict = |actual: Option<uuid::Uuid>| StoreError::Conflict {
            expected: expected_latest.copied(),
            actual: actual.and_then(|u| CheckpointId::from_uuid(u).ok()),
        };
        let head: Option<uuid::Uuid> = tx
            .query_opt(
                "SELECT head_id FROM bulwark_checkpoint_heads
                 WHERE agent_id = $1 AND workflow_id = $2 FOR UPDATE",
                &[&metadata.agent_id, &metadata.workflow_id],
            )
            .await
            .map_err(backend)?
            .map(|row| row.get(0));
        match (head, expected_latest) {
            (None, None) => {
                // Two first writers race to create the head row; exactly one insert wins.
                let inserted = tx
                    .execute(
                        "INSERT INTO bulwark_checkpoint_heads (agent_id, workflow_id, head_id)
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[
                            &metadata.agent_id,
                            &metadata.workflow_id,
                            metadata.id.as_uuid(),
                        ],
                    )
                    .await
                    .map_err(backend)?;
                if inserted == 0 {
                    let actual = tx
                        .query_opt(
                            "SELECT head_id FROM bulwark_checkpoint_heads
                             WHERE agent_id = $1 AND workflow_id = $2",
                            &[&metadata.agent_id, &metadata.workflow_id],
                        )
                        .await
                        .map_err(backend)?
                        .map(|row| row.get(0));
                    return Err(conflict(actual));
                }
            }
            (Some(head), Some(expected)) if head == *expected.as_uuid() => {
                tx.execute(
                    "UPDATE bulwark_checkpoint_heads SET head_id = $3
                     WHERE agent_id = $1 AND workflow_id = $2",
                    &[
                        &metadata.agent_id,
                        &metadata.workflow_id,
                        metadata.id.as_uuid(),
                    ],
                )
                .await
                .map_err(backend)?;
            }
            (head, _) => return Err(conflict(head)),
        }
        Self::insert(&tx, metadata, &envelope).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get(&self, id: &CheckpointId) -> Result<Vec<u8>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT envelope FROM bulwark_checkpoints WHERE id = $1",
                &[id.as_uuid()],
            )
            .await
            .map_err(backend)?
            .map(|row| row.get(0))
            .ok_or(StoreError::NotFound { id: *id })
    }

    async fn metadata(&self, id: &CheckpointId) -> Result<CheckpointMetadata, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT metadata FROM bulwark_checkpoints WHERE id = $1",
                &[id.as_uuid()],
            )
            .await
            .map_err(backend)?
            .ok_or(StoreError::NotFound { id: *id })?;
        decode_metadata(row.get(0), id)
    }

    async fn list(&self, filter: &ListFilter) -> Result<CheckpointPage, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut bind = |condition: &str, value: Box<dyn ToSql + Sync + Send>| {
            params.push(value);
            conditions.push(condition.replace('?', &format!("${}", params.len())));
        };
        if let Some(agent) = &filter.agent_id {
            bind("agent_id = ?", Box::new(agent.clone()));
        }
        if let Some(workflow) = &filter.workflow_id {
            bind("workflow_id = ?", Box::new(workflow.clone()));
        }
        if let Some(after) = filter.created_after {
            bind("created_at >= ?", Box::new(after));
        }
        if let Some(before) = filter.created_before {
            bind("created_at < ?", Box::new(before));
        }
        if let Some(cursor) = &filter.cursor {
            let condition = if filter.order.is_desc() {
                "id < ?"
            } else {
                "id > ?"
            };
            bind(condition, Box::new(*cursor.as_uuid()));
        }
        let limit = filter.limit.unwrap_or(usize::MAX);
        // One row more than the page tells whether another page follows.
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT metadata FROM bulwark_checkpoints {} ORDER BY id {} LIMIT {fetch}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            if filter.order.is_desc() {
                "DESC"
            } else {
                "ASC"
            },
        );
        let client = self.client().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).await.map_err(backend)?;
        let mut items = Vec::with_capacity(rows.len().min(limit));
        for row in rows.iter().take(limit) {
            let json: serde_json::Value = row.get(0);
            match serde_json::from_value::<CheckpointMetadata>(json) {
                Ok(meta) => items.push(meta),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a checkpoint row whose metadata does not decode")
                }
            }
        }
        let next_cursor = if rows.len() > limit {
            items.last().map(|m| m.id)
        } else {
            None
        };
        Ok(CheckpointPage::new(items, next_cursor))
    }

    async fn delete(&self, id: &CheckpointId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let deleted = tx
            .query_opt(
                "DELETE FROM bulwark_checkpoints WHERE id = $1 RETURNING agent_id, workflow_id",
                &[id.as_uuid()],
            )
            .await
            .map_err(backend)?;
        let Some(row) = deleted else {
            return Ok(false);
        };
        let (agent, workflow): (String, String) = (row.get(0), row.get(1));
        // A workflow with no checkpoint left has no head; otherwise, if the deleted one was
        // the head, the head falls back to the newest remaining checkpoint.
        tx.execute(
            "DELETE FROM bulwark_checkpoint_heads h WHERE h.agent_id = $1 AND h.workflow_id = $2
             AND NOT EXISTS (SELECT 1 FROM bulwark_checkpoints c
                             WHERE c.agent_id = h.agent_id AND c.workflow_id = h.workflow_id)",
            &[&agent, &workflow],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "UPDATE bulwark_checkpoint_heads h
             SET head_id = (SELECT c.id FROM bulwark_checkpoints c
                            WHERE c.agent_id = h.agent_id AND c.workflow_id = h.workflow_id
                            ORDER BY c.id DESC LIMIT 1)
             WHERE h.agent_id = $1 AND h.workflow_id = $2 AND h.head_id = $3",
            &[&agent, &workflow, id.as_uuid()],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn unreadable(&self) -> Result<Vec<UnreadableCheckpoint>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, metadata FROM bulwark_checkpoints", &[])
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let uuid: uuid::Uuid = row.get(0);
                let json: serde_json::Value = row.get(1);
                serde_json::from_value::<CheckpointMetadata>(json)
                    .err()
                    .map(|e| UnreadableCheckpoint {
                        id: CheckpointId::from_uuid(uuid).ok(),
                        name: uuid.to_string(),
                        reason: format!("metadata does not decode: {e}"),
                    })
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(backend)?;
        Ok(())
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("connections", &status.size)
            .field("idle", &status.available)
            .finish()
    }
}

fn decode_metadata(
    json: serde_json::Value,
    id: &CheckpointId,
) -> Result<CheckpointMetadata, StoreError> {
    serde_json::from_value(json).map_err(|e| {
        StoreError::Backend(format!("metadata of checkpoint {id} does not decode: {e}"))
    })
}

fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Backend(format!("{value} does not fit in BIGINT")))
}

fn backend(error: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {error}"))
}
