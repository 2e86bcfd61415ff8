//! Test-only: the `counted` workflow, registered when `workflows.test_counter_url` is set, for
//! the crash and takeover tests. A fan-out of three agents, then a final step; every branch
//! and the final step make one memoized effect that counts its calls in PostgreSQL and applies
//! its key once (`ON CONFLICT DO NOTHING`, as a provider honouring idempotency keys would), and
//! the final step logs when it ran on which replica, so a test can see overlaps.

use std::sync::Arc;
use std::time::Duration;

use bulwark::durable::{BranchOutcome, FanOut, StepError, Workflow};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

/// The workflow's name.
pub const COUNTED_WORKFLOW: &str = "counted";

/// The `counted` workflow's state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counted {
    /// The branches' idempotency keys, in branch order.
    #[serde(default)]
    pub keys: Vec<String>,
    /// The final step's key.
    #[serde(default)]
    pub last: Option<String>,
}

fn backend(error: impl std::fmt::Display) -> StepError {
    StepError::retryable(format!("counter database: {error}"))
}

/// Counts one call of the effect `key`, applies it once, after a short random pause (a window
/// for a kill).
async fn count(client: &Client, key: &str) -> Result<String, StepError> {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(5..40))).await;
    client
        .execute(
            "INSERT INTO bulwark_test_effects (key, calls) VALUES ($1, 1)
             ON CONFLICT (key) DO UPDATE SET calls = bulwark_test_effects.calls + 1",
            &[&key],
        )
        .await
        .map_err(backend)?;
    Ok(key.to_owned())
}

/// Connects to `url`, creates the counter tables, and builds the workflow for `replica`.
pub(crate) async fn counted_workflow(
    url: &str,
    replica: &str,
) -> Result<Workflow<Counted>, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bulwark_test_effects (key TEXT PRIMARY KEY, calls INT NOT NULL);
             CREATE TABLE IF NOT EXISTS bulwark_test_steps (
                 run_id TEXT NOT NULL, replica TEXT NOT NULL,
                 started_at TIMESTAMPTZ NOT NULL, ended_at TIMESTAMPTZ NOT NULL)",
        )
        .await
        .map_err(|e| e.to_string())?;
    let client = Arc::new(client);
    let mut gather = FanOut::new(|mut s: Counted, found: Vec<BranchOutcome<String>>| {
        s.keys = found.into_iter().filter_map(|f| f.result.ok()).collect();
        Ok(s)
    });
    for branch in 0..3 {
        let client = Arc::clone(&client);
        gather = gather.branch(
            format!("b{branch}"),
            format!("agent-{branch}"),
            move |ctx, _s: Counted| {
                let client = Arc::clone(&client);
                async move {
                    ctx.effect("count", |key| async move { count(&client, &key).await })
                        .await
                }
            },
        );
    }
    let replica: Arc<str> = replica.into();
    let last = Workflow::new(COUNTED_WORKFLOW)
        .description("test-only: counted effects across a fan-out and a step")
        .fan_out("gather", "joiner", gather)
        .step("finish", "finisher", move |ctx, mut s: Counted| {
            let (client, replica) = (Arc::clone(&client), Arc::clone(&replica));
            async move {
                let started = std::time::SystemTime::now();
                let counter = Arc::clone(&client);
                let key = ctx
                    .effect("count", |key| async move { count(&counter, &key).await })
                    .await?;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(5..40))).await;
                client
                    .execute(
                        "INSERT INTO bulwark_test_steps VALUES ($1, $2, $3, now())",
                        &[&ctx.run_id(), &&*replica, &started],
                    )
                    .await
                    .map_err(backend)?;
                s.last = Some(key);
                Ok(s)
            }
        });
    Ok(last)
}
