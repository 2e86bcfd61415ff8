//! `bulwark checkpoints ...` run as a real process on a real folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use bulwark::checkpoint::{BlockingCheckpointManager, CheckpointId};

fn bulwark(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .arg("checkpoints")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env_remove("BULWARK_CHECKPOINT_DIR")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn populated(dir: &Path) -> Vec<CheckpointId> {
    let manager = BlockingCheckpointManager::open(dir).unwrap();
    let mut ids = Vec::new();
    for step in 0..3u32 {
        ids.push(
            manager
                .save_checkpoint(&vec![step; 10], "planner", "trip")
                .unwrap(),
        );
    }
    ids.push(manager.save_checkpoint(&"other", "coder", "build").unwrap());
    ids
}

#[test]
fn ls_lists_newest_first_and_filters_by_agent_and_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let ids = populated(dir.path());
    let out = bulwark(dir.path(), &["ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let positions: Vec<_> = ids
        .iter()
        .map(|id| text.find(&id.to_string()).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] > w[1]),
        "not newest first:\n{text}"
    );

    let out = bulwark(dir.path(), &["ls", "--agent", "planner", "--json"]);
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|m| m["agent_id"] == "planner"));
    let out = bulwark(dir.path(), &["ls", "--workflow", "build", "--json"]);
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items[0]["id"], ids[3].to_string());
}

#[test]
fn show_prints_metadata_and_state_and_refuses_bad_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ids = populated(dir.path());
    let out = bulwark(dir.path(), &["show", &ids[1].to_string(), "--state"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["metadata"]["sequence"], 2);
    assert_eq!(shown["metadata"]["parent_id"], ids[0].to_string());
    assert_eq!(shown["state"], serde_json::json!(vec![1; 10]));

    let out = bulwark(dir.path(), &["show", "../../etc/passwd"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a checkpoint id"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_reports_corruption_by_name_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ids = populated(dir.path());
    let out = bulwark(dir.path(), &["verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("checked 4, valid 4, corrupt 0"));

    let path = dir.path().join(format!("{}.ckpt", ids[0]));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = bulwark(dir.path(), &["verify"]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains(&format!("CORRUPT {}", ids[0])),
        "{}",
        stdout(&out)
    );
    let out = bulwark(dir.path(), &["verify", &ids[0].to_string()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&ids[0].to_string()));
    let out = bulwark(dir.path(), &["verify", &ids[1].to_string()]);
    assert!(out.status.success());
}

#[test]
fn rm_and_cleanup_remove_checkpoints_and_dry_run_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ids = populated(dir.path());
    let out = bulwark(dir.path(), &["rm", &ids[3].to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dir.path().join(format!("{}.ckpt", ids[3])).exists());
    let out = bulwark(dir.path(), &["rm", &ids[3].to_string()]);
    assert!(!out.status.success());

    let out = bulwark(dir.path(), &["cleanup", "--keep", "1", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("would remove 2 of 3"),
        "{}",
        stdout(&out)
    );
    assert!(dir.path().join(format!("{}.ckpt", ids[0])).exists());

    let out = bulwark(dir.path(), &["cleanup", "--keep", "1", "--max-age", "30d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dir.path().join(format!("{}.ckpt", ids[0])).exists());
    assert!(!dir.path().join(format!("{}.ckpt", ids[1])).exists());
    assert!(dir.path().join(format!("{}.ckpt", ids[2])).exists());
}

#[test]
fn a_missing_folder_is_an_error_not_a_new_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = bulwark(&missing, &["ls"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no checkpoint folder"));
    assert!(!missing.exists());
}
