//! A real crash: child processes (this test binary, re-executed) save checkpoints in a loop
//! and print each id once its save has returned; the parent kills them with SIGKILL at a random
//! moment, then every acknowledged checkpoint must load and verify. Two children share one
//! folder in the last rounds, so concurrent processes are covered too.
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
const CHILD_WORKFLOW: &str = "BULWARK_CHECKPOINT_SIGKILL_CHILD_WORKFLOW";

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
    let workflow = std::env::var(CHILD_WORKFLOW).unwrap_or_else(|_| "wf".into());
    let manager = BlockingCheckpointManager::open(dir).unwrap();
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    // Bounded: the parent kills it long before either limit.
    for step in 0..20_000u64 {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let id = manager
            .save_checkpoint(&state(step), "agent", &workflow)
            .unwrap();
        writeln!(out, "ACK {id} {step}").unwrap();
        out.flush().unwrap();
    }
}

struct Child {
    process: std::process::Child,
    reader: std::thread::JoinHandle<()>,
    acks: mpsc::Receiver<(CheckpointId, u64)>,
    workflow: String,
}

fn spawn_child(dir: &std::path::Path, workflow: &str) -> Child {
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child_saves_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_WORKFLOW, workflow)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = process.stdout.take().unwrap();
    let (tx, acks) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (id, step) = rest.split_once(' ').unwrap();
                let _ = tx.send((id.parse().unwrap(), step.parse().unwrap()));
            }
        }
    });
    Child {
        process,
        reader,
        acks,
        workflow: workflow.to_owned(),
    }
}

#[test]
fn every_acknowledged_save_survives_sigkill() {
    let random = RandomState::new().hash_one(std::process::id());
    for (round, children) in [(0u64, 1usize), (1, 1), (2, 2), (3, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let mut running: Vec<Child> = (0..children)
            .map(|k| spawn_child(dir.path(), &format!("wf-{k}")))
            .collect();
        // Wait for each child's first acknowledgement (bounded), then a random extra moment.
        let mut acknowledged: Vec<(String, CheckpointId, u64)> = Vec::new();
        for child in &running {
            let (id, step) = child
                .acks
                .recv_timeout(Duration::from_secs(20))
                .expect("child never saved");
            acknowledged.push((child.workflow.clone(), id, step));
        }
        let delay = Duration::from_millis(20 + (random.rotate_left(round as u32 * 17) % 300));
        std::thread::sleep(delay);
        for child in &mut running {
            child.process.kill().unwrap(); // SIGKILL on Unix
            child.process.wait().unwrap();
        }
        for child in running {
            child.reader.join().unwrap();
            let workflow = child.workflow.clone();
            acknowledged.extend(
                child
                    .acks
                    .try_iter()
                    .map(|(id, step)| (workflow.clone(), id, step)),
            );
        }

        let manager = BlockingCheckpointManager::open(dir.path()).unwrap();
        for (_, id, step) in &acknowledged {
            let loaded: Vec<String> = manager.load_checkpoint(id).unwrap_or_else(|e| {
                panic!("round {round}: acknowledged {id} (step {step}) lost: {e}")
            });
            assert_eq!(loaded, state(*step));
        }
        for k in 0..children {
            let workflow = format!("wf-{k}");
            let last = acknowledged
                .iter()
                .filter(|(w, ..)| *w == workflow)
                .map(|(_, id, _)| *id)
                .max();
            let latest = manager.get_latest_checkpoint("agent", &workflow).unwrap();
            assert!(
                latest >= last,
                "round {round}: latest {latest:?} before acknowledged {last:?}"
            );
        }
        assert!(manager.verify_all().unwrap().is_clean());
    }
}
