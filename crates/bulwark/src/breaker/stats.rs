//! Call counters that do not make threads fight over one cache line.
//!
//! Each thread adds to one of a few cache-line-sized shards (chosen once per thread); a reader
//! sums the shards. Counting a call is one uncontended atomic add.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const SHARDS: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    successes: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
}

/// Totals since the breaker was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) rejected: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    shards: [Shard; SHARDS],
}

#[inline]
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let index = i.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        i.set(index);
        index
    })
}

impl Stats {
    #[inline]
    fn shard(&self) -> &Shard {
        &self.shards[shard_index() % SHARDS]
    }

    #[inline]
    pub(crate) fn success(&self) {
        self.shard().successes.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn failure(&self) {
        self.shard().failures.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn rejected(&self) {
        self.shard().rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn totals(&self) -> Totals {
        self.shards.iter().fold(Totals::default(), |t, s| Totals {
            successes: t.successes + s.successes.load(Ordering::Relaxed),
            failures: t.failures + s.failures.load(Ordering::Relaxed),
            rejected: t.rejected + s.rejected.load(Ordering::Relaxed),
        })
    }
}
