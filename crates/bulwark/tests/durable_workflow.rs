//! Durable workflows: sequences, fan-outs, runs as data, and refused input.

mod durable_support;

use std::sync::Arc;

use bulwark::durable::{
    BranchFailure, BranchOutcome, DurableError, FanOut, Join, RunStatus, StepError, Workflow,
};
use durable_support::{Order, checkpoints, executor, order};
use serde_json::json;

fn logged(mut order: Order, entry: &str) -> Order {
    order.log.push(entry.to_owned());
    order
}

fn sequence() -> Workflow<Order> {
    Workflow::new("order")
        .description("check, charge, ship")
        .step("check", "checker", |_, o| async move {
            Ok(logged(o, "checked"))
        })
        .step("charge", "payments", |_, o| async move {
            Ok(logged(o, "charged"))
        })
        .step("ship", "shipping", |ctx, o| async move {
            let entry = format!("shipped by {} at attempt {}", ctx.agent(), ctx.attempt());
            Ok(logged(o, &entry))
        })
}

#[tokio::test]
async fn a_sequence_runs_its_steps_in_order_and_checkpoints_each_under_its_agent() {
    let dir = tempfile::tempdir().unwrap();
    let executor = executor(dir.path(), |b| b.workflow(sequence())).await;
    let run = executor.start("order", &order("o-1", 30)).await.unwrap();

    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.position, 3);
    assert_eq!(run.current_step, None);
    let state: Order = run.state_as().unwrap();
    assert_eq!(
        state.log,
        ["checked", "charged", "shipped by shipping at attempt 1"]
    );
    assert!(run.timings.finished_at_ms.is_some());
    assert_eq!(run.trace_id.len(), 32);

    let history = executor.history(&run.run_id).await.unwrap();
    let seen: Vec<_> = history
        .iter()
        .map(|h| (h.revision, h.agent.as_str(), h.status))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "checker", RunStatus::Running),
            (2, "checker", RunStatus::Running),
            (3, "payments", RunStatus::Running),
            (4, "shipping", RunStatus::Completed),
        ]
    );
    // The latest record is the one returned, from a new executor on the same folder too.
    let again = executor_on_same(&dir).await.get(&run.run_id).await.unwrap();
    assert_eq!(again, run);
}

async fn executor_on_same(
    dir: &tempfile::TempDir,
) -> bulwark::durable::Executor<bulwark::clock::ManualClock> {
    executor(dir.path(), |b| b.workflow(sequence())).await
}

#[tokio::test]
async fn runs_are_listed_by_workflow_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let executor = executor(dir.path(), |b| {
        b.workflow(sequence())
            .workflow(
                Workflow::<Order>::new("refuse").step("no", "checker", |_, _| async {
                    Err(StepError::fatal("refused"))
                }),
            )
    })
    .await;
    let done = executor
        .start_with_id("order", "run-a", &order("a", 1))
        .await
        .unwrap();
    let failed = executor
        .start_with_id("refuse", "run-b", &order("b", 1))
        .await
        .unwrap();
    assert_eq!(
        (done.status, failed.status),
        (RunStatus::Completed, RunStatus::Failed)
    );
    assert_eq!(failed.last_error.as_deref(), Some("step \"no\": refused"));

    let ids = |runs: Vec<bulwark::durable::RunSummary>| {
        runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(executor.list_runs(Some("order"), None).await.unwrap()),
        ["run-a"]
    );
    assert_eq!(
        ids(executor
            .list_runs(None, Some(RunStatus::Failed))
            .await
            .unwrap()),
        ["run-b"]
    );
    assert!(
        executor
            .list_runs(Some("order"), Some(RunStatus::Failed))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(executor.workflows()[0].steps.len(), 3);
}

fn gather(join: Join, barrier: Arc<tokio::sync::Barrier>) -> Workflow<Order> {
    let (a, b) = (Arc::clone(&barrier), barrier);
    let fan_out = FanOut::new(|mut o: Order, outcomes: Vec<BranchOutcome<String>>| {
        for outcome in outcomes {
            o.log.push(match outcome.result {
                Ok(found) => format!("{}={found}", outcome.branch),
                Err(error) => format!("{}!{error}", outcome.branch),
            });
        }
        Ok(o)
    })
    .join(join)
    .branch("search", "searcher", move |ctx, o: Order| {
        let barrier = Arc::clone(&a);
        async move {
            // Both branches must be running at once to pass.
            barrier.wait().await;
            Ok(format!("{}:{}", ctx.step(), o.id))
        }
    })
    .branch("crm", "crm-agent", move |_, _| {
        let barrier = Arc::clone(&b);
        async move {
            barrier.wait().await;
            Ok("gold".to_owned())
        }
    })
    .branch_with(
        "flaky",
        "flaky-agent",
        BranchFailure::Continue,
        |_, _| async { Err::<String, _>(StepError::fatal("no answer")) },
    );
    Workflow::new("gather")
        .fan_out("lookup", "coordinator", fan_out)
        .step("done", "coordinator", |_, o| async move {
            Ok(logged(o, "done"))
        })
}

#[tokio::test]
async fn a_fan_out_runs_branches_at_once_and_joins_all_in_definition_order() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let executor = executor(dir.path(), |b| b.workflow(gather(Join::All, barrier))).await;
    let run = executor.start("gather", &order("o-7", 1)).await.unwrap();

    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.last_error);
    let state: Order = run.state_as().unwrap();
    assert_eq!(
        state.log,
        [
            "search=lookup/search:o-7",
            "crm=gold",
            "flaky!no answer",
            "done"
        ]
    );
    // Each settled branch was checkpointed under its own agent.
    let agents: Vec<_> = executor
        .history(&run.run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.agent)
        .collect();
    for agent in ["searcher", "crm-agent", "flaky-agent", "coordinator"] {
        assert!(
            agents.iter().any(|a| a == agent),
            "{agent} missing from {agents:?}"
        );
    }
}

#[tokio::test]
async fn a_first_n_join_goes_on_once_enough_branches_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let fan_out = FanOut::new(|mut o: Order, outcomes: Vec<BranchOutcome<String>>| {
        o.log.extend(outcomes.into_iter().map(|o| o.branch));
        Ok(o)
    })
    .join(Join::First(1))
    .branch("fast", "a", |_, _| async { Ok("fast".to_owned()) })
    .branch("never", "b", |_, _| {
        std::future::pending::<Result<String, StepError>>()
    });
    let workflow = Workflow::new("race").fan_out("race", "a", fan_out);
    let executor = executor(dir.path(), |b| b.workflow(workflow)).await;
    let run = executor.start("race", &order("r", 1)).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.state_as::<Order>().unwrap().log, ["fast"]);
}

#[tokio::test]
async fn a_failing_branch_fails_its_step_and_names_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let fan_out = FanOut::new(|o: Order, _: Vec<BranchOutcome<u32>>| Ok(o))
        .branch("ok", "a", |_, _| async { Ok(1) })
        .branch("broken", "b", |_, _| async {
            Err(StepError::fatal("disk on fire"))
        });
    let workflow = Workflow::new("strict").fan_out("both", "a", fan_out);
    let executor = executor(dir.path(), |b| b.workflow(workflow)).await;
    let run = executor.start("strict", &order("s", 1)).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.last_error.unwrap();
    assert!(error.contains("branch \"broken\": disk on fire"), "{error}");
}

#[tokio::test]
async fn bad_input_gets_typed_errors_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let executor = executor(dir.path(), |b| b.workflow(sequence())).await;
    let done = executor
        .start_with_id("order", "done-1", &order("d", 1))
        .await
        .unwrap();
    let other = executor
        .start_with_id("order", "other-1", &order("e", 1))
        .await
        .unwrap();
    let before = checkpoints(dir.path()).await;
    let other_checkpoint = executor.history(&other.run_id).await.unwrap()[0].checkpoint_id;

    let err = executor
        .start("no-such-flow", &order("x", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DurableError::UnknownWorkflow { ref name } if name == "no-such-flow"),
        "{err}"
    );
    for bad in ["", "../etc/passwd", "a b", "..", &"x".repeat(129)] {
        let err = executor
            .start_with_id("order", bad, &order("x", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DurableError::InvalidRunId { .. }),
            "{bad:?}: {err}"
        );
        let err = executor.get(bad).await.unwrap_err();
        assert!(
            matches!(err, DurableError::InvalidRunId { .. }),
            "{bad:?}: {err}"
        );
    }
    let err = executor
        .start_with_id("order", "done-1", &order("x", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::RunExists { .. }), "{err}");
    let err = executor
        .start("order", &json!({"id": 5}))
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::BadState { .. }), "{err}");
    let err = executor.get("never-started").await.unwrap_err();
    assert!(matches!(err, DurableError::RunNotFound { .. }), "{err}");
    let err = executor
        .resume(&done.run_id, json!("yes"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DurableError::WrongStatus {
                status: RunStatus::Completed,
                expected: "waiting",
                ..
            }
        ),
        "{err}"
    );
    let err = executor.cancel(&done.run_id).await.unwrap_err();
    assert!(matches!(err, DurableError::WrongStatus { .. }), "{err}");
    let err = executor.recover(&done.run_id).await.unwrap_err();
    assert!(matches!(err, DurableError::WrongStatus { .. }), "{err}");
    let err = executor
        .fork(&done.run_id, other_checkpoint, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DurableError::ForeignCheckpoint { .. }),
        "{err}"
    );
    let first = executor.history(&done.run_id).await.unwrap()[0].checkpoint_id;
    let err = executor
        .fork(&done.run_id, first, Some(json!({"amount": "lots"})))
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::BadState { .. }), "{err}");
    let err = executor
        .list_runs(Some("no-such-flow"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::UnknownWorkflow { .. }), "{err}");

    assert_eq!(
        checkpoints(dir.path()).await,
        before,
        "a refused request wrote a checkpoint"
    );
}

#[tokio::test]
async fn a_foreign_checkpoint_cannot_be_forked() {
    let dir = tempfile::tempdir().unwrap();
    let manager = bulwark::checkpoint::StateCheckpointManager::open(dir.path())
        .await
        .unwrap();
    // A checkpoint that is not a run's, under the run id's name.
    let plain = manager
        .save_checkpoint(&json!({"x": 1}), "checker", "r-1")
        .await
        .unwrap();
    let executor = executor(dir.path(), |b| b.workflow(sequence())).await;
    let err = executor.fork("r-1", plain, None).await.unwrap_err();
    assert!(
        matches!(err, DurableError::ForeignCheckpoint { ref reason, .. } if reason.contains("not a durable run")),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_definitions_are_refused_when_the_executor_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let manager = bulwark::checkpoint::StateCheckpointManager::open(dir.path())
        .await
        .unwrap();
    let build = |workflow: Workflow<Order>| {
        bulwark::durable::Executor::builder(manager.clone())
            .workflow(workflow)
            .build()
            .map(drop)
            .unwrap_err()
    };
    let step = |_, o: Order| async move { Ok(o) };
    let cases = [
        (Workflow::new("empty"), "no steps"),
        (
            Workflow::new("twice")
                .step("a", "x", step)
                .step("a", "y", step),
            "appears twice",
        ),
        (Workflow::new("slash").step("a/b", "x", step), "'/'"),
        (
            Workflow::new("first").fan_out(
                "f",
                "x",
                FanOut::new(|o: Order, _: Vec<BranchOutcome<u8>>| Ok(o))
                    .join(Join::First(2))
                    .branch("only", "y", |_, _| async { Ok(1u8) }),
            ),
            "first 2 of 1",
        ),
    ];
    for (workflow, expected) in cases {
        let err = build(workflow);
        assert!(matches!(err, DurableError::InvalidWorkflow { .. }), "{err}");
        assert!(
            err.to_string().contains(expected),
            "{err} lacks {expected:?}"
        );
    }
    let err = bulwark::durable::Executor::builder(manager)
        .workflow(sequence())
        .workflow(sequence())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, DurableError::DuplicateWorkflow { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn each_drive_of_a_run_opens_a_run_span_with_its_trace_id_and_failed_steps_mark_errors() {
    use bulwark::telemetry::{TelemetryLayer, TraceStore};
    use tracing_subscriber::layer::SubscriberExt;

    let store = TraceStore::default();
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workflow =
        Workflow::new("ask-then-fail").step("ask", "support", |ctx, o: Order| async move {
            let _: bool = ctx.interrupt("go?", &o.id).await?;
            Err::<Order, _>(StepError::fatal("boom"))
        });
    let recorded = Arc::clone(&seen);
    let executor = executor(dir.path(), move |b| {
        b.workflow(workflow).on_run_span(move |span, record| {
            assert_eq!(span.metadata().map(|m| m.name()), Some("workflow.run"));
            recorded.lock().unwrap().push(record.trace_id.clone());
        })
    })
    .await;
    let waiting = executor
        .start_with_id("ask-then-fail", "t-1", &order("o", 1))
        .await
        .unwrap();
    let failed = executor.resume("t-1", json!(true)).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(
        *seen.lock().unwrap(),
        [waiting.trace_id.clone(), waiting.trace_id.clone()]
    );
    assert_eq!(
        failed.trace_id, waiting.trace_id,
        "a resumed run keeps its trace id"
    );

    let traces = store.recent_traces(&Default::default());
    let runs: Vec<_> = traces
        .iter()
        .filter(|t| t.root_name == "workflow.run")
        .collect();
    assert_eq!(runs.len(), 2, "{traces:?}");
    // Waiting at an interrupt is not an error (the attempt span of a pause was marked ERROR
    // before this test).
    assert_eq!(
        runs.iter().filter(|t| t.has_error).count(),
        1,
        "only the failed drive has an error"
    );
}
