//! Two `bulwark serve` replicas on one PostgreSQL, the same run started on both at once: one
//! runs it under its lease, the other answers 409 naming it (or, arriving after the end, finds
//! it done), and the run's history is one chain, never a fork.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::Value;

mod common;
mod postgres;

/// A fresh schema (see `postgres::fresh_schema`), from a synchronous test.
fn fresh_schema(test: &str) -> Option<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(postgres::fresh_schema(test))
        .map(|(url, _client)| url)
}

fn execute(port: u16, run: &str) -> (u16, Value) {
    let reply = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .post(format!(
            "http://127.0.0.1:{port}/api/workflows/{run}/execute"
        ))
        .send()
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().unwrap_or(Value::Null))
}

// Issue 11 defect 7: the runner's saves are fenced, so two replicas cannot fork a run.
#[test]
fn the_same_run_started_on_two_replicas_at_once_runs_once_and_does_not_fork() {
    let Some(url) = fresh_schema("multi_replica") else {
        return;
    };
    let dir = common::TempDir::new("multi-replica");
    let config = dir.path().join("bulwark.toml");
    // Steps slow enough that the two calls overlap.
    std::fs::write(
        &config,
        format!(
            "[checkpoints]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
             [demo]\nfailure_rate = 0.0\nlatency = \"150ms\"\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let replica = |name: &str| {
        let data = dir.path().join(name).display().to_string();
        common::serve(&["--config", &config, "--data-dir", &data], &[])
    };
    let (one, two) = (replica("one"), replica("two"));

    let start = Arc::new(Barrier::new(2));
    let calls: Vec<_> = [one.port, two.port]
        .into_iter()
        .map(|port| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                execute(port, "shared")
            })
        })
        .collect();
    let mut replies: Vec<(u16, Value)> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    replies.sort_by_key(|(_, body)| std::cmp::Reverse(body["steps_executed"].as_u64()));
    let (ran, other) = (&replies[0], &replies[1]);
    assert_eq!(ran.0, 200, "{replies:?}");
    assert_eq!(ran.1["status"], "completed", "{replies:?}");
    assert_eq!(ran.1["steps_completed"], 4, "{replies:?}");
    match other.0 {
        409 => {
            assert_eq!(other.1["error"]["code"], "conflict", "{replies:?}");
            let message = other.1["error"]["message"].as_str().unwrap();
            assert!(message.contains("running on replica"), "{replies:?}");
        }
        // It arrived after the end: it found the run done and ran nothing.
        200 => assert_eq!(other.1["steps_executed"], 0, "{replies:?}"),
        status => panic!("the second replica answered {status}: {replies:?}"),
    }

    let list = common::json_of(
        &common::http(
            one.port,
            "GET",
            "/api/observability/checkpoints?workflow_id=shared&limit=100",
            "",
        )
        .unwrap(),
    );
    let mut history: Vec<(u64, &Value)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let revision = item["labels"]["bulwark.durable.revision"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            (revision, item)
        })
        .collect();
    history.sort_by_key(|(revision, _)| *revision);
    let revisions: Vec<u64> = history.iter().map(|(revision, _)| *revision).collect();
    let expected: Vec<u64> = (1..=13).collect();
    assert_eq!(
        revisions, expected,
        "the start and three checkpoints per step, no revision twice: {list}"
    );
    // Within each agent the store's own chain has no fork either.
    for (_, item) in &history {
        let siblings = history
            .iter()
            .filter(|(_, other)| {
                other["agent_id"] == item["agent_id"] && other["parent_id"] == item["parent_id"]
            })
            .count();
        assert_eq!(siblings, 1, "two checkpoints share a parent: {list}");
    }
}
