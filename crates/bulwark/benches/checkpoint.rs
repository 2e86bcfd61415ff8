//! Checkpoint save and load, fsync included, against the floor of a raw durable write.
//!
//! `cargo bench -p bulwark --bench checkpoint -- --warm-up-time 1 --measurement-time 3`
//!
//! In the same run, after its own cases, it times LangGraph's SqliteSaver on the same states
//! (`scripts/bench-langgraph.sh`, which makes its Python venv on first use) and prints each
//! default-codec save and load beside `put` and `get_tuple`, mean and median, also written to
//! `target/checkpoint-bench/vs-langgraph.txt`. `BULWARK_BENCH_LANGGRAPH=0` skips that step.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/estimates.rs"]
mod estimates;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark::checkpoint::{Codec, Compression, FsStore, StateCheckpointManager};
use criterion::{Criterion, criterion_group, criterion_main};
use estimates::criterion_ms;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct ToolCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Serialize, Deserialize)]
struct Message {
    role: String,
    content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ChatState {
    thread_id: String,
    step: u64,
    messages: Vec<Message>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "is",
    "for",
    "that",
    "with",
    "on",
    "you",
    "it",
    "this",
    "be",
    "are",
    "as",
    "can",
    "we",
    "flight",
    "hotel",
    "booking",
    "price",
    "search",
    "result",
    "user",
    "agent",
    "plan",
    "step",
    "tool",
    "call",
    "error",
    "retry",
    "database",
    "query",
    "customer",
    "order",
    "refund",
    "policy",
    "travel",
    "date",
    "city",
    "Paris",
    "Berlin",
    "Tokyo",
    "available",
    "options",
    "found",
    "following",
    "please",
    "confirm",
    "summary",
    "total",
    "amount",
    "currency",
    "EUR",
    "USD",
    "schedule",
    "meeting",
    "calendar",
    "email",
    "draft",
    "review",
    "code",
    "function",
    "test",
    "failed",
    "passed",
    "deploy",
    "service",
    "latency",
    "request",
    "response",
    "token",
    "limit",
    "context",
    "memory",
    "document",
    "section",
    "analysis",
    "report",
    "recommendation",
    "because",
    "however",
    "therefore",
    "next",
    "then",
];

fn sentence(rng: &mut Rng, min_words: u64, spread: u64) -> String {
    let words = min_words + rng.below(spread);
    let mut out = String::new();
    for i in 0..words {
        // Skewed toward common words, like text.
        let a = rng.below(WORDS.len() as u64);
        let b = rng.below(WORDS.len() as u64);
        let word = WORDS[(a * b / WORDS.len() as u64) as usize];
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if rng.below(12) == 0 {
            out.push_str(&format!(" {}", rng.below(100_000)));
        }
    }
    out
}

/// A deterministic chat history of at least `target` bytes of JSON.
fn chat_state(target: usize) -> ChatState {
    let mut rng = Rng(0x5EED_0000_0000_0001 ^ target as u64);
    let mut state = ChatState {
        thread_id: "thread-bench".into(),
        step: 0,
        messages: Vec::new(),
    };
    let mut size = 0;
    let mut turn = 0u64;
    while size < target {
        turn += 1;
        let user = Message {
            role: "user".into(),
            content: sentence(&mut rng, 10, 60),
            tool_calls: Vec::new(),
            tool_call_id: None,
        };
        let call_id = format!("call_{turn:06}");
        let assistant = Message {
            role: "assistant".into(),
            content: sentence(&mut rng, 20, 120),
            tool_calls: vec![ToolCall {
                id: call_id.clone(),
                name: ["search_flights", "query_db", "send_email"][rng.below(3) as usize].into(),
                arguments: format!(
                    "{{\"query\":\"{}\",\"limit\":{}}}",
                    sentence(&mut rng, 6, 1),
                    rng.below(50)
                ),
            }],
            tool_call_id: None,
        };
        let tool = Message {
            role: "tool".into(),
            content: sentence(&mut rng, 30, 150),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id),
        };
        for m in [user, assistant, tool] {
            size += serde_json::to_vec(&m).unwrap().len() + 1;
            state.messages.push(m);
        }
    }
    state.step = turn;
    state
}

fn bench_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/checkpoint-bench");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The floor: write the serialized bytes to a temp file, fsync, rename, fsync the folder.
fn raw_durable_write(dir: &Path, name: &str, bytes: &[u8]) {
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
    fs::rename(&temp, dir.join(name)).unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
}

/// A manager over a fresh store in `dir`, and the store (to wait for its compactor). With
/// `before_ack` it compresses before a save returns, as every save did before the compactor.
fn manager(
    dir: &Path,
    compression: Compression,
    parallel: bool,
    before_ack: bool,
) -> (StateCheckpointManager, FsStore) {
    let _ = fs::remove_dir_all(dir);
    let store = FsStore::open(dir).unwrap();
    let manager = StateCheckpointManager::builder(Arc::new(store.clone()))
        .compression(compression)
        .parallel(parallel)
        .compress_before_ack(before_ack)
        .build()
        .unwrap();
    (manager, store)
}

fn checkpoint(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let root = bench_dir();
    let started = std::time::SystemTime::now();
    let mut sizes = String::new();
    // (label, codec, parallel, compress before the acknowledgement)
    let cases: Vec<(&str, Compression, bool, bool)> = vec![
        ("none", Compression::new(Codec::None), false, false),
        ("gzip6", Compression::new(Codec::Gzip), true, true),
        (
            "zstd1-sequential",
            Compression::new(Codec::Zstd).with_level(1),
            false,
            true,
        ),
        // The default: acknowledged in the cheap form, compacted to zstd 1 in the background.
        ("zstd1", Compression::default(), true, false),
        ("zstd1-before-ack", Compression::default(), true, true),
        (
            "zstd3-sequential",
            Compression::new(Codec::Zstd).with_level(3),
            false,
            true,
        ),
        (
            "zstd3",
            Compression::new(Codec::Zstd).with_level(3),
            true,
            true,
        ),
        (
            "zstd6",
            Compression::new(Codec::Zstd).with_level(6),
            true,
            true,
        ),
    ];
    for (label, target) in [("100k", 100 * 1024), ("1m", 1024 * 1024)] {
        let state = chat_state(target);
        let json = serde_json::to_vec(&state).unwrap();
        fs::write(root.join(format!("state-{label}.json")), &json).unwrap();
        let mut group = c.benchmark_group(format!("checkpoint/{label}"));
        group.sample_size(10);

        let floor_dir = root.join(format!("floor-{label}"));
        let _ = fs::remove_dir_all(&floor_dir);
        fs::create_dir_all(&floor_dir).unwrap();
        group.bench_function("floor_write_fsync_rename", |b| {
            b.iter(|| raw_durable_write(&floor_dir, "state.json", &json));
        });

        for (codec, compression, parallel, before_ack) in &cases {
            let dir = root.join(format!("store-{label}-{codec}"));
            let (manager, store) = manager(&dir, *compression, *parallel, *before_ack);
            let state = &state;
            group.bench_function(format!("save/{codec}"), |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let manager = manager.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let started = Instant::now();
                            let id = manager.save_checkpoint(state, "agent", "wf").await.unwrap();
                            total += started.elapsed();
                            // Untimed: keeps the folder small across thousands of iterations.
                            manager.delete(&id).await.unwrap();
                        }
                        total
                    }
                });
            });
            let saved = runtime
                .block_on(manager.save_with(state, "agent", "wf", Default::default()))
                .unwrap();
            // Loads and sizes are of the compacted form, as the compactor leaves it.
            store.compact_pending_blocking();
            let mut meta = runtime.block_on(manager.metadata(&saved.id)).unwrap();
            // The background thread may hold the last one.
            while meta.codec != compression.codec {
                std::thread::sleep(Duration::from_millis(5));
                meta = runtime.block_on(manager.metadata(&saved.id)).unwrap();
            }
            sizes.push_str(&format!(
                "{label} {codec}: {} -> {} bytes ({:.1}% of the state)\n",
                meta.uncompressed_size,
                meta.stored_size,
                100.0 * meta.compression_ratio()
            ));
            if !codec.ends_with("-sequential") {
                let id = meta.id;
                group.bench_function(format!("load/{codec}"), |b| {
                    b.to_async(&runtime).iter(|| {
                        let manager = manager.clone();
                        async move { manager.load_checkpoint::<ChatState>(&id).await.unwrap() }
                    });
                });
            }
        }
        group.finish();
    }
    println!("\nstored sizes:\n{sizes}");
    fs::write(root.join("stored-sizes.txt"), sizes).unwrap();
    compare_with_langgraph(&root, started);
}

/// Runs LangGraph's saver on the states this run wrote and prints the default codec's save
/// and load beside `put` and `get_tuple`.
fn compare_with_langgraph(root: &Path, since: std::time::SystemTime) {
    if std::env::var("BULWARK_BENCH_LANGGRAPH").as_deref() == Ok("0") {
        return;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let states: Vec<PathBuf> = ["100k", "1m"]
        .iter()
        .map(|label| root.join(format!("state-{label}.json")))
        .collect();
    let output = std::process::Command::new("bash")
        .arg(workspace.join("scripts/bench-langgraph.sh"))
        .args(&states)
        .current_dir(&workspace)
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            println!(
                "LangGraph comparison skipped: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("LangGraph comparison skipped: {e}");
            return;
        }
    };
    let mut report = String::from(
        "state  operation  bulwark mean / median (ms)  langgraph mean / median (ms)  ratio of means / medians\n",
    );
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(peer) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let state = peer["state"].as_str().unwrap_or_default();
        let label = state.trim_start_matches("state-").trim_end_matches(".json");
        let group = format!("checkpoint_{label}");
        for (ours, theirs) in [("save_zstd1", "put"), ("load_zstd1", "get_tuple")] {
            let Some((mean, median)) = criterion_ms(&group, ours, since) else {
                continue;
            };
            let peer_mean = peer[theirs]["mean_ms"].as_f64().unwrap_or(f64::NAN);
            let peer_median = peer[theirs]["median_ms"].as_f64().unwrap_or(f64::NAN);
            report.push_str(&format!(
                "{label:5}  {ours:10} {mean:8.3} / {median:6.3}  vs {theirs:9} {peer_mean:8.3} / {peer_median:6.3}  {:.2} / {:.2}\n",
                mean / peer_mean,
                median / peer_median,
            ));
        }
        report.push_str(&format!(
            "{label:5}  stored: LangGraph {} bytes (see stored sizes above for Bulwark's)\n",
            peer["stored_bytes"]
        ));
    }
    println!("\nbeside LangGraph's SqliteSaver, same run:\n{report}");
    fs::write(root.join("vs-langgraph.txt"), report).unwrap();
}

criterion_group!(benches, checkpoint);
criterion_main!(benches);
