//! The workflow endpoint after a crash: `bulwark serve` killed with SIGKILL mid-run and
//! restarted resumes from the run's latest checkpoint, runs only the steps not yet done, and
//! ends in the same state as an uninterrupted run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark::checkpoint::{CheckpointId, StateCheckpointManager};
use bulwark_server::AppState;

mod common;

use common::{TempDir, http, json_of};

const RUN: &str = "crash-run";

fn final_state(checkpoint_dir: &std::path::Path, id: &str) -> serde_json::Value {
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
    // Kill once at least two steps are checkpointed (after the start) and before the run
    // can finish.
    common::wait_for_checkpoints(port, RUN, 3, "the run never checkpointed");
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let cut = request.join().unwrap();
    assert!(
        cut.as_ref().map_or(true, |r| !r.contains("\"completed\"")),
        "the run finished before the kill: {cut:?}"
    );

    let second = common::serve(&["--config", &config], &[]);
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
    let resumed_from = reply["resumed_from"]
        .as_str()
        .expect("the restarted run resumed");
    let resumed = json_of(
        &http(
            second.port,
            "GET",
            &format!("/api/observability/checkpoints/{resumed_from}"),
            "",
        )
        .unwrap(),
    );
    let done_before: u64 = resumed["metadata"]["labels"]["run.step"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..4).contains(&done_before), "{resumed}");
    assert_eq!(
        reply["steps_executed"].as_u64().unwrap(),
        4 - done_before,
        "only the steps not yet done ran again: {reply}"
    );
    assert_eq!(reply["steps_completed"], 4);
    let last = reply["checkpoint_id"].as_str().unwrap().to_owned();
    drop(second);

    let crashed = final_state(&dir.path().join("data").join("checkpoints"), &last);
    assert_eq!(crashed["steps_completed"], 4);
    assert_eq!(crashed, uninterrupted_state());
}
