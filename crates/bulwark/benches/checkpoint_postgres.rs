//! PostgreSQL checkpoint save and load of a 100 KB state beside the floor: a plain
//! `INSERT` / `SELECT` of the same serialized bytes on the same server, in the same run.
//!
//! `cargo bench -p bulwark --features postgres --bench checkpoint_postgres` (needs PostgreSQL
//! at `BULWARK_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bulwark::checkpoint::StateCheckpointManager;
use bulwark::checkpoint::store::{PostgresStore, PostgresStoreOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

/// A chat history of about `target` bytes of JSON: user, assistant (with a tool call) and
/// tool messages, deterministic.
fn chat_history(target: usize) -> Value {
    let mut messages = Vec::new();
    let mut size = 0;
    let mut turn = 0u64;
    while size < target {
        turn += 1;
        let batch = [
            json!({"role": "user", "content": format!("Turn {turn}: find flights to city {} under {} euros and summarise the options", turn % 97, 100 + turn % 400)}),
            json!({"role": "assistant", "content": "Searching the flight database for matching options.",
                   "tool_calls": [{"id": format!("call_{turn}"), "name": "search_flights",
                                   "arguments": format!("{{\"city\":{},\"max_price\":{}}}", turn % 97, 100 + turn % 400)}]}),
            json!({"role": "tool", "tool_call_id": format!("call_{turn}"),
                   "content": format!("[{{\"flight\":\"BW{}\",\"price\":{},\"stops\":{}}},{{\"flight\":\"BW{}\",\"price\":{},\"stops\":0}}]", turn * 7, 90 + turn % 300, turn % 2, turn * 7 + 1, 150 + turn % 250)}),
        ];
        for message in batch {
            size += message.to_string().len();
            messages.push(message);
        }
    }
    json!({"thread_id": "bench", "messages": messages})
}

fn postgres(c: &mut Criterion) {
    let url = std::env::var("BULWARK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let state = chat_history(100 * 1024);
    let bytes = serde_json::to_vec(&state).unwrap();
    let (manager, client, id, raw_id) = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "DROP SCHEMA IF EXISTS bulwark_bench CASCADE; CREATE SCHEMA bulwark_bench;
                 CREATE TABLE bulwark_bench.raw (id BIGSERIAL PRIMARY KEY, data BYTEA NOT NULL);",
            )
            .await
            .unwrap();
        let scoped = format!("{url}?options=-c%20search_path%3Dbulwark_bench");
        let store = PostgresStore::connect(&scoped, PostgresStoreOptions::default())
            .await
            .unwrap();
        let manager = StateCheckpointManager::new(Arc::new(store));
        let id = manager
            .save_checkpoint(&state, "bench", "load")
            .await
            .unwrap();
        let raw_id: i64 = client
            .query_one(
                "INSERT INTO bulwark_bench.raw (data) VALUES ($1) RETURNING id",
                &[&bytes],
            )
            .await
            .unwrap()
            .get(0);
        (manager, client, id, raw_id)
    });
    let stored = runtime.block_on(manager.metadata(&id)).unwrap().stored_size;
    println!(
        "100 KB state: {} bytes of JSON, {stored} bytes stored by bulwark ({:.2}x smaller)",
        bytes.len(),
        bytes.len() as f64 / stored as f64
    );

    let mut group = c.benchmark_group("postgres_100k");
    group.bench_function("bulwark_save", |b| {
        b.to_async(&runtime).iter(|| async {
            manager
                .save_checkpoint(&state, "bench", "save")
                .await
                .unwrap()
        })
    });
    group.bench_function("plain_insert", |b| {
        b.to_async(&runtime).iter(|| async {
            client
                .execute(
                    "INSERT INTO bulwark_bench.raw (data) VALUES ($1)",
                    &[&bytes],
                )
                .await
                .unwrap()
        })
    });
    group.bench_function("bulwark_load", |b| {
        b.to_async(&runtime)
            .iter(|| async { manager.load_checkpoint::<Value>(&id).await.unwrap() })
    });
    group.bench_function("plain_select", |b| {
        b.to_async(&runtime).iter(|| async {
            let row = client
                .query_one(
                    "SELECT data FROM bulwark_bench.raw WHERE id = $1",
                    &[&raw_id],
                )
                .await
                .unwrap();
            let data: Vec<u8> = row.get(0);
            serde_json::from_slice::<Value>(&data).unwrap()
        })
    });
    group.finish();
    runtime.block_on(async {
        client
            .batch_execute("DROP SCHEMA bulwark_bench CASCADE")
            .await
            .unwrap();
    });
}

criterion_group!(benches, postgres);
criterion_main!(benches);
