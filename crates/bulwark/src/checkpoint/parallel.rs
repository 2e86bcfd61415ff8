//! Work on large states split across the machine's cores: zstd frames compressed and
//! decompressed side by side.
//!
//! A large state is cut into chunks that are compressed as independent zstd frames; their
//! concatenation is one valid zstd stream (RFC 8878 §3.1), so any zstd decoder reads it. The
//! calling thread and one scoped helper per core (at most four) claim chunks in order from a
//! shared counter, so a slow or busy core takes fewer; the calling thread first computes the
//! SHA-256 of the whole state. Loading walks the frame headers (each records its
//! content size), checks that the sizes add up to the size in the metadata, and decompresses
//! every frame straight into its own slice of the output. A stream that is not such a frame
//! sequence falls back to the one-thread decoder.
//!
//! ```
//! # use bulwark::checkpoint::{Compression, FsStore, StateCheckpointManager};
//! # use std::sync::Arc;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # let dir = tempfile::tempdir().unwrap();
//! let manager = StateCheckpointManager::builder(Arc::new(FsStore::open(dir.path())?))
//!     .compression(Compression::default())
//!     .parallel(true) // the default: large states use every core
//!     .build()?;
//! let history: Vec<String> = (0..20_000).map(|i| format!("message {i}")).collect();
//! let id = manager.save_checkpoint(&history, "agent", "run").await?;
//! assert_eq!(manager.load_checkpoint::<Vec<String>>(&id).await?, history);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use zstd::zstd_safe;

use super::error::{CheckpointError, DecodeError};

/// States below this are handled on the calling thread: starting threads would cost more
/// than it saves.
pub(crate) const PARALLEL_MIN: usize = 128 << 10;
/// Smallest chunk compressed as its own frame. Each frame starts with an empty window, so
/// smaller frames compress worse: for a 1 MB chat history, 128 KiB frames store 3 % more than
/// one frame, 64 KiB frames 5 %.
const MIN_CHUNK: usize = 128 << 10;
/// The most helper threads one operation starts.
const MAX_THREADS: usize = 4;

/// Helper threads worth starting for `len` bytes: one per core, at most [`MAX_THREADS`];
/// none below [`PARALLEL_MIN`] or on one core.
pub(crate) fn helpers_for(len: usize) -> usize {
    if len < PARALLEL_MIN {
        return 0;
    }
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        0 | 1 => 0,
        cores => cores.min(MAX_THREADS),
    }
}

/// Runs `task(i)` for every `i` in `0..count` on the calling thread and `helpers` scoped
/// threads, which claim indices in order. The calling thread runs `first` before it claims
/// any. Returns `first`'s result and the tasks' results in index order, or `None` if a thread
/// panicked.
///
/// There is one helper per core, so with the caller the threads outnumber the cores: on a
/// virtual machine a core that was idle can take milliseconds to be scheduled again, and a
/// helper queued on the caller's own core then still makes progress, while the caller never
/// waits for a helper that has not started (it claims the remaining tasks itself).
fn run_claimed<F, R>(
    count: usize,
    helpers: usize,
    first: impl FnOnce() -> F,
    task: impl Fn(usize) -> R + Sync,
) -> Option<(F, Vec<R>)>
where
    R: Send,
{
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break;
            }
            let result = task(i);
            if let Some(slot) = slots.get(i) {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            }
        }
    };
    let (first, joined) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..helpers.min(count)).map(|_| scope.spawn(work)).collect();
        let first = first();
        work();
        // Join every helper (a panicked one that was not joined would panic the scope).
        let mut joined = true;
        for handle in handles {
            joined &= handle.join().is_ok();
        }
        (first, joined)
    });
    if !joined {
        return None;
    }
    let results = slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect::<Option<Vec<R>>>()?;
    Some((first, results))
}

/// Runs `a` on the calling thread and `b` on a scoped helper, side by side; if the helper has
/// not started `b` by the time `a` is done, the calling thread runs `b` itself. `None` if a
/// thread panicked.
pub(crate) fn both<A, B>(a: impl FnOnce() -> A, b: impl FnOnce() -> B + Send) -> Option<(A, B)>
where
    B: Send,
{
    let job = Mutex::new(Some(b));
    let take = || job.lock().unwrap_or_else(|e| e.into_inner()).take();
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| take().map(|b| b()));
        let a = a();
        let mine = take().map(|b| b());
        let theirs = helper.join().ok()?;
        Some((a, mine.or(theirs)?))
    })
}

/// The SHA-256 of `state` and its zstd compression at `level`, as one frame per chunk,
/// computed on the calling thread and `helpers` more.
pub(crate) fn hash_and_compress_zstd(
    state: &[u8],
    level: i32,
    helpers: usize,
    sha256: impl FnOnce(&[u8]) -> [u8; 32],
) -> Result<([u8; 32], Vec<u8>), CheckpointError> {
    // Up to 16 chunks: enough for four threads to share out unevenly (the calling thread also
    // hashes), and the same frames whatever the number of cores.
    let chunk = (state.len() / 16).max(MIN_CHUNK);
    let chunks: Vec<&[u8]> = state.chunks(chunk).collect();
    let (digest, frames) = run_claimed(
        chunks.len(),
        helpers,
        || sha256(state),
        |i| super::codec::zstd_frame(chunks.get(i).copied().unwrap_or_default(), level),
    )
    .ok_or_else(|| CheckpointError::InvalidInput {
        what: "state",
        reason: "a compression thread panicked".into(),
    })?;
    let mut out = Vec::with_capacity(frames.iter().map(|f| f.as_ref().map_or(0, Vec::len)).sum());
    for frame in frames {
        let frame = frame.map_err(|e| CheckpointError::InvalidInput {
            what: "compression",
            reason: e.to_string(),
        })?;
        out.extend_from_slice(&frame);
    }
    Ok((digest, out))
}

/// The frames of a zstd stream with their content sizes, when the stream is a sequence of
/// frames that each record their size and the sizes add up to `expected`.
fn frames_of(stored: &[u8], expected: u64) -> Option<Vec<(&[u8], usize)>> {
    let mut frames = Vec::new();
    let mut rest = stored;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let len = zstd_safe::find_frame_compressed_size(rest).ok()?;
        let frame = rest.get(..len).filter(|f| !f.is_empty())?;
        let size = zstd_safe::get_frame_content_size(frame).ok()??;
        total = total.checked_add(size)?;
        frames.push((frame, usize::try_from(size).ok()?));
        rest = rest.get(len..)?;
    }
    (total == expected).then_some(frames)
}

thread_local! {
    /// This thread's zstd decompression context: making one allocates and initializes about
    /// 100 KiB, a cost worth paying once per thread rather than once per frame.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn with_decompressor<R>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<R>,
) -> std::io::Result<R> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(std::io::Error::other)?;
        let decompressor = match &mut *slot {
            Some(decompressor) => decompressor,
            empty => empty.insert(zstd::bulk::Decompressor::new()?),
        };
        f(decompressor)
    })
}

/// Decompresses a zstd stream of several frames on several threads, each frame into its own
/// slice of the output. `None` when the stream is not such a sequence (one frame, a frame
/// without a recorded size, sizes that do not add up to `expected`): the caller then decodes
/// it on one thread, which reports whatever is wrong with it.
pub(crate) fn decompress_zstd_frames(
    stored: &[u8],
    expected: u64,
) -> Option<Result<Vec<u8>, DecodeError>> {
    let len = usize::try_from(expected).ok()?;
    let helpers = helpers_for(len);
    if helpers == 0 {
        return None;
    }
    let frames = frames_of(stored, expected)?;
    if frames.len() < 2 {
        return None;
    }
    let mut out = Vec::new();
    if let Err(e) = out.try_reserve_exact(len) {
        return Some(Err(DecodeError::Decompress {
            reason: e.to_string(),
        }));
    }
    out.resize(len, 0);
    let mut targets: Vec<Mutex<&mut [u8]>> = Vec::with_capacity(frames.len());
    let mut remaining: &mut [u8] = &mut out;
    for &(_, size) in &frames {
        let (target, tail) = remaining.split_at_mut(size.min(remaining.len()));
        targets.push(Mutex::new(target));
        remaining = tail;
    }
    let decoded = run_claimed(
        frames.len(),
        helpers,
        || (),
        |i| -> Result<(), DecodeError> {
            let (Some(&(frame, size)), Some(target)) = (frames.get(i), targets.get(i)) else {
                return Err(DecodeError::Decompress {
                    reason: "frame index out of range".into(),
                });
            };
            let mut target = target.lock().unwrap_or_else(|e| e.into_inner());
            let written = with_decompressor(|d| d.decompress_to_buffer(frame, &mut **target))
                .map_err(|e| DecodeError::Decompress {
                    reason: e.to_string(),
                })?;
            if written == size {
                Ok(())
            } else {
                Err(DecodeError::SizeMismatch {
                    expected: size as u64,
                    actual: written as u64,
                })
            }
        },
    );
    drop(targets);
    let result = match decoded {
        None => Err(DecodeError::Decompress {
            reason: "a decompression thread panicked".into(),
        }),
        Some(((), results)) => results.into_iter().collect::<Result<(), _>>(),
    };
    Some(result.map(|()| out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        let words = [
            "agent",
            "tool",
            "call",
            "result",
            "the",
            "flight",
            "price",
            "{\"role\":",
        ];
        let mut out = Vec::with_capacity(len);
        let mut i = 0usize;
        while out.len() < len {
            out.extend_from_slice(words[(i * 7 + i / 3) % words.len()].as_bytes());
            out.push(b' ');
            i += 1;
        }
        out.truncate(len);
        out
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        super::super::envelope::sha256(data)
    }

    #[test]
    fn frames_compressed_apart_decode_as_one_stream_and_in_parallel() {
        let state = sample(1 << 20);
        let (digest, stored) = hash_and_compress_zstd(&state, 1, 2, sha).unwrap();
        assert_eq!(digest, sha(&state));
        let (_, alone) = hash_and_compress_zstd(&state, 1, 0, sha).unwrap();
        assert_eq!(
            alone, stored,
            "the frames do not depend on who compressed them"
        );
        let frames = frames_of(&stored, state.len() as u64).unwrap();
        assert!(frames.len() >= 2, "{} frames", frames.len());
        // Any zstd decoder reads the concatenation.
        assert_eq!(zstd::stream::decode_all(&stored[..]).unwrap(), state);
        if helpers_for(state.len()) > 0 {
            let back = decompress_zstd_frames(&stored, state.len() as u64).unwrap();
            assert_eq!(back.unwrap(), state);
        }
    }

    #[test]
    fn streams_that_do_not_add_up_are_left_to_the_one_thread_decoder() {
        let state = sample(600 << 10);
        let (_, stored) = hash_and_compress_zstd(&state, 1, 2, sha).unwrap();
        // Sizes that do not match the metadata, a truncated stream, garbage.
        assert!(frames_of(&stored, state.len() as u64 + 1).is_none());
        assert!(frames_of(&stored[..stored.len() - 1], state.len() as u64).is_none());
        assert!(frames_of(b"not zstd at all", 15).is_none());
        // One frame is not worth the threads.
        let single = zstd::bulk::compress(&state, 1).unwrap();
        assert!(decompress_zstd_frames(&single, state.len() as u64).is_none());
    }

    #[test]
    fn a_corrupt_frame_is_an_error_not_a_panic() {
        let state = sample(1 << 20);
        let (_, mut stored) = hash_and_compress_zstd(&state, 1, 2, sha).unwrap();
        let frames = frames_of(&stored, state.len() as u64).unwrap();
        let second = frames[0].0.len() + 40;
        stored[second] ^= 0xff;
        if let Some(result) = decompress_zstd_frames(&stored, state.len() as u64) {
            match result {
                Err(_) => {}
                Ok(back) => assert_ne!(back, state, "a flipped byte must not decode silently"),
            }
        }
    }

    #[test]
    fn both_runs_each_side_once() {
        let calls = AtomicUsize::new(0);
        for _ in 0..50 {
            let (a, b) = both(|| 1, || calls.fetch_add(1, Ordering::Relaxed)).unwrap();
            assert_eq!(a, 1);
            assert!(b < 50);
        }
        assert_eq!(calls.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn every_task_runs_once_and_results_keep_their_order() {
        for helpers in 0..=4 {
            let (first, results) = run_claimed(37, helpers, || "first", |i| i * 2).unwrap();
            assert_eq!(first, "first");
            assert_eq!(results, (0..37).map(|i| i * 2).collect::<Vec<_>>());
        }
        let (_, none) = run_claimed(0, 3, || (), |i| i).unwrap();
        assert!(none.is_empty());
    }
}
