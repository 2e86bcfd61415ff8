//! Group commit of folder flushes: saves whose files were renamed into place while a flush of
//! the folder was running share the next flush, instead of each paying for its own.
//!
//! A save's name is durable once an `fsync` of the folder that *started after its rename* has
//! finished. Each caller takes a ticket, the number of the first flush that will start after
//! now (`started + 1`). The first caller that finds no flush running becomes the leader: it
//! flushes, records the flush as finished and wakes everyone; a caller returns as soon as the
//! finished count reaches its ticket. While one flush runs, every save that arrives waits for
//! the next one, which its first arrival leads; so under load one flush serves a whole group,
//! and a lone save pays one flush as before. A failed flush fails every caller that waited for
//! it (and, conservatively, any earlier ticket that wakes after it).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use bulwark::checkpoint::{BlockingCheckpointManager, FsStore, StateCheckpointManager};
//!
//! let dir = tempfile::tempdir()?;
//! let store = FsStore::open(dir.path())?;
//! std::thread::scope(|scope| {
//!     for writer in 0..8 {
//!         let store = store.clone();
//!         scope.spawn(move || {
//!             let manager =
//!                 BlockingCheckpointManager::new(StateCheckpointManager::new(Arc::new(store)))?;
//!             manager.save_checkpoint(&vec![writer; 1000], "agent", &format!("wf-{writer}"))
//!         });
//!     }
//! });
//! let stats = store.commit_stats();
//! // Eight durable saves (and any compaction the background compactor finished meanwhile,
//! // which waits for a flush too), and never more folder flushes than waits.
//! assert!(stats.grouped_saves >= 8);
//! assert!(stats.flushes <= stats.grouped_saves);
//! # Ok(())
//! # }
//! ```

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// How the folder flushes of a store were shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitStats {
    /// Saves, deletes and compactions that waited for a folder flush.
    pub grouped_saves: u64,
    /// Folder flushes run.
    pub flushes: u64,
}

#[derive(Default)]
struct GroupState {
    started: u64,
    finished: u64,
    running: bool,
    /// The newest failed flush, with its error.
    failed: Option<(u64, io::ErrorKind, String)>,
    stats: CommitStats,
}

/// The folder-flush group of one store.
#[derive(Default)]
pub(super) struct GroupSync {
    state: Mutex<GroupState>,
    finished: Condvar,
}

impl GroupSync {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once a run of `flush` that started after this call has finished: at once
    /// when this caller leads it, after the leader's when another caller does.
    pub(super) fn sync(&self, flush: impl Fn() -> io::Result<()>) -> io::Result<()> {
        let mut state = self.lock();
        state.stats.grouped_saves += 1;
        let ticket = state.started + 1;
        loop {
            if state.finished >= ticket {
                return match &state.failed {
                    Some((flush, kind, message)) if *flush >= ticket => {
                        Err(io::Error::new(*kind, message.clone()))
                    }
                    _ => Ok(()),
                };
            }
            if state.running {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.running = true;
            state.started += 1;
            state.stats.flushes += 1;
            let number = state.started;
            drop(state);
            let result = flush();
            state = self.lock();
            state.running = false;
            state.finished = number;
            if let Err(error) = &result {
                state.failed = Some((number, error.kind(), error.to_string()));
            }
            self.finished.notify_all();
        }
    }

    pub(super) fn stats(&self) -> CommitStats {
        self.lock().stats
    }
}
