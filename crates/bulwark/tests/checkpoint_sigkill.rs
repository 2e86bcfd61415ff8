//! A real crash: child processes (this test binary, re-executed) save checkpoints in a loop
//! and print each id once its save has returned; the parent kills them with SIGKILL at a random
//! moment, then every acknowledged checkpoint must load and verify. Two children share one
//! folder in the later rounds, so concurrent processes are covered too; one round runs 16
//! writer threads in one child (their saves share folder flushes and the compactor runs
//! beside them), another two children that both extend one workflow with fenced saves.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bulwark::checkpoint::{
    BlockingCheckpointManager, CheckpointError, CheckpointId, FsStore, ListFilter, Parent,
    SaveOptions, StateCheckpointManager, StoreError,
};

const CHILD_DIR: &str = "BULWARK_CHECKPOINT_SIGKILL_CHILD_DIR";
const CHILD_WORKFLOW: &str = "BULWARK_CHECKPOINT_SIGKILL_CHILD_WORKFLOW";
/// `plain` (one writer), `writers` (16 threads, workflows `<workflow>-<t>`) or `fenced`.
const CHILD_MODE: &str = "BULWARK_CHECKPOINT_SIGKILL_CHILD_MODE";
const WRITERS: usize = 16;

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
    let mode = std::env::var(CHILD_MODE).unwrap_or_else(|_| "plain".into());
    let store = Arc::new(FsStore::open(dir).unwrap());
    let out = Mutex::new(std::io::stdout());
    let writers = if mode == "writers" { WRITERS } else { 1 };
    std::thread::scope(|scope| {
        for t in 0..writers {
            let (store, out, mode) = (Arc::clone(&store), &out, mode.as_str());
            let workflow = if mode == "writers" {
                format!("{workflow}-{t}")
            } else {
                workflow.clone()
            };
            scope.spawn(move || write_until_killed(store, out, mode, &workflow));
        }
    });
}

fn write_until_killed(
    store: Arc<FsStore>,
    out: &Mutex<std::io::Stdout>,
    mode: &str,
    workflow: &str,
) {
    let manager = BlockingCheckpointManager::new(StateCheckpointManager::new(store)).unwrap();
    let started = Instant::now();
    // Bounded: the parent kills it long before either limit.
    for step in 0..20_000u64 {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let id = if mode == "fenced" {
            let newest = manager.get_latest_checkpoint("agent", workflow).unwrap();
            let options = SaveOptions::default().parent(Parent::Expect(newest));
            match manager.save_with(&state(step), "agent", workflow, options) {
                Ok(meta) => meta.id,
                Err(CheckpointError::Store(StoreError::Conflict { .. })) => continue,
                Err(e) => panic!("fenced save failed: {e}"),
            }
        } else {
            manager
                .save_checkpoint(&state(step), "agent", workflow)
                .unwrap()
        };
        let mut out = out.lock().unwrap();
        writeln!(out, "ACK {id} {step} {workflow}").unwrap();
        out.flush().unwrap();
    }
}

struct Child {
    process: std::process::Child,
    reader: std::thread::JoinHandle<()>,
    acks: mpsc::Receiver<(CheckpointId, u64, String)>,
}

fn spawn_child(dir: &std::path::Path, workflow: &str, mode: &str) -> Child {
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
        .env(CHILD_MODE, mode)
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
                let mut parts = rest.split(' ');
                let (id, step, workflow) = (parts.next(), parts.next(), parts.next());
                let _ = tx.send((
                    id.unwrap().parse().unwrap(),
                    step.unwrap().parse().unwrap(),
                    workflow.unwrap().to_owned(),
                ));
            }
        }
    });
    Child {
        process,
        reader,
        acks,
    }
}

#[test]
fn every_acknowledged_save_survives_sigkill() {
    let random = RandomState::new().hash_one(std::process::id());
    let rounds: [(u64, usize, &str); 6] = [
        (0, 1, "plain"),
        (1, 1, "plain"),
        (2, 2, "plain"),
        (3, 2, "plain"),
        (4, 1, "writers"),
        (5, 2, "fenced"),
    ];
    for (round, children, mode) in rounds {
        let dir = tempfile::tempdir().unwrap();
        let mut running: Vec<Child> = (0..children)
            .map(|k| {
                // Fenced children share one workflow: they race to extend it.
                let workflow = if mode == "fenced" {
                    "wf-shared".to_owned()
                } else {
                    format!("wf-{k}")
                };
                spawn_child(dir.path(), &workflow, mode)
            })
            .collect();
        // Wait for each child's first acknowledgement (bounded), then a random extra moment.
        let mut acknowledged: Vec<(String, CheckpointId, u64)> = Vec::new();
        for child in &running {
            let (id, step, workflow) = child
                .acks
                .recv_timeout(Duration::from_secs(20))
                .expect("child never saved");
            acknowledged.push((workflow, id, step));
        }
        let delay = Duration::from_millis(20 + (random.rotate_left(round as u32 * 17) % 300));
        std::thread::sleep(delay);
        for child in &mut running {
            child.process.kill().unwrap(); // SIGKILL on Unix
            child.process.wait().unwrap();
        }
        for child in running {
            child.reader.join().unwrap();
            acknowledged.extend(
                child
                    .acks
                    .try_iter()
                    .map(|(id, step, workflow)| (workflow, id, step)),
            );
        }
        check_round(round, dir.path(), &acknowledged, mode);
    }
}

fn check_round(
    round: u64,
    dir: &std::path::Path,
    acknowledged: &[(String, CheckpointId, u64)],
    mode: &str,
) {
    let manager = BlockingCheckpointManager::open(dir).unwrap();
    for (_, id, step) in acknowledged {
        let loaded: Vec<String> = manager
            .load_checkpoint(id)
            .unwrap_or_else(|e| panic!("round {round}: acknowledged {id} (step {step}) lost: {e}"));
        assert_eq!(loaded, state(*step));
    }
    let workflows: HashSet<&String> = acknowledged.iter().map(|(w, ..)| w).collect();
    if mode == "writers" {
        assert_eq!(
            workflows.len(),
            WRITERS,
            "round {round}: every writer saved"
        );
    }
    for workflow in workflows {
        let last = acknowledged
            .iter()
            .filter(|(w, ..)| w == workflow)
            .map(|(_, id, _)| *id)
            .max();
        let latest = manager.get_latest_checkpoint("agent", workflow).unwrap();
        assert!(
            latest >= last,
            "round {round}: latest {latest:?} before acknowledged {last:?}"
        );
        if mode == "fenced" {
            // One chain: no checkpoint is extended twice, whichever process was killed when.
            let history = manager
                .list(&ListFilter::workflow("agent", workflow.as_str()))
                .unwrap()
                .items;
            let mut parents = HashSet::new();
            for meta in &history {
                assert!(
                    parents.insert(meta.parent_id),
                    "round {round}: two checkpoints extend {:?}",
                    meta.parent_id
                );
            }
        }
    }
    assert!(manager.verify_all().unwrap().is_clean());
}
