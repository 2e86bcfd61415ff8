//! The workflow routes on the durable executor: definitions, runs by workflow and status, a
//! run's record and history, resume of an interrupt, cancel, fork with a state patch, and the
//! bad inputs, each a 4xx that changes nothing on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark::durable::{StepError, Workflow};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

mod common;

#[derive(Serialize, Deserialize)]
struct Refund {
    amount: u32,
    #[serde(default)]
    approved_by: Option<String>,
}

/// Asks a person to approve, then pays.
fn refund() -> Workflow<Refund> {
    Workflow::new("refund")
        .description("approve, then pay")
        .step("approve", "clerk", |ctx, mut r: Refund| async move {
            let by: String = ctx.interrupt("approve", &r.amount).await?;
            r.approved_by = Some(by);
            Ok(r)
        })
        .step("pay", "billing", |ctx, r: Refund| async move {
            let amount = r.amount;
            ctx.effect("pay-out", |_key| async move {
                Ok::<_, StepError>(format!("paid {amount}"))
            })
            .await?;
            Ok(r)
        })
}

async fn app() -> common::App {
    let app = common::app("workflow-api").await;
    app.state.workflows().register(refund()).unwrap();
    app
}

#[tokio::test]
async fn definitions_runs_and_a_run_with_its_history_are_listed() {
    let app = app().await;
    let defs = app.call("GET", "/api/workflows").await;
    assert_eq!(defs.status, StatusCode::OK, "{}", defs.text);
    let names: Vec<&str> = defs.body["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["demo", "refund"]);
    assert_eq!(defs.body["workflows"][1]["steps"][1]["agent"], "billing");

    let demo = app.call("POST", "/api/workflows/d-1/execute").await;
    assert_eq!(demo.body["status"], "completed", "{}", demo.text);
    let waiting = app
        .post_json(
            "/api/workflows/r-1/execute",
            r#"{"workflow":"refund","state":{"amount":40}}"#,
        )
        .await;
    assert_eq!(waiting.status, StatusCode::OK, "{}", waiting.text);
    assert_eq!(waiting.body["status"], "waiting", "{}", waiting.text);

    let all = app.call("GET", "/api/workflows/runs").await;
    assert_eq!(
        all.body["runs"].as_array().unwrap().len(),
        2,
        "{}",
        all.text
    );
    let done = app
        .call("GET", "/api/workflows/runs?workflow=demo&status=completed")
        .await;
    assert_eq!(
        done.body["runs"].as_array().unwrap().len(),
        1,
        "{}",
        done.text
    );
    assert_eq!(done.body["runs"][0]["run_id"], "d-1", "{}", done.text);
    let asking = app.call("GET", "/api/workflows/runs?status=waiting").await;
    assert_eq!(asking.body["runs"][0]["run_id"], "r-1", "{}", asking.text);

    let run = app.call("GET", "/api/workflows/runs/d-1").await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert_eq!(run.body["status"], "completed");
    assert_eq!(run.body["state"]["trail"].as_array().unwrap().len(), 4);
    assert_eq!(run.body["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(run.body["history"].as_array().unwrap().len(), 13);
    let run = app.call("GET", "/api/workflows/runs/r-1").await;
    assert_eq!(run.body["waiting_on"]["name"], "approve", "{}", run.text);
    assert_eq!(run.body["waiting_on"]["payload"], 40, "{}", run.text);
}

#[tokio::test]
async fn an_interrupt_is_resumed_a_run_forked_with_a_patch_and_a_waiting_one_cancelled() {
    let app = app().await;
    let start = r#"{"workflow":"refund","state":{"amount":40}}"#;
    app.post_json("/api/workflows/r-1/execute", start).await;
    let resumed = app
        .post_json("/api/workflows/runs/r-1/resume", r#"{"input":"ann"}"#)
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.text);
    assert_eq!(resumed.body["status"], "completed", "{}", resumed.text);
    assert_eq!(resumed.body["state"]["approved_by"], "ann");

    // Fork from the first checkpoint (before the approval) with a bigger amount: it waits
    // for its own approval, and records where it comes from.
    let first = resumed.body["history"][0]["checkpoint_id"]
        .as_str()
        .unwrap();
    let fork = app
        .post_json(
            "/api/workflows/runs/r-1/fork",
            &json!({"checkpoint_id": first, "patch": {"amount": 90}}).to_string(),
        )
        .await;
    assert_eq!(fork.status, StatusCode::OK, "{}", fork.text);
    assert_eq!(fork.body["status"], "waiting", "{}", fork.text);
    assert_eq!(fork.body["waiting_on"]["payload"], 90);
    assert_eq!(fork.body["origin"]["run_id"], "r-1");
    assert_eq!(fork.body["origin"]["checkpoint_id"], first);
    let forked = fork.body["run_id"].as_str().unwrap().to_owned();

    let cancelled = app
        .call("POST", &format!("/api/workflows/runs/{forked}/cancel"))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "cancelled");
    // A cancelled run is not started again by execute.
    let again = app
        .post_json(
            &format!("/api/workflows/{forked}/execute"),
            r#"{"workflow":"refund"}"#,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
}

#[tokio::test]
async fn bad_inputs_are_4xx_and_change_nothing_on_disk() {
    let app = app().await;
    app.call("POST", "/api/workflows/d-1/execute").await;
    app.post_json(
        "/api/workflows/r-1/execute",
        r#"{"workflow":"refund","state":{"amount":40}}"#,
    )
    .await;
    let demo_checkpoint =
        app.call("GET", "/api/workflows/runs/d-1").await.body["history"][0]["checkpoint_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let missing = "01a25300-0000-7000-8000-000000000000";
    let before = common::snapshot(app.dir.path());
    let cases: Vec<(&str, String, Option<String>, StatusCode)> = vec![
        // Unknown workflow.
        (
            "POST",
            "/api/workflows/x/execute".into(),
            Some(r#"{"workflow":"nope"}"#.into()),
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/api/workflows/runs?workflow=nope".into(),
            None,
            StatusCode::NOT_FOUND,
        ),
        // Bad run ids, unknown runs, bad statuses.
        (
            "GET",
            "/api/workflows/runs/.hidden".into(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/workflows/runs/a%20b/resume".into(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/workflows/runs/none".into(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/api/workflows/runs?status=sleeping".into(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        // A state the workflow's type refuses.
        (
            "POST",
            "/api/workflows/r-2/execute".into(),
            Some(r#"{"workflow":"refund","state":{"amount":"lots"}}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        // Resume of a run that is not waiting.
        (
            "POST",
            "/api/workflows/runs/d-1/resume".into(),
            Some(r#"{"input":1}"#.into()),
            StatusCode::CONFLICT,
        ),
        // Cancel of a finished run.
        (
            "POST",
            "/api/workflows/runs/d-1/cancel".into(),
            None,
            StatusCode::CONFLICT,
        ),
        // Fork from another run's (another workflow's) checkpoint, a missing one, a bad id.
        (
            "POST",
            "/api/workflows/runs/r-1/fork".into(),
            Some(json!({"checkpoint_id": demo_checkpoint}).to_string()),
            StatusCode::CONFLICT,
        ),
        (
            "POST",
            "/api/workflows/runs/r-1/fork".into(),
            Some(json!({"checkpoint_id": missing}).to_string()),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/api/workflows/runs/r-1/fork".into(),
            Some(r#"{"checkpoint_id":"x"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        // A patch that does not deserialize as the state.
        (
            "POST",
            "/api/workflows/runs/r-1/fork".into(),
            Some(
                json!({"checkpoint_id": first_of(&app, "r-1").await, "patch": {"amount": -1}})
                    .to_string(),
            ),
            StatusCode::BAD_REQUEST,
        ),
        // Unknown body fields.
        (
            "POST",
            "/api/workflows/runs/r-1/resume".into(),
            Some(r#"{"inptu":1}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        // A run of another workflow.
        (
            "POST",
            "/api/workflows/d-1/execute".into(),
            Some(r#"{"workflow":"refund"}"#.into()),
            StatusCode::CONFLICT,
        ),
    ];
    for (method, path, body, expected) in cases {
        let reply = match body {
            Some(body) => app.post_json(&path, &body).await,
            None => app.call(method, &path).await,
        };
        assert_eq!(reply.status, expected, "{method} {path}: {}", reply.text);
        common::error_code(&reply);
    }
    assert_eq!(
        common::snapshot(app.dir.path()),
        before,
        "a refused request changed the disk"
    );
}

async fn first_of(app: &common::App, run: &str) -> String {
    let run = app.call("GET", &format!("/api/workflows/runs/{run}")).await;
    run.body["history"][0]["checkpoint_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_demo_run_started_with_a_state_that_is_not_an_object_fails_with_a_message() {
    // Schemathesis found `{"state": [null, null]}` panicking the demo's first step (a 500).
    let app = app().await;
    let reply = app
        .post_json(
            "/api/workflows/odd-state/execute",
            r#"{"state": [null, null]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "failed", "{}", reply.text);
    assert!(
        reply.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("the demo's state is a JSON object, not an array")),
        "{}",
        reply.text
    );
}
