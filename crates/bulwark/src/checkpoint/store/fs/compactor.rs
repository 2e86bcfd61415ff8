//! The background compactor: rewrites checkpoints saved in the cheap (uncompressed) form with
//! their target codec, off the saving caller's path.
//!
//! Algorithm, for one queued checkpoint:
//! 1. read `<id>.ckpt`; a checkpoint already compressed or encrypted is left as it is (the
//!    index is corrected from its header if it said otherwise);
//! 2. decode it, compress the state with the target codec, and compare the SHA-256 computed
//!    on the way with the one recorded at the save (a damaged file is never rewritten);
//! 3. write the new envelope to a temporary file and `fdatasync` it;
//! 4. under the folder's `.compact.lock` (`flock`, which deletes take too), check that
//!    `<id>.ckpt` is still the file read in step 1, and `rename` the new file over it;
//! 5. flush the folder (in the store's flush group) and record the new metadata in the index.
//!
//! A crash before step 4 leaves the old file and a temporary one (removed when stale); after
//! it, the name points to one whole file or the other, and both decode to the same state. The
//! thread handles one checkpoint at a time (memory: one state and its compressed copy), on one
//! core, and waits (up to [`YIELD_LIMIT`]) while saves are in flight. Its queue holds at most
//! [`QUEUE_LIMIT`] ids; beyond that it scans the index for uncompressed checkpoints instead.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use bulwark::checkpoint::{
//!     BlockingCheckpointManager, CheckpointId, Codec, FsStore, FsStoreOptions,
//!     StateCheckpointManager,
//! };
//!
//! let dir = tempfile::tempdir()?;
//! let mut options = FsStoreOptions::default();
//! options.background_compaction = false; // compact on demand below, to show both forms
//! let store = FsStore::open_with(dir.path(), Arc::new(bulwark::checkpoint::store::io::StdIo), options)?;
//! let manager = BlockingCheckpointManager::new(StateCheckpointManager::new(Arc::new(store.clone())))?;
//! let state = vec!["the same message again"; 2000];
//! let id: CheckpointId = manager.save_checkpoint(&state, "agent", "wf")?;
//! assert_eq!(manager.metadata(&id)?.codec, Codec::None); // acknowledged in the cheap form
//! let report = store.compact_pending_blocking();
//! assert_eq!(report.compacted, 1);
//! let meta = manager.metadata(&id)?;
//! assert_eq!(meta.codec, Codec::Zstd);
//! assert!(meta.stored_size * 10 < meta.uncompressed_size);
//! let loaded: Vec<String> = manager.load_checkpoint(&id)?;
//! assert_eq!(loaded, state);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::{FsStore, Inner};
use crate::checkpoint::codec::{Codec, Compression};
use crate::checkpoint::envelope::{self, EncodeOptions, NewCheckpoint};
use crate::checkpoint::error::{DecodeError, StoreError};
use crate::checkpoint::id::CheckpointId;
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::store::index::LogRecord;
use crate::checkpoint::store::io::FileIdentity;

/// Most ids waiting in the queue; more set a flag that makes the compactor scan the index.
pub(crate) const QUEUE_LIMIT: usize = 4096;
/// Longest the compactor waits for in-flight saves before it compacts anyway.
pub(crate) const YIELD_LIMIT: Duration = Duration::from_millis(20);
/// Name of the lock file that orders compaction's replace against deletes across processes.
pub(super) const REPLACE_LOCK: &str = ".compact.lock";

/// What the compactor has done since the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionStats {
    /// Checkpoints rewritten with their target codec.
    pub compacted: u64,
    /// Bytes of the cheap forms rewritten.
    pub bytes_before: u64,
    /// Bytes of their compacted forms.
    pub bytes_after: u64,
    /// Time spent reading, compressing and writing (one thread: about its CPU time).
    pub busy: Duration,
    /// Sum over compacted checkpoints of the time from being queued to being replaced.
    pub total_lag: Duration,
    /// The longest such time.
    pub max_lag: Duration,
    /// Checkpoints waiting now.
    pub queued: usize,
}

/// What one [`FsStore::compact_pending_blocking`] run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Rewritten with their target codec.
    pub compacted: usize,
    /// Already compressed or encrypted: left as they were.
    pub unchanged: usize,
    /// Deleted (or replaced) before their turn.
    pub gone: usize,
    /// Left as they were because of an error (logged).
    pub failed: usize,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<(CheckpointId, Compression, Instant)>,
    overflowed: bool,
    stop: bool,
}

/// The queue and the statistics of one store's compactor.
#[derive(Default)]
pub(super) struct Compactor {
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: Mutex<CompactionStats>,
}

enum Outcome {
    Compacted,
    Unchanged,
    Gone,
}

impl Compactor {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn push(&self, id: CheckpointId, target: Compression) {
        let mut queue = self.queue();
        if queue.items.len() >= QUEUE_LIMIT {
            queue.overflowed = true;
        } else {
            queue.items.push_back((id, target, Instant::now()));
        }
        drop(queue);
        self.wake.notify_one();
    }

    pub(super) fn stop(&self) {
        self.queue().stop = true;
        self.wake.notify_all();
    }

    /// The next item, or `None` when stopped; waits for one when `wait`.
    fn next(&self, wait: bool) -> Option<Next> {
        let mut queue = self.queue();
        loop {
            if queue.stop {
                return None;
            }
            if let Some(item) = queue.items.pop_front() {
                return Some(Next::Item(item));
            }
            if queue.overflowed {
                queue.overflowed = false;
                return Some(Next::Scan);
            }
            if !wait {
                return None;
            }
            queue = self
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

enum Next {
    Item((CheckpointId, Compression, Instant)),
    Scan,
}

/// The compactor thread's body: holds the store only while it works on an item.
pub(super) fn run(store: Weak<Inner>, compactor: Arc<Compactor>) {
    while let Some(next) = compactor.next(true) {
        let Some(inner) = store.upgrade() else { return };
        let store = FsStore { inner };
        store.yield_to_saves();
        store.handle(next);
    }
}

impl FsStore {
    /// Queues `id` for rewriting with `target` (see [`LocalStore::defer_compression`](crate::checkpoint::LocalStore::defer_compression)).
    pub(super) fn enqueue_compaction(&self, id: CheckpointId, target: Compression) {
        if target.codec != Codec::None {
            self.inner.compactor.push(id, target);
        }
    }

    /// Queues every indexed checkpoint still in the cheap form (after an open: the queue of a
    /// process that stopped is lost, and a folder of an older version may hold some).
    pub(super) fn enqueue_uncompressed(&self) {
        let Some(target) = self.inner.options.compaction else {
            return;
        };
        let ids: Vec<CheckpointId> = self
            .state()
            .index
            .values()
            .filter(|meta| meta.codec == Codec::None && meta.encryption.is_none())
            .map(|meta| meta.id)
            .collect();
        for id in ids {
            self.enqueue_compaction(id, target);
        }
    }

    /// Waits while saves are in flight, at most [`YIELD_LIMIT`].
    fn yield_to_saves(&self) {
        let deadline = Instant::now() + YIELD_LIMIT;
        while self.inner.saves_in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Compacts everything queued now, on the calling thread (the background thread does the
    /// same by itself; this is for tests, tools and a shutdown that wants it done).
    pub fn compact_pending_blocking(&self) -> CompactionReport {
        let mut report = CompactionReport::default();
        while let Some(next) = self.inner.compactor.next(false) {
            let one = self.handle(next);
            report.compacted += one.compacted;
            report.unchanged += one.unchanged;
            report.gone += one.gone;
            report.failed += one.failed;
        }
        report
    }

    /// What the compactor has done, and how many checkpoints wait.
    pub fn compaction_stats(&self) -> CompactionStats {
        let mut stats = *self
            .inner
            .compactor
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        stats.queued = self.inner.compactor.queue().items.len();
        stats
    }

    fn handle(&self, next: Next) -> CompactionReport {
        let mut report = CompactionReport::default();
        match next {
            Next::Scan => self.enqueue_uncompressed(),
            Next::Item((id, target, queued_at)) => match self.compact_one(&id, target, queued_at) {
                Ok(Outcome::Compacted) => report.compacted += 1,
                Ok(Outcome::Unchanged) => report.unchanged += 1,
                Ok(Outcome::Gone) => report.gone += 1,
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(%id, %error, "checkpoint compaction failed; the checkpoint stays as it was");
                }
            },
        }
        report
    }

    fn compact_one(
        &self,
        id: &CheckpointId,
        target: Compression,
        queued_at: Instant,
    ) -> Result<Outcome, StoreError> {
        let _shared = self
            .inner
            .rebuild_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let io = &*self.inner.io;
        let path = self.path_of(id);
        let (bytes, identity) = match io.read_at(&path, 0, u64::MAX) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Gone),
            Err(e) => return Err(StoreError::io("read", &path, e)),
        };
        let corrupt = |source: DecodeError| StoreError::Corrupt {
            name: id.to_string(),
            source,
        };
        let (meta, compacted) = match recompress(&bytes, target).map_err(corrupt)? {
            Recompressed::Unchanged(meta) => {
                self.correct_index(meta);
                return Ok(Outcome::Unchanged);
            }
            Recompressed::Rewritten(meta, compacted) => (meta, compacted),
        };
        let temp = self.temp_path(id);
        let replaced = io
            .write_new(&temp, &compacted, true)
            .map_err(|e| StoreError::io("write", &temp, e))
            .and_then(|()| self.replace_if_unchanged(&temp, &path, identity));
        match replaced {
            Ok(true) => {}
            Ok(false) => {
                let _ = io.remove_file(&temp);
                return Ok(Outcome::Gone);
            }
            Err(error) => {
                let _ = io.remove_file(&temp);
                return Err(error);
            }
        }
        self.sync_folder()?;
        self.correct_index(meta);
        let now = Instant::now();
        let lag = now.duration_since(queued_at);
        let mut stats = self
            .inner
            .compactor
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        stats.compacted += 1;
        stats.bytes_before += bytes.len() as u64;
        stats.bytes_after += compacted.len() as u64;
        stats.busy += now.duration_since(started);
        stats.total_lag += lag;
        stats.max_lag = stats.max_lag.max(lag);
        Ok(Outcome::Compacted)
    }

    /// Renames `temp` over `path` if `path` is still the file read (same inode, length and
    /// modification time), under the replace lock that deletes take too; `Ok(false)` when it
    /// changed or went.
    fn replace_if_unchanged(
        &self,
        temp: &std::path::Path,
        path: &std::path::Path,
        identity: FileIdentity,
    ) -> Result<bool, StoreError> {
        let io = &*self.inner.io;
        let _in_process = self
            .inner
            .replace_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lock_path = self.inner.dir.join(REPLACE_LOCK);
        let _across_processes = io
            .lock_exclusive(&lock_path)
            .map_err(|e| StoreError::io("lock", &lock_path, e))?;
        match io.identity(path) {
            Ok(now) if now == identity => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io("stat", path, e)),
        }
        io.rename(temp, path)
            .map_err(|e| StoreError::io("rename", temp, e))?;
        Ok(true)
    }

    /// Makes the index hold `meta` (the header of the file now on disk) if it knows the id.
    fn correct_index(&self, meta: CheckpointMetadata) {
        let mut state = self.state();
        if state
            .index
            .get(&meta.id)
            .is_some_and(|known| *known != meta)
        {
            state.index.insert(meta.clone());
            self.append_record(
                &mut state,
                &LogRecord::Put {
                    meta: Box::new(meta),
                },
            );
        }
    }
}

enum Recompressed {
    /// Nothing to do; the header's metadata.
    Unchanged(CheckpointMetadata),
    /// The new metadata and envelope.
    Rewritten(CheckpointMetadata, Vec<u8>),
}

/// The envelope `bytes` rewritten with `target`, when it is in the cheap form.
fn recompress(bytes: &[u8], target: Compression) -> Result<Recompressed, DecodeError> {
    let header = envelope::decode_header(bytes, bytes.len() as u64)?;
    if header.codec != Codec::None || header.encryption.is_some() || target.codec == Codec::None {
        return Ok(Recompressed::Unchanged(header));
    }
    let decoded = envelope::decode_unverified(bytes, None)?;
    let meta = decoded.metadata;
    let new = NewCheckpoint {
        id: meta.id,
        agent_id: &meta.agent_id,
        workflow_id: &meta.workflow_id,
        sequence: meta.sequence,
        parent_id: meta.parent_id,
        created_at_ms: meta.created_at_millis(),
        labels: meta.labels.clone(),
    };
    let options = EncodeOptions {
        compression: target,
        // One core at most: the compactor must not compete with saves for both.
        parallel: false,
        keyring: None,
    };
    let (new_meta, new_bytes) =
        envelope::encode(&new, &decoded.state, options).map_err(|e| DecodeError::Metadata {
            reason: format!("cannot re-encode: {e}"),
        })?;
    // The hash of the state is computed once, by the encoding, and checked here against the
    // one recorded at the save: a file damaged since is left alone, never re-sealed.
    if !new_meta.sha256.eq_ignore_ascii_case(&meta.sha256) {
        return Err(DecodeError::HashMismatch {
            expected: meta.sha256,
            actual: new_meta.sha256,
        });
    }
    Ok(Recompressed::Rewritten(new_meta, new_bytes))
}
