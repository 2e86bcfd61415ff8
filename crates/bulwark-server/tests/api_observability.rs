//! Checkpoints and circuit breakers through `oneshot`, filled by real workflow runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::StatusCode;
use serde_json::json;

mod common;

fn files_named(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    common::snapshot(dir)
        .into_iter()
        .map(|(path, _)| dir.join(path))
        .filter(|path| path.is_file() && path.to_string_lossy().contains(needle))
        .collect()
}

#[tokio::test]
async fn a_run_leaves_checkpoints_to_list_page_inspect_and_delete() {
    let app = common::app("checkpoints").await;
    let run = app.call("POST", "/api/workflows/run-1/execute").await;
    assert_eq!(run.body["status"], "completed", "{}", run.text);
    let last = run.body["checkpoint_id"].as_str().unwrap().to_owned();

    let reply = app
        .call("GET", "/api/observability/checkpoints?workflow_id=run-1")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        13,
        "the start, then per step: its tool call started, its answer, the step done"
    );
    assert!(items.iter().any(|item| item["id"] == last.as_str()));
    // Issue 11 defect 5: each checkpoint belongs to the agent whose step it records.
    let mut agents: Vec<&str> = items
        .iter()
        .map(|item| item["agent_id"].as_str().unwrap())
        .collect();
    agents.sort_unstable();
    let count = |agent| agents.iter().filter(|a| **a == agent).count();
    assert_eq!(
        [
            count("researcher"),
            count("analyst"),
            count("writer"),
            count("reviewer")
        ],
        [4, 3, 3, 3]
    );
    assert_eq!(items[0]["id"], last.as_str(), "newest first");
    assert_eq!(items[0]["agent_id"], "reviewer");
    assert!(reply.body["next_cursor"].is_null());
    let writer = app
        .call("GET", "/api/observability/checkpoints?agent_id=writer")
        .await;
    assert_eq!(writer.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(writer.body["items"][0]["workflow_id"], "run-1");

    let page = app
        .call(
            "GET",
            "/api/observability/checkpoints?workflow_id=run-1&limit=3",
        )
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 3);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .call(
            "GET",
            &format!("/api/observability/checkpoints?workflow_id=run-1&limit=3&cursor={cursor}"),
        )
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 3);
    let none = app
        .call("GET", "/api/observability/checkpoints?workflow_id=other")
        .await;
    assert_eq!(none.body["items"], json!([]));

    let detail = app
        .call("GET", &format!("/api/observability/checkpoints/{last}"))
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    assert_eq!(detail.body["metadata"]["workflow_id"], "run-1");
    assert_eq!(detail.body["metadata"]["agent_id"], "reviewer");
    assert_eq!(
        detail.body["metadata"]["sequence"], 3,
        "the reviewer's third"
    );
    assert_eq!(detail.body["verification"]["valid"], true);

    let first = items[3]["id"].as_str().unwrap();
    let reply = app
        .call("DELETE", &format!("/api/observability/checkpoints/{first}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["deleted"], first);
    for method in ["GET", "DELETE"] {
        let reply = app
            .call(method, &format!("/api/observability/checkpoints/{first}"))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} after delete");
        assert_eq!(common::error_code(&reply), "not_found");
    }
}

#[tokio::test]
async fn a_damaged_checkpoint_is_reported_as_failing_verification() {
    let app = common::app("corrupt").await;
    let run = app.call("POST", "/api/workflows/run-1/execute").await;
    let id = run.body["checkpoint_id"].as_str().unwrap().to_owned();
    let files = files_named(app.state.checkpoint_dir(), &id);
    assert_eq!(files.len(), 1, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&files[0], bytes).unwrap();
    let reply = app
        .call("GET", &format!("/api/observability/checkpoints/{id}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["verification"]["valid"], false);
    assert!(
        reply.body["verification"]["error"]
            .as_str()
            .unwrap()
            .contains(&id)
    );
}

#[tokio::test]
async fn cleanup_dry_run_reports_without_removing_and_the_real_one_removes() {
    let app = common::app("cleanup").await;
    app.call("POST", "/api/workflows/run-1/execute").await;
    let before = common::snapshot(app.dir.path());
    let dry = app
        .post_json(
            "/api/observability/checkpoints/cleanup",
            r#"{"keep_last": 1, "dry_run": true}"#,
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["dry_run"], true);
    // Retention keeps the last one per agent of the run: 13 checkpoints, 4 agents.
    assert_eq!(dry.body["removed"].as_array().unwrap().len(), 9);
    assert_eq!(
        common::snapshot(app.dir.path()),
        before,
        "a dry run changed the disk"
    );
    let real = app
        .post_json(
            "/api/observability/checkpoints/cleanup",
            r#"{"keep_last": 1}"#,
        )
        .await;
    assert_eq!(
        real.body["removed"].as_array().unwrap().len(),
        9,
        "{}",
        real.text
    );
    let left = app.call("GET", "/api/observability/checkpoints").await;
    assert_eq!(left.body["items"].as_array().unwrap().len(), 4);
    // Issue 11 defect 4: no rules means the configured retention policy (keep 50 per
    // agent and workflow by default), which removes nothing here.
    let empty = app
        .post_json("/api/observability/checkpoints/cleanup", "{}")
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.body["removed"], json!([]));
}

#[tokio::test]
async fn a_run_whose_step_gave_up_waits_and_goes_on_from_its_last_checkpoint() {
    let app = common::app("resume").await;
    let fail = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&fail);
    let mut workflow = bulwark::durable::Workflow::new("three").description("three steps");
    for name in ["a", "b", "c"] {
        let flag = Arc::clone(&flag);
        workflow = workflow.step(name, "agent", move |ctx, mut state: serde_json::Value| {
            let flag = Arc::clone(&flag);
            async move {
                if ctx.step() == "b" && flag.load(Ordering::SeqCst) {
                    // Gives up for now: the run waits until it is called again.
                    return Err(bulwark::durable::StepError::pause("b is down"));
                }
                state[ctx.step()] = json!(ctx.attempt());
                Ok(state)
            }
        });
    }
    app.state.workflows().register(workflow).unwrap();
    let first = app
        .post_json("/api/workflows/r/execute", r#"{"workflow":"three"}"#)
        .await;
    assert_eq!(first.body["status"], "waiting", "{}", first.text);
    assert_eq!(first.body["steps_completed"], 1);
    assert!(first.body["error"].as_str().unwrap().contains("b is down"));
    let saved = first.body["checkpoint_id"].as_str().unwrap().to_owned();

    fail.store(false, Ordering::SeqCst);
    let second = app
        .post_json("/api/workflows/r/execute", r#"{"workflow":"three"}"#)
        .await;
    assert_eq!(second.body["status"], "completed", "{}", second.text);
    assert_eq!(second.body["resumed_from"], saved.as_str());
    assert_eq!(second.body["steps_executed"], 2);
    assert_eq!(second.body["steps_completed"], 3);
    let again = app
        .post_json("/api/workflows/r/execute", r#"{"workflow":"three"}"#)
        .await;
    assert_eq!(
        again.body["steps_executed"], 0,
        "a completed run does nothing more"
    );
}

#[tokio::test]
async fn breakers_open_on_a_failing_tool_degrade_health_and_reset_through_the_api() {
    let app = common::app_with("breakers", |config| {
        config.demo.failure_rate = 1.0;
        config.workflows.max_attempts = 3;
        config.breakers.failure_threshold = 2;
    })
    .await;
    let reply = app.call("GET", "/api/observability/circuit-breakers").await;
    assert_eq!(reply.body["circuit_breakers"], json!([]));

    let run = app.call("POST", "/api/workflows/w/execute").await;
    assert_eq!(run.body["status"], "waiting");
    assert!(
        run.body["error"].as_str().unwrap().contains("is open"),
        "{}",
        run.text
    );

    let reply = app
        .call("GET", "/api/observability/circuit-breakers/search_api")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["state"], "open");
    assert_eq!(reply.body["failures"], 2);
    assert_eq!(reply.body["rejected"], 1);
    let list = app.call("GET", "/api/observability/circuit-breakers").await;
    assert_eq!(list.body["circuit_breakers"][0]["name"], "search_api");

    let health = app.call("GET", "/api/observability/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "degraded");
    assert_eq!(
        health.body["components"]["circuit_breakers"]["status"],
        "degraded"
    );

    let reset = app
        .call(
            "POST",
            "/api/observability/circuit-breakers/search_api/reset",
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
    assert_eq!(reset.body["state"], "closed");
    let health = app.call("GET", "/api/observability/health").await;
    assert_eq!(health.body["status"], "healthy");

    for uri in [
        "/api/observability/circuit-breakers/nope",
        "/api/observability/circuit-breakers/nope/reset",
    ] {
        let method = if uri.ends_with("reset") {
            "POST"
        } else {
            "GET"
        };
        let reply = app.call(method, uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(common::error_code(&reply), "not_found");
    }
}

#[tokio::test]
async fn with_the_postgres_backend_runs_checkpoint_into_postgresql() {
    let url = std::env::var("BULWARK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let app = common::app_with("postgres", |config| {
        config.checkpoints.backend = bulwark_server::config::CheckpointBackend::Postgres;
        config.checkpoints.url = Some(url);
    })
    .await;
    // PostgreSQL outlives the process: a fresh run id per test run.
    let run = format!(
        "pg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let reply = app
        .call("POST", &format!("/api/workflows/{run}/execute"))
        .await;
    assert_eq!(reply.body["status"], "completed", "{}", reply.text);
    let id = reply.body["checkpoint_id"].as_str().unwrap().to_owned();
    let list = app
        .call(
            "GET",
            &format!("/api/observability/checkpoints?workflow_id={run}"),
        )
        .await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        13,
        "the start and three per step: {}",
        list.text
    );
    let detail = app
        .call("GET", &format!("/api/observability/checkpoints/{id}"))
        .await;
    assert_eq!(
        detail.body["verification"]["valid"], true,
        "{}",
        detail.text
    );
    let health = app.call("GET", "/api/observability/health").await;
    assert_eq!(
        health.body["components"]["checkpoint_store"]["status"],
        "healthy"
    );
    assert!(
        files_named(app.dir.path(), &id).is_empty(),
        "nothing went to the fs store"
    );
}
