//! Recovery without a person, end to end on PostgreSQL with the test-only `counted` workflow
//! (`workflows.test_counter_url`: a fan-out of three agents and a final step, each making one
//! memoized effect that counts its calls in a PostgreSQL table and applies its idempotency key
//! once):
//! - `bulwark serve` killed with SIGKILL at random points while 50 runs go, restarted each
//!   time: every run completes, every effect key is applied exactly once, and each final state
//!   is the one an uninterrupted run has;
//! - two `bulwark serve` on one database, one killed mid-run: the other takes its runs over
//!   once their leases expire and finishes them, and no run's final step ever ran on both at
//!   once (from the table the step writes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
mod postgres;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn write_config(dir: &std::path::Path, name: &str, url: &str, lease: &str) -> String {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\ndata_dir = \"{}\"\n\
             [checkpoints]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
             [ratelimit]\nworkflow_max_requests = 1000\n\
             [workflows]\nreplica = \"{name}\"\nlease_ttl = \"{lease}\"\ntest_counter_url = \"{url}\"\n",
            dir.join(name).display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn web() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn execute(port: u16, run: &str) {
    // Any answer (or none: the server may be killed meanwhile) will do.
    let _ = web()
        .post(format!(
            "http://127.0.0.1:{port}/api/workflows/{run}/execute"
        ))
        .json(&json!({"workflow": "counted"}))
        .send();
}

fn run_of(port: u16, run: &str) -> Option<Value> {
    let reply = web()
        .get(format!("http://127.0.0.1:{port}/api/workflows/runs/{run}"))
        .send()
        .ok()?;
    (reply.status() == 200).then(|| reply.json().unwrap())
}

/// The state an uninterrupted run of `run` ends in.
fn uninterrupted(run: &str) -> Value {
    json!({
        "keys": (0..3).map(|b| format!("{run}/gather/b{b}/count")).collect::<Vec<_>>(),
        "last": format!("{run}/finish/count"),
    })
}

/// Waits until every run is completed on `port`, starting the ones that never started.
fn finish_all(port: u16, runs: &[String], within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    runs.iter()
        .map(|run| {
            loop {
                match run_of(port, run) {
                    Some(record) if record["status"] == "completed" => break record,
                    None => execute(port, run),
                    Some(_) => std::thread::sleep(Duration::from_millis(50)),
                }
                assert!(Instant::now() < deadline, "run {run} never completed");
            }
        })
        .collect()
}

/// Every key once in the effect table, and how many keys were called more than once (an
/// effect in flight at a kill has an unknown outcome and is called again under its key).
fn applied_once(
    rt: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    runs: &[String],
) -> i64 {
    // The client's connection runs on `rt`.
    rt.block_on(async {
        let rows = client
            .query(
                "SELECT key, calls FROM bulwark_test_effects ORDER BY key",
                &[],
            )
            .await
            .unwrap();
        let mut keys: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        let mut expected: Vec<String> = runs
            .iter()
            .flat_map(|run| {
                let all = uninterrupted(run);
                let mut keys: Vec<String> = serde_json::from_value(all["keys"].clone()).unwrap();
                keys.push(all["last"].as_str().unwrap().to_owned());
                keys
            })
            .collect();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected, "each effect key applied exactly once");
        rows.iter().filter(|r| r.get::<_, i32>(1) > 1).count() as i64
    })
}

#[test]
fn fifty_runs_survive_random_sigkills_with_each_effect_applied_once() {
    let rt = runtime();
    let Some((url, client)) = rt.block_on(postgres::fresh_schema("sigkill_loop")) else {
        return;
    };
    let started = Instant::now();
    let dir = common::TempDir::new("sigkill-loop");
    let runs: Vec<String> = (0..50).map(|i| format!("k-{i}")).collect();
    let mut kills = 0;
    for round in 0..5 {
        // A new name each life, like a restarted pod: the dead one's leases must expire.
        let config = write_config(dir.path(), &format!("life-{round}"), &url, "1s");
        let server = common::serve(&["--config", &config], &[]);
        let port = server.port;
        let share: Vec<Vec<String>> = (0..10)
            .map(|t| runs.iter().skip(t).step_by(10).cloned().collect())
            .collect();
        let posters: Vec<_> = share
            .into_iter()
            .map(|mine| {
                std::thread::spawn(move || {
                    for run in mine {
                        if run_of(port, &run).is_none() {
                            execute(port, &run);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(fastrand::u64(150..700)));
        let mut server = server;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        kills += 1;
        for poster in posters {
            poster.join().unwrap();
        }
    }
    let config = write_config(dir.path(), "last-life", &url, "1s");
    let server = common::serve(&["--config", &config], &[]);
    let records = finish_all(server.port, &runs, Duration::from_secs(60));
    for (run, record) in runs.iter().zip(&records) {
        assert_eq!(record["state"], uninterrupted(run), "{record}");
    }
    let recalled = applied_once(&rt, &client, &runs);
    eprintln!(
        "{kills} kills, {recalled} effect(s) called again after an unknown outcome, {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(90));
}

#[test]
fn a_second_replica_takes_over_a_killed_ones_runs_after_their_leases_expire() {
    let rt = runtime();
    let Some((url, client)) = rt.block_on(postgres::fresh_schema("takeover")) else {
        return;
    };
    let dir = common::TempDir::new("takeover");
    let (config_a, config_b) = (
        write_config(dir.path(), "replica-a", &url, "2s"),
        write_config(dir.path(), "replica-b", &url, "2s"),
    );
    let runs: Vec<String> = (0..12).map(|i| format!("t-{i}")).collect();
    let mut left_running = Vec::new();
    let b = common::serve(&["--config", &config_b], &[]);
    for attempt in 0..5 {
        let mut a = common::serve(&["--config", &config_a], &[]);
        let port = a.port;
        let batch: Vec<String> = runs.iter().map(|r| format!("{r}-{attempt}")).collect();
        let posters: Vec<_> = batch
            .iter()
            .cloned()
            .map(|run| std::thread::spawn(move || execute(port, &run)))
            .collect();
        // Kill as soon as one of them has started (a run takes a few hundred ms).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !batch.iter().any(|run| run_of(b.port, run).is_some()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        for poster in posters {
            poster.join().unwrap();
        }
        left_running = batch
            .iter()
            .filter(|run| run_of(b.port, run).is_some_and(|r| r["status"] == "running"))
            .cloned()
            .collect();
        if !left_running.is_empty() {
            break;
        }
    }
    assert!(
        !left_running.is_empty(),
        "the kill never caught a run mid-way"
    );
    // The other replica finishes them by itself once their leases expire.
    let records = finish_all(b.port, &left_running, Duration::from_secs(30));
    for (run, record) in left_running.iter().zip(&records) {
        assert_eq!(record["state"], uninterrupted(run), "{record}");
    }
    rt.block_on(async {
        let rows = client
            .query(
                "SELECT run_id, replica, started_at, ended_at FROM bulwark_test_steps",
                &[],
            )
            .await
            .unwrap();
        let by_b = rows
            .iter()
            .filter(|r| r.get::<_, String>(1) == "replica-b")
            .count();
        assert!(by_b > 0, "replica-b finished none of the runs");
        for x in &rows {
            for y in &rows {
                let (rx, ry): (String, String) = (x.get(0), y.get(0));
                let (px, py): (String, String) = (x.get(1), y.get(1));
                if rx != ry || px == py {
                    continue;
                }
                let (sx, ex): (std::time::SystemTime, std::time::SystemTime) = (x.get(2), x.get(3));
                let (sy, ey): (std::time::SystemTime, std::time::SystemTime) = (y.get(2), y.get(3));
                assert!(
                    ex <= sy || ey <= sx,
                    "run {rx} ran on {px} and {py} at once"
                );
            }
        }
    });
}
