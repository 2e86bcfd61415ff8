//! Workflow runs as their traces and checkpoints show them: failures are error spans, a run
//! whose start cannot be saved runs nothing, and two replicas on one run: the second is
//! refused naming the first, and the history does not fork.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use bulwark::checkpoint::ListFilter;
use bulwark::durable::{RetryPolicy, StepError, StepPolicy, Workflow};
use http::{Request, StatusCode};
use serde_json::{Value, json};

mod common;
mod postgres;

use postgres::fresh_schema;

fn spans_named<'a>(node: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    if node["name"] == name {
        out.push(node);
    }
    for child in node["children"].as_array().into_iter().flatten() {
        spans_named(child, name, out);
    }
}

// Issue 11 defect 3: a failed run, its retried step and each failed attempt are errors in
// the trace, with the error as an event, so `has_error=true` finds the run.
#[tokio::test]
async fn a_failed_run_is_an_error_trace_with_one_error_span_per_failed_attempt() {
    let app = common::app("error-trace").await;
    let _guard = common::traced(&app);
    let twice = StepPolicy::new().retry(RetryPolicy::attempts(2).backoff(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(1),
        1.0,
    ));
    app.state
        .workflows()
        .register(
            Workflow::new("doomed").step_with(
                "research",
                "researcher",
                twice,
                |_ctx, _state: Value| async move {
                    Err::<Value, _>(StepError::retryable("search is down"))
                },
            ),
        )
        .unwrap();
    let run = app
        .post_json("/api/workflows/doomed/execute", r#"{"workflow":"doomed"}"#)
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert_eq!(run.body["status"], "failed", "{}", run.text);
    let trace_id = run.body["trace_id"].as_str().unwrap().to_owned();

    let errors = app
        .call("GET", "/api/observability/traces?has_error=true")
        .await;
    let found = errors.body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["trace_id"] == trace_id.as_str())
        .count();
    assert_eq!(found, 1, "{}", errors.text);

    let tree = app
        .call("GET", &format!("/api/observability/traces/{trace_id}"))
        .await;
    let (mut runs, mut attempts) = (Vec::new(), Vec::new());
    for root in tree.body["roots"].as_array().unwrap() {
        spans_named(root, "workflow.run", &mut runs);
        spans_named(root, "workflow.attempt", &mut attempts);
    }
    assert_eq!(runs.len(), 1, "{}", tree.text);
    assert_eq!(runs[0]["status"]["code"], "ERROR", "{}", runs[0]);
    // The step failed both attempts; the run stopped there.
    assert_eq!(attempts.len(), 2, "{}", tree.text);
    for attempt in attempts {
        assert_eq!(attempt["status"]["code"], "ERROR", "{attempt}");
    }
}

fn counting_workflow(name: &str, runs: &Arc<AtomicUsize>) -> Workflow<Value> {
    let runs = Arc::clone(runs);
    Workflow::new(name).step("only", "counter", move |_ctx, state: Value| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(state)
        }
    })
}

// Issue 12 defect 7: a run whose first checkpoint cannot be written does not start its
// steps (the start is checkpointed before the first step). The store still reads; only its
// writes fail (a trigger refuses every insert, which binds even a superuser).
#[tokio::test]
async fn a_run_whose_start_cannot_be_saved_runs_no_step() {
    let Some((url, client)) = fresh_schema("unwritable").await else {
        return;
    };
    let app = common::app_with("unwritable", move |config| {
        config.checkpoints.backend = bulwark_server::config::CheckpointBackend::Postgres;
        config.checkpoints.url = Some(url);
    })
    .await;
    client
        .batch_execute(
            "CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'the store is read-only'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON bulwark_checkpoints
                 FOR EACH ROW EXECUTE FUNCTION refuse_writes();
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON bulwark_checkpoint_heads
                 FOR EACH ROW EXECUTE FUNCTION refuse_writes();",
        )
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    app.state
        .workflows()
        .register(counting_workflow("counted", &runs))
        .unwrap();
    let reply = app
        .post_json("/api/workflows/r1/execute", r#"{"workflow":"counted"}"#)
        .await;
    assert!(reply.status.is_server_error(), "{}", reply.text);
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a step ran: {}", reply.text);
}

fn two_steps(
    gate: Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>)>,
) -> Workflow<Value> {
    Workflow::new("pair")
        .step("first", "a", move |_ctx, mut state: Value| {
            let gate = gate.clone();
            async move {
                if let Some((entered, release)) = gate {
                    entered.notify_one();
                    release.notified().await;
                }
                state["first"] = json!(true);
                Ok(state)
            }
        })
        .step("second", "b", |_ctx, mut state: Value| async move {
            state["second"] = json!(true);
            Ok(state)
        })
}

// Issue 11 defect 7, with leases: two replicas on one PostgreSQL asked for one run. The
// second is refused with 409 naming the replica that runs it; the history stays one chain.
#[tokio::test]
async fn a_run_asked_of_a_second_replica_is_refused_naming_the_first_and_does_not_fork() {
    let Some((url, _client)) = fresh_schema("runner_fence").await else {
        return;
    };
    let replica = |label: &'static str| {
        let url = url.clone();
        common::app_with(label, move |config| {
            config.checkpoints.backend = bulwark_server::config::CheckpointBackend::Postgres;
            config.checkpoints.url = Some(url);
            config.workflows.replica = Some(label.to_owned());
        })
    };
    let (slow, fast) = (replica("fence-slow").await, replica("fence-fast").await);
    let (entered, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    slow.state
        .workflows()
        .register(two_steps(Some((
            Arc::clone(&entered),
            Arc::clone(&release),
        ))))
        .unwrap();
    fast.state.workflows().register(two_steps(None)).unwrap();
    let execute = || {
        Request::post("/api/workflows/shared/execute")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"workflow":"pair"}"#))
            .unwrap()
    };
    let slow_router = slow.router.clone();
    let slow_run = tokio::spawn(tower::ServiceExt::oneshot(slow_router, execute()));
    // The slow replica saved the start and is inside the first step.
    entered.notified().await;
    let refused = fast.send(execute()).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("fence-slow"), "{message}");
    release.notify_one();
    let done = slow_run.await.unwrap().unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let run = fast.call("GET", "/api/workflows/runs/shared").await;
    assert_eq!(run.body["status"], "completed", "{}", run.text);

    let history = fast
        .state
        .workflows()
        .executor()
        .history("shared")
        .await
        .unwrap();
    let revisions: Vec<u64> = history.iter().map(|h| h.revision).collect();
    let expected: Vec<u64> = (1..=history.len() as u64).collect();
    assert_eq!(revisions, expected, "one chain, no revision twice");
    let all = fast
        .state
        .checkpoint_manager()
        .list(&ListFilter::all().workflow_id("shared"))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), history.len());
}
