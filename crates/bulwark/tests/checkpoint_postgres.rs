//! The PostgreSQL store against real servers: migrations run twice and at once, two OS
//! processes saving together, and a server restarted mid-run.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark::checkpoint::store::{PostgresStore, PostgresStoreOptions};
use bulwark::checkpoint::{CheckpointError, CheckpointId, ListFilter, StateCheckpointManager};

async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(url, PostgresStoreOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn migrations_are_idempotent_and_safe_to_run_concurrently() {
    let Some(url) = support::fresh_postgres_schema("migrations").await else {
        return;
    };
    let stores = futures_join_all((0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { connect(&url).await })
    }))
    .await;
    let store = &stores[0];
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), vec![1]);
}

async fn futures_join_all<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

/// Entry point of the child processes of `two_processes_save_concurrently`; not a test itself.
#[tokio::test]
#[ignore = "runs only as a child process of two_processes_save_concurrently"]
async fn child_saver() {
    let url = std::env::var("BULWARK_CHILD_URL").unwrap();
    let agent = std::env::var("BULWARK_CHILD_AGENT").unwrap();
    let manager = StateCheckpointManager::new(Arc::new(connect(&url).await));
    for step in 0..40u32 {
        let id = manager
            .save_checkpoint(
                &serde_json::json!({ "agent": agent, "step": step }),
                &agent,
                "shared-wf",
            )
            .await
            .unwrap();
        println!("ACK {id}");
    }
}

#[tokio::test]
async fn two_processes_save_concurrently_and_every_acknowledged_checkpoint_loads() {
    let Some(url) = support::fresh_postgres_schema("two_processes").await else {
        return;
    };
    connect(&url).await; // migrate once up front, as a deployment would
    let children: Vec<_> = ["alpha", "beta"]
        .iter()
        .map(|agent| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_saver", "--exact", "--ignored", "--nocapture"])
                .env("BULWARK_CHILD_URL", &url)
                .env("BULWARK_CHILD_AGENT", agent)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut acknowledged = BTreeSet::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some(id) = line.strip_prefix("ACK ") {
                acknowledged.insert(id.parse::<CheckpointId>().unwrap());
            }
        }
    }
    assert_eq!(acknowledged.len(), 80);
    let manager = StateCheckpointManager::new(Arc::new(connect(&url).await));
    for id in &acknowledged {
        manager.verify(id).await.unwrap();
    }
    for agent in ["alpha", "beta"] {
        let page = manager
            .list(&ListFilter::workflow(agent, "shared-wf").oldest_first())
            .await
            .unwrap();
        let sequences: Vec<u64> = page.items.iter().map(|m| m.sequence).collect();
        assert_eq!(
            sequences,
            (1..=40).collect::<Vec<u64>>(),
            "{agent}'s chain is intact"
        );
    }
}

/// A PostgreSQL server of the test's own (initdb in a temp dir, run as the `postgres` user),
/// which the test can stop and start without disturbing the shared server.
struct OwnPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|mut versions| versions.next())
            .and_then(|entry| entry.ok())
            .map(|entry| entry.path().join("bin"));
        let Some(bin) = bin.filter(|b| b.join("initdb").exists()) else {
            return support::unavailable(
                "postgresql server binaries",
                "no /usr/lib/postgresql/*/bin/initdb",
            );
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("bulwark-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        if !chown.is_ok_and(|s| s.success()) {
            return support::unavailable("a postgres system user", "chown failed");
        }
        let server = Self { bin, dir, port };
        let data = server.dir.join("data");
        server.as_postgres(&[
            server.bin.join("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ])?;
        server.pg_ctl("start")?;
        Some(server)
    }

    fn as_postgres(&self, args: &[&str]) -> Option<()> {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => Some(()),
            Ok(status) => support::unavailable(
                "an own postgresql server",
                format!("{args:?} exited {status}"),
            ),
            Err(error) => support::unavailable("an own postgresql server", error),
        }
    }

    fn pg_ctl(&self, action: &str) -> Option<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.display()
        );
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        self.as_postgres(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
            "-w",
            "-m",
            "immediate",
            action,
        ])
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_server_restart_mid_run_gives_typed_errors_then_recovers_and_loses_nothing_acknowledged()
{
    let Some(server) = OwnPostgres::start() else {
        return;
    };
    let store = PostgresStore::connect(
        &server.url(),
        PostgresStoreOptions::default()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let manager = StateCheckpointManager::new(Arc::new(store));
    let mut acknowledged = Vec::new();
    for step in 0..10u32 {
        acknowledged.push(
            manager
                .save_checkpoint(&serde_json::json!({ "step": step }), "agent", "wf")
                .await
                .unwrap(),
        );
    }

    // "immediate" stop: the server dies as in a crash, without a checkpoint of its own.
    server.pg_ctl("stop").unwrap();
    let error = manager
        .save_checkpoint(&serde_json::json!({ "step": "lost" }), "agent", "wf")
        .await
        .unwrap_err();
    assert!(matches!(error, CheckpointError::Store(_)), "{error:?}");
    assert!(error.to_string().contains("PostgreSQL"), "{error}");

    server.pg_ctl("start").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let resumed = loop {
        match manager
            .save_checkpoint(&serde_json::json!({ "step": 10 }), "agent", "wf")
            .await
        {
            Ok(id) => break id,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(error) => panic!("never recovered: {error}"),
        }
    };
    for id in &acknowledged {
        manager.verify(id).await.unwrap();
    }
    assert_eq!(
        manager.get_latest_checkpoint("agent", "wf").await.unwrap(),
        Some(resumed)
    );
    let meta = manager.metadata(&resumed).await.unwrap();
    assert_eq!(meta.parent_id, acknowledged.last().copied());
}

#[tokio::test]
async fn of_many_racing_fenced_saves_exactly_one_wins() {
    use bulwark::checkpoint::{Parent, SaveOptions, StoreError};
    let Some(url) = support::fresh_postgres_schema("fence_race").await else {
        return;
    };
    let setup = StateCheckpointManager::new(Arc::new(connect(&url).await));
    let first = setup
        .save_checkpoint(&serde_json::json!({"n": 0}), "racer", "wf")
        .await
        .unwrap();
    // Eight writers with pools of their own, all believing `first` is the newest.
    let mut writers = Vec::new();
    for n in 0..8 {
        let manager = StateCheckpointManager::new(Arc::new(connect(&url).await));
        writers.push(tokio::spawn(async move {
            let options = SaveOptions::default().parent(Parent::Expect(Some(first)));
            manager
                .save_with(&serde_json::json!({"n": n}), "racer", "wf", options)
                .await
        }));
    }
    let mut won = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Ok(_) => won += 1,
            Err(CheckpointError::Store(StoreError::Conflict { .. })) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(won, 1);
    let page = setup
        .list(&ListFilter::workflow("racer", "wf").oldest_first())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2, "the history did not fork");
}
