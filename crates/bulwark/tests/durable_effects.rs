//! Memoized effects across simulated crashes (the process's runtime killed mid-step, then a
//! new executor on the same folder), unknown outcomes, and interrupts across a restart.

mod durable_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bulwark::durable::{
    BranchOutcome, DurableError, EffectState, FanOut, InterruptKind, OnUnknown, RunStatus,
    StepError, Workflow,
};
use durable_support::{Order, checkpoints, executor, order, run_until_crash};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

/// An external provider that counts calls per idempotency key and can "crash" the process
/// inside its n-th call: after applying it, before answering.
#[derive(Clone)]
struct Provider {
    calls: Arc<Mutex<HashMap<String, u32>>>,
    seen: Arc<AtomicU32>,
    crash_at: Arc<AtomicU32>,
    crashed: mpsc::UnboundedSender<()>,
}

impl Provider {
    fn new() -> (Self, mpsc::UnboundedReceiver<()>) {
        let (crashed, rx) = mpsc::unbounded_channel();
        let provider = Self {
            calls: Arc::default(),
            seen: Arc::default(),
            crash_at: Arc::default(),
            crashed,
        };
        (provider, rx)
    }

    async fn call(self, key: String) -> Result<String, StepError> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        *self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default() += 1;
        if n == self.crash_at.load(Ordering::SeqCst) {
            let _ = self.crashed.send(());
            std::future::pending::<()>().await;
        }
        Ok(format!("receipt:{key}"))
    }

    fn calls(&self) -> HashMap<String, u32> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// s1 in a step, a1 and b1 in two branches of a fan-out, s3 in a last step; b1 starts after
/// a1's branch is done, so the calls come in a fixed order.
fn payments(provider: &Provider) -> Workflow<Order> {
    let (p1, pa, pb, p3) = (
        provider.clone(),
        provider.clone(),
        provider.clone(),
        provider.clone(),
    );
    let a_done = Arc::new(tokio::sync::Notify::new());
    let a_signal = Arc::clone(&a_done);
    let fan_out = FanOut::new(|mut o: Order, outcomes: Vec<BranchOutcome<String>>| {
        o.log
            .extend(outcomes.into_iter().filter_map(|o| o.result.ok()));
        Ok(o)
    })
    .branch("a", "agent-a", move |ctx, _| {
        let (p, signal) = (pa.clone(), Arc::clone(&a_signal));
        async move {
            let receipt = ctx.effect("a1", |key| p.call(key)).await?;
            signal.notify_one();
            Ok(receipt)
        }
    })
    .branch("b", "agent-b", move |ctx, _| {
        let (p, a_done) = (pb.clone(), Arc::clone(&a_done));
        async move {
            if p.crash_at.load(Ordering::SeqCst) == 3 {
                a_done.notified().await;
            }
            ctx.effect("b1", |key| p.call(key)).await
        }
    });
    Workflow::new("payments")
        .step("first", "agent-s", move |ctx, mut o: Order| {
            let p = p1.clone();
            async move {
                o.log.push(ctx.effect("s1", |key| p.call(key)).await?);
                Ok(o)
            }
        })
        .fan_out("both", "agent-s", fan_out)
        .step("last", "agent-s", move |ctx, mut o: Order| {
            let p = p3.clone();
            async move {
                o.log.push(ctx.effect("s3", |key| p.call(key)).await?);
                Ok(o)
            }
        })
}

/// Starts run `run_id` of `payments` in a process that dies inside the `crash_at`-th call;
/// returns the provider, its crash disarmed.
async fn crash_payments(dir: &std::path::Path, run_id: &'static str, crash_at: u32) -> Provider {
    let (provider, mut crashed) = Provider::new();
    provider.crash_at.store(crash_at, Ordering::SeqCst);
    let (path, first) = (dir.to_owned(), provider.clone());
    let process = move || async move {
        let executor = executor(&path, |b| b.workflow(payments(&first))).await;
        executor
            .start_with_id("payments", run_id, &order("o", 5))
            .await
    };
    run_until_crash(process, &mut crashed).await;
    provider.crash_at.store(0, Ordering::SeqCst);
    provider
}

const KEYS: [&str; 4] = ["first/s1", "both/a/a1", "both/b/b1", "last/s3"];

#[tokio::test]
async fn done_effects_never_run_again_and_an_interrupted_one_reruns_with_its_key() {
    let reference = {
        let dir = tempfile::tempdir().unwrap();
        let (provider, _rx) = Provider::new();
        let executor = executor(dir.path(), |b| b.workflow(payments(&provider))).await;
        let run = executor
            .start_with_id("payments", "run", &order("o", 5))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.last_error);
        run.state
    };
    for crash_at in 1..=4u32 {
        let dir = tempfile::tempdir().unwrap();
        let provider = crash_payments(dir.path(), "run", crash_at).await;

        // A new process on the same folder.
        let second = executor(dir.path(), |b| b.workflow(payments(&provider))).await;
        let before = second.get("run").await.unwrap();
        assert_eq!(before.status, RunStatus::Running);
        let crashed_slot = KEYS[crash_at as usize - 1];
        assert_eq!(
            before.effects[crashed_slot].state,
            EffectState::Started,
            "crash {crash_at}: the call was recorded as started before it was made"
        );
        let run = second.recover("run").await.unwrap();
        assert_eq!(
            run.status,
            RunStatus::Completed,
            "crash {crash_at}: {:?}",
            run.last_error
        );
        assert_eq!(
            run.state, reference,
            "crash {crash_at}: the state differs from an uninterrupted run"
        );

        let calls = provider.calls();
        for (i, slot) in KEYS.iter().enumerate() {
            let key = format!("run/{slot}");
            let expected = if i + 1 == crash_at as usize { 2 } else { 1 };
            assert_eq!(
                calls.get(&key),
                Some(&expected),
                "crash {crash_at}: calls of {key}"
            );
            assert_eq!(run.effects[*slot].key, key);
        }
    }
}

/// One step: an effect through `policy`, whose first call "crashes" the process.
fn guarded(provider: &Provider, policy: fn() -> OnUnknown<String>) -> Workflow<Order> {
    let provider = provider.clone();
    Workflow::new("guarded").step("charge", "payments", move |ctx, mut o: Order| {
        let p = provider.clone();
        async move {
            o.log.push(
                ctx.effect_with("charge-card", policy(), |key| p.call(key))
                    .await?,
            );
            Ok(o)
        }
    })
}

async fn crash_in_first_call(
    dir: &std::path::Path,
    provider: &Provider,
    crashed: &mut mpsc::UnboundedReceiver<()>,
    policy: fn() -> OnUnknown<String>,
) {
    provider.crash_at.store(1, Ordering::SeqCst);
    let (path, first) = (dir.to_owned(), provider.clone());
    let process = move || async move {
        let executor = executor(&path, |b| b.workflow(guarded(&first, policy))).await;
        executor.start_with_id("guarded", "g", &order("o", 1)).await
    };
    run_until_crash(process, crashed).await;
    provider.crash_at.store(0, Ordering::SeqCst);
}

#[tokio::test]
async fn a_check_can_settle_an_unknown_outcome_without_calling_again() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, mut crashed) = Provider::new();
    fn found() -> OnUnknown<String> {
        OnUnknown::check(|key| async move { Ok(Some(format!("found:{key}"))) })
    }
    crash_in_first_call(dir.path(), &provider, &mut crashed, found).await;
    let second = executor(dir.path(), |b| b.workflow(guarded(&provider, found))).await;
    let run = second.recover("g").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(
        run.state_as::<Order>().unwrap().log,
        ["found:g/charge/charge-card"]
    );
    assert_eq!(
        provider.calls()["g/charge/charge-card"],
        1,
        "the check answered: no second call"
    );

    // A check that finds nothing lets the call run again.
    let dir = tempfile::tempdir().unwrap();
    let (provider, mut crashed) = Provider::new();
    fn missing() -> OnUnknown<String> {
        OnUnknown::check(|_| async { Ok(None) })
    }
    crash_in_first_call(dir.path(), &provider, &mut crashed, missing).await;
    let second = executor(dir.path(), |b| b.workflow(guarded(&provider, missing))).await;
    let run = second.recover("g").await.unwrap();
    assert_eq!(
        run.state_as::<Order>().unwrap().log,
        ["receipt:g/charge/charge-card"]
    );
    assert_eq!(provider.calls()["g/charge/charge-card"], 2);
}

#[tokio::test]
async fn an_unknown_outcome_can_pause_the_run_for_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, mut crashed) = Provider::new();
    fn ask() -> OnUnknown<String> {
        OnUnknown::Pause
    }
    crash_in_first_call(dir.path(), &provider, &mut crashed, ask).await;
    let second = executor(dir.path(), |b| b.workflow(guarded(&provider, ask))).await;
    let run = second.recover("g").await.unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    let pending = run.interrupt.clone().unwrap();
    assert_eq!(pending.kind, InterruptKind::UnknownEffect);
    assert_eq!(pending.payload["idempotency_key"], "g/charge/charge-card");
    assert!(!second.is_running_here("g"), "a waiting run holds no task");

    let before = checkpoints(dir.path()).await;
    let err = second.resume("g", json!(42)).await.unwrap_err();
    assert!(matches!(err, DurableError::BadInput { .. }), "{err}");
    assert_eq!(
        checkpoints(dir.path()).await,
        before,
        "a refused answer wrote nothing"
    );

    let run = second
        .resume("g", json!({"done": "paid-by-hand"}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.state_as::<Order>().unwrap().log, ["paid-by-hand"]);
    assert_eq!(provider.calls()["g/charge/charge-card"], 1);
}

#[derive(Debug, Deserialize)]
struct Approval {
    approved: bool,
}

fn refund(lookups: Arc<AtomicU32>, payouts: Arc<AtomicU32>) -> Workflow<Order> {
    Workflow::new("refund").step("refund", "support", move |ctx, mut o: Order| {
        let (lookups, payouts) = (Arc::clone(&lookups), Arc::clone(&payouts));
        async move {
            let customer = ctx
                .effect("lookup", |_| async move {
                    lookups.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, StepError>("gold".to_owned())
                })
                .await?;
            let approval: Approval = ctx
                .interrupt(
                    "approve-refund",
                    &json!({"amount": o.amount, "customer": customer}),
                )
                .await?;
            if !approval.approved {
                return Err(StepError::fatal("refund refused"));
            }
            let paid = ctx
                .effect("pay-out", |key| async move {
                    payouts.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, StepError>(format!("paid {key}"))
                })
                .await?;
            o.log.extend([customer, paid]);
            Ok(o)
        }
    })
}

#[tokio::test]
async fn an_interrupt_waits_across_a_restart_and_resumes_without_repeating_effects() {
    let dir = tempfile::tempdir().unwrap();
    let (lookups, payouts) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let first = executor(dir.path(), |b| {
        b.workflow(refund(Arc::clone(&lookups), Arc::clone(&payouts)))
    })
    .await;
    let run = first
        .start_with_id("refund", "r-1", &order("o", 40))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    let pending = run.interrupt.clone().unwrap();
    assert_eq!(
        (pending.name.as_str(), pending.kind),
        ("approve-refund", InterruptKind::Interrupt)
    );
    assert_eq!(pending.payload, json!({"amount": 40, "customer": "gold"}));
    drop(first);

    let second = executor(dir.path(), |b| {
        b.workflow(refund(Arc::clone(&lookups), Arc::clone(&payouts)))
    })
    .await;
    // An answer of the wrong shape is dropped and the run waits again.
    let run = second.resume("r-1", json!("sure")).await.unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    assert!(run.last_error.unwrap().contains("does not deserialize"));

    let run = second
        .resume("r-1", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.last_error);
    assert_eq!(
        run.state_as::<Order>().unwrap().log,
        ["gold", "paid r-1/refund/pay-out"]
    );
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        1,
        "the effect before the interrupt ran once"
    );
    assert_eq!(payouts.load(Ordering::SeqCst), 1);
    let err = second
        .resume("r-1", json!({"approved": true}))
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::WrongStatus { .. }), "{err}");
}

#[tokio::test]
async fn recover_all_finishes_the_runs_a_dead_process_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let provider = crash_payments(dir.path(), "left", 2).await;

    let second = executor(dir.path(), |b| b.workflow(payments(&provider))).await;
    // A finished run is not touched.
    second
        .start_with_id("payments", "done", &order("d", 1))
        .await
        .unwrap();
    let recovered = second.recover_all().await.unwrap();
    assert_eq!(recovered.len(), 1);
    let (run_id, result) = &recovered[0];
    assert_eq!(run_id, "left");
    assert_eq!(result.as_ref().unwrap().status, RunStatus::Completed);
    assert!(second.recover_all().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_interrupt_in_a_branch_waits_for_the_others_and_resumes_only_its_branch() {
    let dir = tempfile::tempdir().unwrap();
    let (quick, asked) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let workflow = |quick: Arc<AtomicU32>, asked: Arc<AtomicU32>| {
        let fan_out = FanOut::new(|mut o: Order, outcomes: Vec<BranchOutcome<String>>| {
            o.log
                .extend(outcomes.into_iter().filter_map(|o| o.result.ok()));
            Ok(o)
        })
        .branch("quick", "agent-q", move |ctx, _| {
            let quick = Arc::clone(&quick);
            async move {
                ctx.effect("work", |_| async move {
                    quick.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, StepError>("quick".to_owned())
                })
                .await
            }
        })
        .branch("ask", "agent-h", move |ctx, _| {
            let asked = Arc::clone(&asked);
            async move {
                asked.fetch_add(1, Ordering::SeqCst);
                let answer: String = ctx.interrupt("which", &"a or b?").await?;
                Ok(answer)
            }
        });
        Workflow::new("ask-in-branch").fan_out("both", "agent-q", fan_out)
    };
    let first = executor(dir.path(), |b| {
        b.workflow(workflow(Arc::clone(&quick), Arc::clone(&asked)))
    })
    .await;
    let run = first
        .start_with_id("ask-in-branch", "b-1", &order("o", 1))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    assert_eq!(run.interrupt.as_ref().unwrap().step, "both/ask");
    assert!(
        run.branches.contains_key("quick"),
        "the other branch settled before the wait"
    );

    let second = executor(dir.path(), |b| {
        b.workflow(workflow(Arc::clone(&quick), Arc::clone(&asked)))
    })
    .await;
    let run = second.resume("b-1", json!("b")).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.last_error);
    assert_eq!(run.state_as::<Order>().unwrap().log, ["quick", "b"]);
    assert_eq!(
        quick.load(Ordering::SeqCst),
        1,
        "the settled branch did not run again"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}
