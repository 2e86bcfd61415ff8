//! The time a bench thread took: its CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that other
//! processes on a shared machine do not inflate one case and not its peer, or wall-clock time
//! with `BENCH_WALL_CLOCK=1`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn wall_clock() -> bool {
    static WALL: OnceLock<bool> = OnceLock::new();
    *WALL.get_or_init(|| std::env::var_os("BENCH_WALL_CLOCK").is_some_and(|v| v == "1"))
}

/// Time taken by `f` on this thread: CPU time, or wall-clock time with `BENCH_WALL_CLOCK=1`.
pub(crate) fn timed(f: impl FnOnce()) -> Duration {
    if wall_clock() {
        let start = Instant::now();
        f();
        start.elapsed()
    } else {
        let start = cpu_time::ThreadTime::now();
        f();
        start.elapsed()
    }
}
