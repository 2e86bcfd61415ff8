//! Leases on PostgreSQL for several replicas: a live holder refuses the others, an expired
//! lease is taken over, and the replica that lost its lease stops without writing.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod durable_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::durable::{
    Acquired, DurableError, LeaseStore, PostgresLeases, RunStatus, StepError, Workflow,
};
use durable_support::{Order, builder, checkpoints, order};
use tokio::sync::mpsc;

const TTL: Duration = Duration::from_secs(60);

async fn leases(test: &str) -> Option<(String, PostgresLeases)> {
    let url = support::fresh_postgres_schema(test).await?;
    let leases = PostgresLeases::connect(&url).await.unwrap();
    Some((url, leases))
}

/// Makes every lease of `run_id` expired, as if its holder had stopped renewing long ago.
async fn expire(url: &str, run_id: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE bulwark_durable_leases SET expires_at = now() - interval '1 second' WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lease_is_held_by_one_owner_until_released_or_expired() {
    let Some((url, leases)) = leases("durable_lease_store").await else {
        return;
    };
    assert_eq!(leases.acquire("r", "a", TTL).await.unwrap(), Acquired::Held);
    assert_eq!(
        leases.acquire("r", "a", TTL).await.unwrap(),
        Acquired::Held,
        "re-entrant"
    );
    assert_eq!(
        leases.acquire("r", "b", TTL).await.unwrap(),
        Acquired::Busy { owner: "a".into() }
    );
    assert!(!leases.renew("r", "b", TTL).await.unwrap());
    assert!(leases.renew("r", "a", TTL).await.unwrap());
    leases.release("r", "b").await.unwrap();
    assert!(
        matches!(
            leases.acquire("r", "b", TTL).await.unwrap(),
            Acquired::Busy { .. }
        ),
        "b cannot release a's lease"
    );
    leases.release("r", "a").await.unwrap();
    assert_eq!(leases.acquire("r", "b", TTL).await.unwrap(), Acquired::Held);

    expire(&url, "r").await;
    assert!(
        !leases.renew("r", "b", TTL).await.unwrap(),
        "an expired lease is not renewed"
    );
    assert_eq!(
        leases.acquire("r", "a", TTL).await.unwrap(),
        Acquired::Held,
        "taken over"
    );
}

#[tokio::test]
async fn a_replica_takes_over_an_expired_run_and_the_one_that_lost_it_stops() {
    let Some((url, leases_a)) = leases("durable_lease_takeover").await else {
        return;
    };
    let leases_b = PostgresLeases::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicU32::new(0));
    let workflow = {
        let calls = Arc::clone(&calls);
        move || {
            let (calls, entered) = (Arc::clone(&calls), entered_tx.clone());
            Workflow::new("slow").step("call", "worker", move |ctx, o: Order| {
                let (calls, entered) = (Arc::clone(&calls), entered.clone());
                async move {
                    ctx.effect("call", |_| async move {
                        // Replica a's call never returns.
                        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            let _ = entered.send(());
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, StepError>(1)
                    })
                    .await?;
                    Ok(o)
                }
            })
        }
    };
    let clock_a = ManualClock::new();
    let a = builder(dir.path(), clock_a.clone())
        .await
        .workflow(workflow())
        .leases(leases_a, "replica-a", TTL)
        .build()
        .unwrap();
    let b = builder(dir.path(), ManualClock::new())
        .await
        .workflow(workflow())
        .leases(leases_b, "replica-b", TTL)
        .build()
        .unwrap();
    let task = tokio::spawn(async move { a.start_with_id("slow", "run-1", &order("o", 1)).await });
    entered.recv().await.unwrap();

    // While a holds the lease, b is told where the run runs, and writes nothing.
    let before = checkpoints(dir.path()).await;
    for result in [b.recover("run-1").await, b.cancel("run-1").await] {
        let err = result.unwrap_err();
        assert!(
            matches!(err, DurableError::LeasedElsewhere { ref owner, .. } if owner == "replica-a"),
            "{err}"
        );
    }
    assert_eq!(checkpoints(dir.path()).await, before);

    // a stops renewing (as if dead); once expired, b takes the run over and finishes it.
    expire(&url, "run-1").await;
    let run = b.recover("run-1").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    let after = checkpoints(dir.path()).await;

    // a's next renewal finds the lease gone: it stops without writing.
    clock_a.advance(TTL / 3);
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, DurableError::LeaseLost { .. }), "{err}");
    assert_eq!(checkpoints(dir.path()).await, after);
}
