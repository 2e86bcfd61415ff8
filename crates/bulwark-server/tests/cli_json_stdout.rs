//! `bulwark checkpoints --json ...` prints only JSON on stdout, whatever it logs (issue 12
//! defect 8: log lines on stdout broke `--json verify`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use bulwark::checkpoint::BlockingCheckpointManager;

#[test]
fn json_output_parses_with_logs_at_trace_level_and_the_logs_go_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let manager = BlockingCheckpointManager::open(dir.path()).unwrap();
    let id = manager
        .save_checkpoint(&[1u8; 10], "planner", "trip")
        .unwrap();
    manager
        .save_checkpoint(&[2u8; 10], "planner", "trip")
        .unwrap();
    drop(manager);
    // A damaged file, so that verify has something to log about.
    let path = dir.path().join(format!("{id}.ckpt"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    for args in [&["--json", "verify"][..], &["--json", "ls"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .arg("checkpoints")
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .env_remove("BULWARK_CHECKPOINT_DIR")
            .env("BULWARK_LOG", "trace")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&stdout);
        assert!(
            parsed.is_ok(),
            "{args:?}: stdout is not JSON: {:?}\n{stdout}\nstderr: {stderr}",
            parsed.err()
        );
        if args[1] == "verify" {
            assert!(!out.status.success(), "a corrupt checkpoint fails verify");
            assert!(stdout.contains(&id.to_string()), "{stdout}");
        }
    }
}
