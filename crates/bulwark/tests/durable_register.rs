//! Workflows registered on an executor that already runs: found by name and by run id, a
//! taken name or an invalid definition refused without changing what is registered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark::checkpoint::StateCheckpointManager;
use bulwark::durable::{DurableError, Executor, RunStatus, Workflow};
use serde_json::{Value, json};

fn echo(name: &str, agent: &str) -> Workflow<Value> {
    Workflow::new(name).step("only", agent, |_ctx, mut s: Value| async move {
        s["done"] = json!(true);
        Ok(s)
    })
}

#[tokio::test]
async fn a_workflow_registered_after_build_runs_and_a_taken_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let executor = Executor::builder(manager)
        .workflow(echo("first", "a"))
        .build()
        .unwrap();
    let run = executor
        .start_with_id("first", "r-1", &json!({}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed);

    // A later workflow with an agent the executor did not know: its runs are found by id.
    executor.register(echo("later", "new-agent")).unwrap();
    let run = executor
        .start_with_id("later", "r-2", &json!({}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(executor.get("r-2").await.unwrap().workflow, "later");
    assert_eq!(executor.history("r-2").await.unwrap().len(), 2);

    let taken = executor.register(echo("later", "b")).unwrap_err();
    assert!(
        matches!(taken, DurableError::DuplicateWorkflow { .. }),
        "{taken}"
    );
    let invalid = executor
        .register(Workflow::<Value>::new("empty"))
        .unwrap_err();
    assert!(
        matches!(invalid, DurableError::InvalidWorkflow { .. }),
        "{invalid}"
    );
    let names: Vec<String> = executor.workflows().into_iter().map(|w| w.name).collect();
    assert_eq!(names, ["first", "later"]);
    // The old run still resolves with the new agent list.
    assert_eq!(
        executor.get("r-1").await.unwrap().status,
        RunStatus::Completed
    );
}
