//! Timing for async benches: each thread runs its own current-thread tokio runtime (with
//! timers) and is timed by [`timed`]; with several threads the slowest thread's time is
//! reported. Include beside `support/timing.rs` as `mod timing`.

use std::future::Future;
use std::sync::Barrier;
use std::time::Duration;

use crate::timing::timed;

/// A current-thread runtime with timers, as a pipeline's timeouts need.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// Runs `make(thread)(iters)` to completion on `threads` threads started together, each in its
/// own runtime; the slowest thread's time. `make` runs outside the timed part.
pub(crate) fn parallel_async<M, F, Fut>(threads: usize, iters: u64, make: M) -> Duration
where
    M: Fn(usize) -> F + Sync,
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let barrier = &barrier;
                let make = &make;
                s.spawn(move || {
                    let rt = runtime();
                    let body = {
                        let _context = rt.enter();
                        make(thread)
                    };
                    barrier.wait();
                    timed(|| rt.block_on(body(iters)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}
