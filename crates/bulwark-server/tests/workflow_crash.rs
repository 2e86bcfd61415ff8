//! The workflow endpoint after a crash: `bulwark serve` killed with SIGKILL mid-run and
//! restarted recovers the run by itself (no request needed), from its latest checkpoint:
//! the tool calls recorded before the kill are not made again, and the run ends in the same
//! state as an uninterrupted one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark::checkpoint::{CheckpointId, StateCheckpointManager};
use bulwark_server::AppState;

mod common;

use common::{TempDir, http, json_of};

const RUN: &str = "crash-run";

fn final_state(checkpoint_dir: &std::path::Path, id: &str) -> serde_json::Value {
    final_record(checkpoint_dir, id)["state"].clone()
}

fn uninterrupted_state() -> serde_json::Value {
    let dir = TempDir::new("uninterrupted");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (checkpoint_dir, id) = runtime.block_on(async {
        let state = AppState::from_config(&common::config(dir.path()))
            .await
            .unwrap();
        let app = common::App {
            router: bulwark_server::router(state.clone()),
            state,
            dir: TempDir::new("unused"),
        };
        let reply = app
            .call("POST", &format!("/api/workflows/{RUN}/execute"))
            .await;
        assert_eq!(reply.body["steps_executed"], 4, "{}", reply.text);
        (
            app.state.checkpoint_dir().to_owned(),
            reply.body["checkpoint_id"].as_str().unwrap().to_owned(),
        )
    });
    final_state(&checkpoint_dir, &id)
}

#[test]
fn a_run_killed_mid_workflow_resumes_after_restart_and_ends_in_the_uninterrupted_state() {
    let dir = TempDir::new("crash");
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n[demo]\nfailure_rate = 0.0\nlatency = \"300ms\"\n[workflows]\ncheckpoint_every = 1\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();

    let mut first = common::serve(&["--config", &config], &[]);
    let port = first.port;
    let request = std::thread::spawn(move || {
        http(port, "POST", &format!("/api/workflows/{RUN}/execute"), "")
    });
    // Kill once the first step is checkpointed (start, effect started, effect done, step
    // done) and before the run can finish.
    common::wait_for_checkpoints(port, RUN, 5, "the run never checkpointed");
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let cut = request.join().unwrap();
    assert!(
        cut.as_ref().map_or(true, |r| !r.contains("\"completed\"")),
        "the run finished before the kill: {cut:?}"
    );

    let second = common::serve(&["--config", &config], &[]);
    // Recovery on start: the run completes without anybody calling it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run = loop {
        let run = json_of(
            &http(
                second.port,
                "GET",
                &format!("/api/workflows/runs/{RUN}"),
                "",
            )
            .unwrap(),
        );
        if run["status"] == "completed" {
            break run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {run}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // Calling it now finds it done and runs nothing.
    let reply = json_of(
        &http(
            second.port,
            "POST",
            &format!("/api/workflows/{RUN}/execute"),
            "",
        )
        .unwrap(),
    );
    assert_eq!(reply["status"], "completed", "{reply}");
    assert_eq!(reply["steps_executed"], 0, "{reply}");
    assert_eq!(reply["steps_completed"], 4, "{reply}");
    let last = run["history"].as_array().unwrap().last().unwrap()["checkpoint_id"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(second);

    // Each tool call ran once, but for the one in flight at the kill (its outcome unknown, it
    // was made again under the same idempotency key).
    let record = final_record(&dir.path().join("data").join("checkpoints"), &last);
    let calls: Vec<u64> = record["effects"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["calls"].as_u64().unwrap())
        .collect();
    assert_eq!(calls.len(), 4, "{record}");
    assert!(calls.iter().filter(|&&c| c > 1).count() <= 1, "{record}");
    assert!(calls.iter().all(|&c| c <= 2), "{record}");
    assert_eq!(record["state"], uninterrupted_state());
}

fn final_record(checkpoint_dir: &std::path::Path, id: &str) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let manager = StateCheckpointManager::open(checkpoint_dir).await.unwrap();
        let id: CheckpointId = id.parse().unwrap();
        manager.load_json(&id).await.unwrap().1
    })
}
