//! Checkpoint writes at agent scale, beside LangGraph in the same run (docs/PERFORMANCE.md):
//!
//! 1. 16 writers (tasks, one workflow each) saving the 100 KB chat state for
//!    `BULWARK_BENCH_SECONDS` (10) s on the default filesystem store: saves/s, p50 and p99;
//!    then the same with group commit off, and the floor of the alternative layout (one
//!    append-only segment file, one `fdatasync` per group of appends) — the two designs of
//!    the group-commit choice;
//! 2. one writer at a sustained 50 saves/s: how long a checkpoint stays uncompressed and the
//!    compactor's time per MB;
//! 3. LangGraph's `put` from 16 threads for the same time on SqliteSaver and on PostgresSaver
//!    on the local PostgreSQL (`scripts/bench-langgraph-concurrent.sh`;
//!    `BULWARK_BENCH_LANGGRAPH=0` skips it, `BULWARK_POSTGRES_URL` names the server).
//!
//! Needs `target/checkpoint-bench/state-100k.json`, which `cargo bench --bench checkpoint`
//! writes. Throughput over a fixed time is not criterion's shape, so this is a plain program.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bulwark::checkpoint::store::io::StdIo;
use bulwark::checkpoint::{FsStore, FsStoreOptions, StateCheckpointManager};

const WRITERS: usize = 16;

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/checkpoint-bench")
}

struct Run {
    saves: usize,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Run {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Run {
        saves: latencies.len(),
        per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

fn store(dir: &Path, group_commit: bool) -> FsStore {
    let _ = fs::remove_dir_all(dir);
    let mut options = FsStoreOptions::default();
    options.group_commit = group_commit;
    FsStore::open_with(dir, Arc::new(StdIo), options).unwrap()
}

fn bulwark_writers(
    runtime: &tokio::runtime::Runtime,
    store: &FsStore,
    state: &Arc<serde_json::Value>,
    seconds: f64,
) -> Run {
    let manager = StateCheckpointManager::new(Arc::new(store.clone()));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let latencies = runtime.block_on(async {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|k| {
                let (manager, state) = (manager.clone(), Arc::clone(state));
                tokio::spawn(async move {
                    let workflow = format!("wf-{k}");
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        manager
                            .save_checkpoint(&*state, "agent", &workflow)
                            .await
                            .unwrap();
                        latencies.push(t0.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    summarize(latencies, started.elapsed())
}

/// The other design's floor: every writer appends its record to one segment file and waits
/// for an `fdatasync` that started after its append (the same leader/follower grouping).
fn segment_log_floor(dir: &Path, bytes: &[u8], seconds: f64) -> Run {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    let file = Arc::new(Mutex::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("segment.log"))
            .unwrap(),
    ));
    // (started, finished, running)
    let group = Arc::new((Mutex::new((0u64, 0u64, false)), Condvar::new()));
    let sync_file = File::open(dir.join("segment.log")).unwrap();
    let sync_file = Arc::new(sync_file);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (file, group, sync_file) = (&file, &group, &sync_file);
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        file.lock().unwrap().write_all(bytes).unwrap();
                        let (lock, cond) = &**group;
                        let mut g = lock.lock().unwrap();
                        let ticket = g.0 + 1;
                        while g.1 < ticket {
                            if g.2 {
                                g = cond.wait(g).unwrap();
                                continue;
                            }
                            g.2 = true;
                            g.0 += 1;
                            let number = g.0;
                            drop(g);
                            sync_file.sync_data().unwrap();
                            g = lock.lock().unwrap();
                            g.2 = false;
                            g.1 = number;
                            cond.notify_all();
                        }
                        drop(g);
                        latencies.push(t0.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let _ = fs::remove_dir_all(dir);
    summarize(latencies, started.elapsed())
}

/// One writer at `rate` saves/s for `seconds`: the compactor's lag and time per MB.
fn sustained(runtime: &tokio::runtime::Runtime, dir: &Path, state: &serde_json::Value) -> String {
    let (rate, seconds) = (50.0, 10.0);
    let store = store(dir, true);
    let manager = StateCheckpointManager::new(Arc::new(store.clone()));
    let started = Instant::now();
    let n = (rate * seconds) as u32;
    runtime.block_on(async {
        for k in 0..n {
            let due = started + Duration::from_secs_f64(f64::from(k) / rate);
            tokio::time::sleep_until(due.into()).await;
            manager.save_checkpoint(state, "agent", "wf").await.unwrap();
        }
    });
    // Let the queue drain, then read the figures.
    let drain = Instant::now();
    while store.compaction_stats().queued > 0 && drain.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let stats = store.compaction_stats();
    let mb = stats.bytes_before as f64 / 1e6;
    let line = format!(
        "sustained {rate} saves/s x {seconds} s, 100 KB: {} of {n} compacted, uncompressed for {:.1} ms on average (max {:.1} ms), compactor {:.2} ms per MB of state, {:.1}% of the cheap form's bytes stored",
        stats.compacted,
        stats.total_lag.as_secs_f64() * 1e3 / stats.compacted.max(1) as f64,
        stats.max_lag.as_secs_f64() * 1e3,
        stats.busy.as_secs_f64() * 1e3 / mb,
        100.0 * stats.bytes_after as f64 / stats.bytes_before.max(1) as f64,
    );
    drop(manager);
    drop(store);
    let _ = fs::remove_dir_all(dir);
    line
}

fn main() {
    let root = bench_dir();
    let state_path = root.join("state-100k.json");
    let Ok(bytes) = fs::read(&state_path) else {
        eprintln!(
            "missing {}: run cargo bench -p bulwark --bench checkpoint first",
            state_path.display()
        );
        std::process::exit(1);
    };
    let state: Arc<serde_json::Value> = Arc::new(serde_json::from_slice(&bytes).unwrap());
    let seconds: f64 = std::env::var("BULWARK_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut report = String::new();
    let mut line = |text: String| {
        println!("{text}");
        report.push_str(&text);
        report.push('\n');
    };
    let dir = root.join("concurrent-store");
    for (label, group_commit) in [
        ("group commit (default)", true),
        ("group commit off", false),
    ] {
        let store = store(&dir, group_commit);
        let run = bulwark_writers(&runtime, &store, &state, seconds);
        let commit = store.commit_stats();
        let compaction = store.compaction_stats();
        line(format!(
            "bulwark 16 writers, {label}: {} saves, {:.0} saves/s, p50 {:.2} ms, p99 {:.2} ms; {:.1} saves per folder flush; {} compacted during the run, {} queued at the end",
            run.saves,
            run.per_s,
            run.p50_ms,
            run.p99_ms,
            commit.grouped_saves as f64 / commit.flushes.max(1) as f64,
            compaction.compacted,
            compaction.queued,
        ));
        drop(store);
        let _ = fs::remove_dir_all(&dir);
    }
    let floor = segment_log_floor(&root.join("segment-floor"), &bytes, seconds);
    line(format!(
        "floor of a segment log (append + grouped fdatasync, no encoding, no index), 16 writers: {:.0} saves/s, p50 {:.2} ms, p99 {:.2} ms",
        floor.per_s, floor.p50_ms, floor.p99_ms
    ));
    line(sustained(&runtime, &root.join("sustained-store"), &state));
    if std::env::var("BULWARK_BENCH_LANGGRAPH").as_deref() != Ok("0") {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let url = std::env::var("BULWARK_POSTGRES_URL")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into());
        let output = std::process::Command::new("bash")
            .arg(workspace.join("scripts/bench-langgraph-concurrent.sh"))
            .arg(&state_path)
            .arg(seconds.to_string())
            .arg(WRITERS.to_string())
            .arg(url)
            .current_dir(&workspace)
            .output()
            .unwrap();
        if !output.status.success() {
            line(format!(
                "LangGraph comparison failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        for peer in String::from_utf8_lossy(&output.stdout).lines() {
            line(format!("langgraph {peer}"));
        }
    }
    fs::write(root.join("concurrent.txt"), report).unwrap();
}
