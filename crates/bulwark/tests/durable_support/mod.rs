//! Shared by the durable workflow tests: executors over a temp folder, and step probes.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bulwark::checkpoint::StateCheckpointManager;
use bulwark::clock::{Clock, ManualClock};
use bulwark::durable::{Executor, ExecutorBuilder};
use serde::{Deserialize, Serialize};

/// The state most tests pass along.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub amount: u32,
    pub log: Vec<String>,
}

pub fn order(id: &str, amount: u32) -> Order {
    Order {
        id: id.into(),
        amount,
        log: Vec::new(),
    }
}

/// A builder over a checkpoint folder, on `clock`.
pub async fn builder<C: Clock>(dir: &Path, clock: C) -> ExecutorBuilder<C> {
    let manager = StateCheckpointManager::open(dir).await.unwrap();
    Executor::builder(manager).clock(clock)
}

/// How many checkpoints the folder holds.
pub async fn checkpoints(dir: &Path) -> usize {
    let manager = StateCheckpointManager::open(dir).await.unwrap();
    let filter = bulwark::checkpoint::ListFilter::all();
    manager.list(&filter).await.unwrap().items.len()
}

/// An executor with `register` applied, on a fresh manual clock.
pub async fn executor(
    dir: &Path,
    register: impl FnOnce(ExecutorBuilder<ManualClock>) -> ExecutorBuilder<ManualClock>,
) -> Executor<ManualClock> {
    executor_at(dir, &ManualClock::new(), register).await
}

/// An executor with `register` applied, on `clock`.
pub async fn executor_at(
    dir: &Path,
    clock: &ManualClock,
    register: impl FnOnce(ExecutorBuilder<ManualClock>) -> ExecutorBuilder<ManualClock>,
) -> Executor<ManualClock> {
    register(builder(dir, clock.clone()).await).build().unwrap()
}

/// Counts calls, shared between a workflow's closures and the test (an external counter:
/// it outlives every executor).
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU32>);

impl Counter {
    pub fn hit(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs `process` on a runtime of its own, the "process", until `crashed` fires, then kills
/// it: the runtime is dropped, so every task it had dies at its next await and its blocking
/// writes either finish or never begin — a process killed between two instructions, with
/// nothing of it left running afterwards.
pub async fn run_until_crash<F, Fut>(
    process: F,
    crashed: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
) where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            tokio::select! {
                _ = process() => panic!("the process ended before its crash"),
                _ = stopped => {}
            }
        });
        drop(runtime);
    });
    crashed.recv().await.unwrap();
    stop.send(()).unwrap();
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}
