//! Fenced saves of one workflow from two real OS processes on one folder (issue 11 defect 7):
//! each process reads the workflow's newest checkpoint and saves with
//! `Parent::Expect(newest)`, as two replicas running the same workflow do. Exactly one save
//! may extend any checkpoint: the history must stay a single chain, every refused save must be
//! a `Conflict`, and every acknowledged save must be in it. A check-then-put fence forks the
//! chain here; the fs store's `flock` around the check and the write does not.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulwark::checkpoint::{
    CheckpointError, CheckpointId, ListFilter, Parent, SaveOptions, StateCheckpointManager,
    StoreError,
};

const CHILD_DIR: &str = "BULWARK_CHECKPOINT_FENCE_CHILD_DIR";
const ROUNDS: u64 = 150;

/// The child's body: runs only when re-executed by the parent test with the env var set.
#[test]
#[ignore = "runs only as a child process of fenced_saves_from_two_processes_never_fork"]
fn fence_child_extends_the_workflow() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let manager = StateCheckpointManager::open(&dir).await.unwrap();
        // Start together: the parent creates `go` once both children are ready.
        println!("READY");
        let go = Path::new(&dir).join("go");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !go.exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (mut acknowledged, mut conflicts) = (Vec::new(), 0u64);
        for round in 0..ROUNDS {
            let newest = manager
                .list(&ListFilter::workflow("agent", "run").limit(1))
                .await
                .unwrap()
                .items
                .first()
                .map(|m| m.id);
            let options = SaveOptions::default().parent(Parent::Expect(newest));
            let state = serde_json::json!({ "pid": std::process::id(), "round": round });
            match manager.save_with(&state, "agent", "run", options).await {
                Ok(meta) => acknowledged.push(meta.id),
                Err(CheckpointError::Store(StoreError::Conflict { .. })) => conflicts += 1,
                Err(other) => panic!("a fenced save failed otherwise: {other}"),
            }
        }
        for id in &acknowledged {
            println!("ACK {id}");
        }
        println!("CONFLICTS {conflicts}");
    });
}

fn spawn_child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fence_child_extends_the_workflow",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn fenced_saves_from_two_processes_never_fork() {
    let dir = tempfile::tempdir().unwrap();
    let mut children: Vec<_> = (0..2).map(|_| spawn_child(dir.path())).collect();
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|child| BufReader::new(child.stdout.take().unwrap()).lines())
        .collect();
    for lines in &mut readers {
        // The test harness prints its own lines first.
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.ends_with("READY"));
        assert!(ready, "a child ended before it was ready");
    }
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let (mut acknowledged, mut conflicts) = (Vec::<CheckpointId>::new(), 0u64);
    for lines in readers {
        for line in lines {
            let line = line.unwrap();
            if let Some(id) = line.split_once("ACK ").map(|(_, id)| id) {
                acknowledged.push(id.parse().unwrap());
            } else if let Some(n) = line.strip_prefix("CONFLICTS ") {
                conflicts += n.parse::<u64>().unwrap();
            }
        }
    }
    for child in &mut children {
        assert!(child.wait().unwrap().success(), "a child failed");
    }
    assert_eq!(acknowledged.len() as u64 + conflicts, 2 * ROUNDS);
    assert!(conflicts > 0, "the two processes never raced");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
        let history = manager
            .list(&ListFilter::workflow("agent", "run").oldest_first())
            .await
            .unwrap()
            .items;
        let stored: HashSet<CheckpointId> = history.iter().map(|m| m.id).collect();
        assert_eq!(
            stored,
            acknowledged.iter().copied().collect::<HashSet<_>>(),
            "the folder holds exactly the acknowledged saves"
        );
        let mut parents = HashSet::new();
        for meta in &history {
            assert!(
                parents.insert(meta.parent_id),
                "two checkpoints extend {:?}: the history forked",
                meta.parent_id
            );
        }
        // A single chain: sequences 1..=n, each following the one before.
        for (k, meta) in history.iter().enumerate() {
            assert_eq!(meta.sequence, k as u64 + 1);
            assert_eq!(meta.parent_id, k.checked_sub(1).map(|p| history[p].id));
        }
    });
}
