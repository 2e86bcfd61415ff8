//! A real crash: a child process (this test binary, re-executed) saves checkpoints in a loop
//! and prints each id once its save has returned; the parent kills it with SIGKILL at a random
//! moment, then every acknowledged checkpoint must load and verify.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bulwark::checkpoint::{BlockingCheckpointManager, CheckpointId};

const CHILD_DIR: &str = "BULWARK_CHECKPOINT_SIGKILL_CHILD_DIR";

fn state(step: u64) -> Vec<String> {
    (0..200)
        .map(|i| format!("step {step} message {i}"))
        .collect()
}

/// The child's body: runs only when re-executed by the parent test with the env var set.
#[test]
#[ignore = "runs only as the child process of every_acknowledged_save_survives_sigkill"]
fn sigkill_child_saves_until_killed() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let manager = BlockingCheckpointManager::open(dir).unwrap();
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    // Bounded: the parent kills it long before either limit.
    for step in 0..20_000u64 {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let id = manager
            .save_checkpoint(&state(step), "agent", "wf")
            .unwrap();
        writeln!(out, "ACK {id} {step}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn every_acknowledged_save_survives_sigkill() {
    let random = RandomState::new().hash_one(std::process::id());
    for round in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_child_saves_until_killed",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let (id, step) = rest.split_once(' ').unwrap();
                    let _ = tx.send((
                        id.parse::<CheckpointId>().unwrap(),
                        step.parse::<u64>().unwrap(),
                    ));
                }
            }
        });
        // Wait for the first acknowledgement (bounded), then a random extra moment.
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("child never saved");
        let delay = Duration::from_millis(20 + (random.rotate_left(round as u32 * 17) % 300));
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        let mut acknowledged = vec![first];
        acknowledged.extend(rx.try_iter());
        assert!(!acknowledged.is_empty());

        let manager = BlockingCheckpointManager::open(dir.path()).unwrap();
        for (id, step) in &acknowledged {
            let loaded: Vec<String> = manager.load_checkpoint(id).unwrap_or_else(|e| {
                panic!("round {round}: acknowledged {id} (step {step}) lost: {e}")
            });
            assert_eq!(loaded, state(*step));
        }
        let last = acknowledged.iter().map(|(id, _)| *id).max();
        let latest = manager.get_latest_checkpoint("agent", "wf").unwrap();
        assert!(
            latest >= last,
            "round {round}: latest {latest:?} before acknowledged {last:?}"
        );
        assert!(manager.verify_all().unwrap().is_clean());
    }
}
