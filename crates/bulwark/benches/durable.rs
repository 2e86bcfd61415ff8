//! Durable step and memoized-effect overhead on the filesystem and PostgreSQL stores, beside
//! LangGraph (a `StateGraph` of trivial nodes, SQLite and PostgreSQL savers) and DBOS
//! Transact (steps in a workflow, same PostgreSQL), in the same run.
//!
//! * `durable/{fs,postgres}/100_steps`: one run of a workflow of 100 trivial steps (each adds
//!   one to a `u64` state), start to completion; every step is a durable checkpoint of the run.
//! * `durable/{fs,postgres}/100_effects`: one run of a single step making 100 trivial memoized
//!   effects (`ctx.effect`), each checkpointed as started and as done before the step goes on.
//!
//! Per step and per effect = the run's time / 100. The PostgreSQL cases use a fresh schema
//! (`bulwark_durable_bench`, dropped and created at start). After the criterion cases the bench
//! runs `scripts/bench-durable.sh` (LangGraph, DBOS; makes its venv on first use,
//! `BULWARK_BENCH_PEERS=0` skips it) and prints the ratios, also written to
//! `target/durable-bench/vs-peers.txt`.
//!
//! `cargo bench -p bulwark --features postgres --bench durable -- --warm-up-time 1 --measurement-time 3`
//! (PostgreSQL at `BULWARK_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/estimates.rs"]
mod estimates;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bulwark::checkpoint::StateCheckpointManager;
use bulwark::checkpoint::store::{PostgresStore, PostgresStoreOptions};
use bulwark::durable::{Executor, RunStatus, StepError, Workflow};
use criterion::{Criterion, criterion_group, criterion_main};
use estimates::criterion_ms;

const N: u64 = 100;
const SCHEMA: &str = "bulwark_durable_bench";

fn url() -> String {
    std::env::var("BULWARK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn steps() -> Workflow<u64> {
    (0..N).fold(Workflow::new("steps"), |workflow, i| {
        workflow.step(
            format!("s{i}"),
            "agent",
            |_ctx, n: u64| async move { Ok(n + 1) },
        )
    })
}

fn effects() -> Workflow<u64> {
    Workflow::new("effects").step("effects", "agent", |ctx, mut n: u64| async move {
        for i in 0..N {
            n += ctx
                .effect(&format!("e{i}"), |_key| async { Ok::<u64, StepError>(1) })
                .await?;
        }
        Ok(n)
    })
}

fn executor(manager: StateCheckpointManager) -> Executor {
    Executor::builder(manager)
        .workflow(steps())
        .workflow(effects())
        .build()
        .unwrap()
}

async fn postgres_manager() -> StateCheckpointManager {
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};"
        ))
        .await
        .unwrap();
    let scoped = format!("{}?options=-c%20search_path%3D{SCHEMA}", url());
    let store = PostgresStore::connect(&scoped, PostgresStoreOptions::default())
        .await
        .unwrap();
    StateCheckpointManager::new(Arc::new(store))
}

fn durable(c: &mut Criterion) {
    let started = SystemTime::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        (
            "fs",
            runtime
                .block_on(StateCheckpointManager::open(dir.path()))
                .unwrap(),
        ),
        ("postgres", runtime.block_on(postgres_manager())),
    ];
    let runs = AtomicU64::new(0);
    let mut group = c.benchmark_group("durable");
    group.sample_size(10);
    for (store, manager) in stores {
        let executor = executor(manager);
        for workflow in ["steps", "effects"] {
            group.bench_function(format!("{store}/{N}_{workflow}"), |b| {
                b.to_async(&runtime).iter(|| async {
                    let id = format!("run-{}", runs.fetch_add(1, Ordering::Relaxed));
                    let run = executor.start_with_id(workflow, &id, &0u64).await.unwrap();
                    assert_eq!(run.status, RunStatus::Completed);
                    assert_eq!(run.state_as::<u64>().unwrap(), N);
                })
            });
        }
    }
    group.finish();
    compare_with_peers(started);
}

/// Runs the Python peers and prints each beside the case it compares with, per step/effect.
fn compare_with_peers(since: SystemTime) {
    if std::env::var("BULWARK_BENCH_PEERS").as_deref() == Ok("0") {
        return;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = workspace.join("target/durable-bench");
    fs::create_dir_all(&root).unwrap();
    let output = std::process::Command::new("bash")
        .arg(workspace.join("scripts/bench-durable.sh"))
        .env("BULWARK_POSTGRES_URL", url())
        .env("BENCH_STEPS", N.to_string())
        .current_dir(&workspace)
        .output();
    let peers: serde_json::Value = match output {
        Ok(output) if output.status.success() => {
            fs::write(root.join("peers.json"), &output.stdout).unwrap();
            serde_json::from_slice(&output.stdout).unwrap_or_default()
        }
        Ok(output) => {
            println!(
                "peer comparison skipped: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("peer comparison skipped: {e}");
            return;
        }
    };
    let n = N as f64;
    let mut report = String::from(
        "per step or effect (ms): bulwark mean / median  vs  peer mean / median  = ratio of means / medians\n",
    );
    let pairs = [
        ("fs/100_steps", "langgraph_sqlite_100_nodes"),
        ("postgres/100_steps", "langgraph_postgres_100_nodes"),
        ("postgres/100_steps", "dbos_100_steps"),
        ("fs/100_effects", "langgraph_sqlite_100_tasks"),
        ("postgres/100_effects", "langgraph_postgres_100_tasks"),
        ("postgres/100_effects", "dbos_100_steps"),
    ];
    for (ours, theirs) in pairs {
        let Some((mean, median)) = criterion_ms("durable", ours, since) else {
            continue;
        };
        let peer = &peers[theirs];
        let Some(peer_mean) = peer["mean_ms"].as_f64() else {
            report.push_str(&format!(
                "{ours:22} {:7.3} / {:7.3}  vs {theirs}: {}\n",
                mean / n,
                median / n,
                peer["skipped"].as_str().unwrap_or("not measured")
            ));
            continue;
        };
        let peer_median = peer["median_ms"].as_f64().unwrap_or(f64::NAN);
        report.push_str(&format!(
            "{ours:22} {:7.3} / {:7.3}  vs {theirs:30} {:7.3} / {:7.3}  = {:.2} / {:.2}\n",
            mean / n,
            median / n,
            peer_mean / n,
            peer_median / n,
            mean / peer_mean,
            median / peer_median,
        ));
    }
    report.push_str(&format!("peers: {}\n", peers["versions"]));
    println!("\nbeside LangGraph and DBOS, same run:\n{report}");
    fs::write(root.join("vs-peers.txt"), report).unwrap();
}

criterion_group!(benches, durable);
criterion_main!(benches);
