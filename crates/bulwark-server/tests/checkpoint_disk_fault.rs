//! The disk-fault contract (issue 12 defects 4, 5 and 7): damaged checkpoint files with and
//! without the index, a forged index record with a valid CRC, and a folder that cannot be
//! written. Each answer is a typed one (`valid: false` with the reason, 503 `unavailable`),
//! health says what is wrong, and nothing that was valid is lost.
//!
//! The unwritable folder is made by replacing the checkpoint folder with a plain file while
//! the server runs (every path under it then fails with `ENOTDIR`): the suite runs as root in
//! CI, where permission bits and read-only binds do not stop writes, and `chattr +i` needs a
//! filesystem that supports it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use bulwark_server::{AppState, router};
use http::StatusCode;
use serde_json::{Value, json};

use common::App;

/// Saves `n` checkpoints of `workflow` owned by the `writer` agent and returns their ids.
async fn seed(app: &App, workflow: &str, n: usize) -> Vec<String> {
    let manager = app.state.checkpoint_manager();
    let mut ids = Vec::new();
    for step in 0..n {
        let state = json!({"workflow": workflow, "step": step, "notes": "x".repeat(100)});
        let id = manager
            .save_checkpoint(&state, "writer", workflow)
            .await
            .unwrap();
        ids.push(id.to_string());
    }
    ids
}

/// The same data folder served by a freshly started server (the store rebuilds its index).
async fn restart(app: App) -> App {
    let App { dir, .. } = app;
    let state = AppState::from_config(&common::config(dir.path()))
        .await
        .unwrap();
    App {
        router: router(state.clone()),
        state,
        dir,
    }
}

fn checkpoint_dir(app: &App) -> PathBuf {
    app.state.checkpoint_dir().to_owned()
}

fn file_of(app: &App, id: &str) -> PathBuf {
    checkpoint_dir(app).join(format!("{id}.ckpt"))
}

fn flip(path: &Path, offset: Option<usize>) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = offset.unwrap_or(bytes.len() - 1);
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

async fn show(app: &App, id: &str) -> common::Reply {
    app.call("GET", &format!("/api/observability/checkpoints/{id}"))
        .await
}

async fn assert_all_valid(app: &App, ids: &[String]) {
    for id in ids {
        let reply = show(app, id).await;
        assert_eq!(reply.status, StatusCode::OK, "{id}: {}", reply.text);
        assert_eq!(
            reply.body["verification"]["valid"], true,
            "{id}: {}",
            reply.text
        );
    }
}

fn listed(reply: &common::Reply) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_damaged_header_outside_the_index_is_invalid_not_a_500_and_health_is_degraded() {
    let app = common::app("fault-header").await;
    let ids = seed(&app, "run-a", 4).await;
    // A header byte inside the metadata: its CRC no longer matches.
    flip(&file_of(&app, &ids[1]), Some(40));
    std::fs::remove_file(checkpoint_dir(&app).join("index.log")).unwrap();
    let app = restart(app).await;

    let reply = show(&app, &ids[1]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["verification"]["valid"], false);
    let reason = reply.body["verification"]["error"].as_str().unwrap();
    assert!(reason.contains("checksum"), "{reason}");
    assert!(reply.body["metadata"].is_null(), "{}", reply.text);

    let list = app.call("GET", "/api/observability/checkpoints").await;
    assert_eq!(list.status, StatusCode::OK);
    let mut valid: Vec<String> = ids.iter().filter(|id| **id != ids[1]).cloned().collect();
    valid.reverse();
    assert_eq!(
        listed(&list),
        valid,
        "newest first, the damaged one left out"
    );
    assert_eq!(list.body["unreadable"][0]["id"], ids[1].as_str());
    assert!(
        list.body["unreadable"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("checksum")
    );

    let health = app.call("GET", "/api/observability/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "degraded", "{}", health.text);
    let detail = health.body["components"]["checkpoint_store"]["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains(&ids[1]), "{detail}");
    assert_all_valid(&app, &valid).await;
}

#[tokio::test]
async fn damaged_files_known_to_the_index_are_invalid_with_the_reason() {
    let app = common::app("fault-indexed").await;
    let ids = seed(&app, "run-b", 3).await;
    flip(&file_of(&app, &ids[0]), Some(40)); // header
    flip(&file_of(&app, &ids[1]), None); // the payload's last byte (a zstd frame checksum)
    let app = restart(app).await;
    for damaged in &ids[..2] {
        let reply = show(&app, damaged).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["verification"]["valid"], false, "{}", reply.text);
        assert!(reply.body["verification"]["error"].is_string());
        assert_eq!(
            reply.body["metadata"]["id"],
            damaged.as_str(),
            "the index's copy"
        );
    }
    let latest = app
        .state
        .checkpoint_manager()
        .latest_valid("writer", "run-b")
        .await
        .unwrap();
    assert_eq!(latest.metadata.unwrap().id.to_string(), ids[2]);
    assert_all_valid(&app, &ids[2..]).await;
}

#[tokio::test]
async fn a_forged_index_record_does_not_override_the_verified_header() {
    // Compressed before the save returns, so that no background compaction rewrites the
    // forged checkpoint's index record while the test looks at it.
    let app = common::app_with("fault-forged", |config| {
        config.checkpoints.compress_before_ack = true;
    })
    .await;
    let ids = seed(&app, "run-a", 2).await;
    let mut meta: Value = show(&app, &ids[1]).await.body["metadata"].clone();
    meta["workflow_id"] = json!("forged-wf");
    meta["sequence"] = json!(1);
    meta["parent_id"] = Value::Null;
    let record = serde_json::to_vec(&json!({"op": "put", "meta": meta})).unwrap();
    let mut line = format!("{:08x} ", crc32fast::hash(&record)).into_bytes();
    line.extend_from_slice(&record);
    line.push(b'\n');
    let log = checkpoint_dir(&app).join("index.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&line);
    std::fs::write(&log, bytes).unwrap();
    let app = restart(app).await;

    let reply = show(&app, &ids[1]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body["metadata"]["workflow_id"], "run-a",
        "the verified header"
    );
    assert_eq!(reply.body["metadata"]["sequence"], 2);
    assert!(
        reply.body["verification"]["index_mismatch"]
            .as_str()
            .unwrap()
            .contains("forged-wf"),
        "{}",
        reply.text
    );
    // Resuming the forged workflow must not pick up run-a's state.
    let latest = app
        .state
        .checkpoint_manager()
        .latest_valid("writer", "forged-wf")
        .await
        .unwrap();
    assert_eq!(latest.metadata, None);
    assert_eq!(latest.skipped[0].id.to_string(), ids[1]);
}

#[tokio::test]
async fn an_unwritable_folder_answers_503_with_the_reason_and_loses_nothing() {
    let app = common::app("fault-unwritable").await;
    let ids = seed(&app, "run-c", 3).await;
    let dir = checkpoint_dir(&app);
    let away = dir.with_extension("away");
    std::fs::rename(&dir, &away).unwrap();
    std::fs::write(&dir, b"not a folder").unwrap();

    let unavailable = |reply: &common::Reply, what: &str| {
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {}",
            reply.text
        );
        assert_eq!(common::error_code(reply), "unavailable", "{what}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("checkpoints"),
            "{what}: the reason names the folder: {}",
            reply.text
        );
    };
    let list = app.call("GET", "/api/observability/checkpoints").await;
    unavailable(&list, "list");
    let delete = app
        .call(
            "DELETE",
            &format!("/api/observability/checkpoints/{}", ids[0]),
        )
        .await;
    unavailable(&delete, "delete");
    let cleanup = app
        .post_json(
            "/api/observability/checkpoints/cleanup",
            r#"{"keep_last": 1}"#,
        )
        .await;
    unavailable(&cleanup, "cleanup");
    let health = app.call("GET", "/api/observability/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        health.body["components"]["checkpoint_store"]["status"],
        "unhealthy"
    );
    let save = app
        .state
        .checkpoint_manager()
        .save_checkpoint(&json!({"late": true}), "writer", "run-c")
        .await;
    assert!(save.is_err(), "a save into a missing folder succeeded");

    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&away, &dir).unwrap();
    let list = app.call("GET", "/api/observability/checkpoints").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(listed(&list), expected, "every checkpoint is still there");
    assert_all_valid(&app, &ids).await;
}
