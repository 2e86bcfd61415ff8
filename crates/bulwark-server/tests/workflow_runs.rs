//! Workflow runs as their traces and checkpoints show them: failures are error spans, a run
//! whose start cannot be saved runs nothing, and two writers of one run cannot fork it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use bulwark::checkpoint::ListFilter;
use bulwark_server::workflow::WorkflowDefinition;
use bulwark_server::workflow::journal::{PREVIOUS_LABEL, STEP_LABEL};
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
async fn a_failed_run_is_an_error_trace_with_one_exception_per_failed_attempt() {
    let app = common::app_with("error-trace", |config| {
        config.demo.failure_rate = 1.0;
        config.workflows.max_attempts = 2;
    })
    .await;
    let _guard = common::traced(&app);
    let run = app.call("POST", "/api/workflows/doomed/execute").await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert_eq!(run.body["status"], "failed", "{}", run.text);
    let trace_id = run.body["trace_id"].as_str().unwrap().to_owned();

    let errors = app
        .call("GET", "/api/observability/traces?has_error=true")
        .await;
    let found: Vec<&Value> = errors.body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["trace_id"] == trace_id.as_str())
        .collect();
    assert_eq!(found.len(), 1, "{}", errors.text);

    let tree = app
        .call("GET", &format!("/api/observability/traces/{trace_id}"))
        .await;
    let (mut runs, mut steps) = (Vec::new(), Vec::new());
    for root in tree.body["roots"].as_array().unwrap() {
        spans_named(root, "workflow.run", &mut runs);
        spans_named(root, "workflow.step", &mut steps);
    }
    assert_eq!(runs.len(), 1, "{}", tree.text);
    assert_eq!(runs[0]["status"]["code"], "ERROR", "{}", runs[0]);
    assert!(
        runs[0]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("research"),
        "{}",
        runs[0]
    );
    assert!(
        runs[0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "exception")
    );
    // The first step failed both attempts; the run stopped there.
    assert_eq!(steps.len(), 1, "{}", tree.text);
    assert_eq!(steps[0]["status"]["code"], "ERROR", "{}", steps[0]);
    let exceptions = steps[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "exception")
        .count();
    assert_eq!(exceptions, 2, "one per failed attempt: {}", steps[0]);
}

fn counting_workflow(name: &str, runs: &Arc<AtomicUsize>) -> WorkflowDefinition {
    let runs = Arc::clone(runs);
    WorkflowDefinition::new(name, "counts its step").step("only", "counter", move |_ctx, state| {
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
        .register(counting_workflow("counted", &runs));
    let reply = app
        .post_json("/api/workflows/r1/execute", r#"{"workflow":"counted"}"#)
        .await;
    assert!(reply.status.is_server_error(), "{}", reply.text);
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a step ran: {}", reply.text);
}

fn two_steps(
    gate: Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>)>,
) -> WorkflowDefinition {
    WorkflowDefinition::new("pair", "two agents, the first one gated")
        .step("first", "a", move |_ctx, mut state| {
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
        .step("second", "b", |_ctx, mut state| async move {
            state["second"] = json!(true);
            Ok(state)
        })
}

// Issue 11 defect 7: two replicas on one PostgreSQL working on one run. The slower writer's
// save is fenced: it gets 409 and the history stays one chain.
#[tokio::test]
async fn the_slower_of_two_replicas_on_one_run_gets_409_and_the_history_does_not_fork() {
    let Some((url, _client)) = fresh_schema("runner_fence").await else {
        return;
    };
    let replica = |label: &'static str| {
        let url = url.clone();
        common::app_with(label, move |config| {
            config.checkpoints.backend = bulwark_server::config::CheckpointBackend::Postgres;
            config.checkpoints.url = Some(url);
        })
    };
    let (slow, fast) = (replica("fence-slow").await, replica("fence-fast").await);
    let (entered, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    slow.state.workflows().register(two_steps(Some((
        Arc::clone(&entered),
        Arc::clone(&release),
    ))));
    fast.state.workflows().register(two_steps(None));
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
    let quick = fast.send(execute()).await;
    assert_eq!(quick.status, StatusCode::OK, "{}", quick.text);
    assert_eq!(quick.body["status"], "completed", "{}", quick.text);
    assert!(quick.body["resumed_from"].is_string(), "{}", quick.text);
    release.notify_one();
    let late = slow_run.await.unwrap().unwrap();
    assert_eq!(late.status(), StatusCode::CONFLICT);

    let history = fast
        .state
        .checkpoint_manager()
        .list(&ListFilter::all().workflow_id("shared"))
        .await
        .unwrap()
        .items;
    let mut by_step: Vec<_> = history
        .iter()
        .map(|m| (m.labels[STEP_LABEL].parse::<u32>().unwrap(), m))
        .collect();
    by_step.sort_by_key(|(step, _)| *step);
    let steps: Vec<u32> = by_step.iter().map(|(step, _)| *step).collect();
    assert_eq!(steps, [0, 1, 2], "one checkpoint per step, none twice");
    for pair in by_step.windows(2) {
        assert_eq!(pair[1].1.labels[PREVIOUS_LABEL], pair[0].1.id.to_string());
    }
    let (start, first) = (by_step[0].1, by_step[1].1);
    assert_eq!(first.parent_id, Some(start.id), "the agent's own chain");
}
