//! Crash safety through the storage seam: a simulated disk that remembers what was synced and,
//! at a crash, loses or tears everything that was not. After every crash, each checkpoint
//! whose save had returned must load and verify, each acknowledged delete must stay deleted,
//! and "latest" must be at least the last acknowledged save. Saves are acknowledged in the
//! cheap form and compacted at random moments (every operation of the compaction protocol
//! can be the crash point), and concurrent saves crash in the middle of a group flush.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bulwark::checkpoint::store::io::{FileIdentity, StorageIo};
use bulwark::checkpoint::{
    CheckpointError, CheckpointId, Codec, FsStore, FsStoreOptions, StateCheckpointManager,
};

/// xorshift64*: deterministic, seeded randomness for the crash schedule.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// The prefix of `data` known to be on stable storage.
    synced: usize,
}

#[derive(Debug, Default)]
struct Dir {
    live: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Disk {
    next_ino: u64,
    inodes: HashMap<u64, Inode>,
    dirs: HashMap<PathBuf, Dir>,
    ops: u64,
    crash_after: Option<u64>,
    /// A deliberately broken disk that ignores folder syncs, to show the test can fail.
    ignore_dir_sync: bool,
    /// Folder syncs take a moment (outside the disk's lock), so concurrent saves form groups.
    slow_dir_sync: bool,
}

impl Disk {
    /// Counts one operation; fails every operation from the scheduled crash on.
    fn step(&mut self) -> io::Result<()> {
        self.ops += 1;
        match self.crash_after {
            Some(limit) if self.ops > limit => Err(io::Error::other("simulated power loss")),
            _ => Ok(()),
        }
    }

    fn split(path: &Path) -> (PathBuf, String) {
        (
            path.parent().unwrap().to_path_buf(),
            path.file_name().unwrap().to_str().unwrap().to_owned(),
        )
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = Self::split(path);
        self.dirs
            .get(&dir)
            .and_then(|d| d.live.get(&name))
            .copied()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// Power loss: unsynced data is lost or torn, unsynced folder changes each survive or not.
    fn crash(&mut self, rng: &mut Rng) {
        for inode in self.inodes.values_mut() {
            let unsynced = inode.data.len() - inode.synced;
            let kept = inode.synced + rng.below(unsynced as u64 + 1) as usize;
            inode.data.truncate(kept);
            if kept > inode.synced && rng.coin() {
                // A torn sector: the tail of what made it is garbage.
                let from = inode.synced + rng.below((kept - inode.synced) as u64) as usize;
                for b in &mut inode.data[from..] {
                    *b = 0;
                }
            }
            inode.synced = inode.data.len();
        }
        for dir in self.dirs.values_mut() {
            let names: HashSet<String> =
                dir.live.keys().chain(dir.durable.keys()).cloned().collect();
            let mut after = BTreeMap::new();
            for name in names {
                let (live, durable) = (dir.live.get(&name), dir.durable.get(&name));
                let pick = if live == durable || rng.coin() {
                    durable
                } else {
                    live
                };
                if let Some(ino) = pick {
                    after.insert(name, *ino);
                }
            }
            dir.live = after.clone();
            dir.durable = after;
        }
        self.crash_after = None;
    }
}

#[derive(Clone, Debug, Default)]
struct SimIo(Arc<Mutex<Disk>>);

impl StorageIo for SimIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        disk.step()?;
        disk.dirs.entry(dir.to_path_buf()).or_default();
        Ok(())
    }

    fn write_new(&self, path: &Path, data: &[u8], sync: bool) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        disk.step()?;
        if disk.lookup(path).is_ok() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let (dir, name) = Disk::split(path);
        disk.next_ino += 1;
        let ino = disk.next_ino;
        disk.inodes.insert(
            ino,
            Inode {
                data: data.to_vec(),
                synced: 0,
            },
        );
        disk.dirs
            .get_mut(&dir)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?
            .live
            .insert(name, ino);
        if sync {
            disk.step()?;
            if let Some(inode) = disk.inodes.get_mut(&ino) {
                inode.synced = inode.data.len();
            }
        }
        Ok(())
    }

    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let ino = self.0.lock().unwrap().lookup(path).ok();
        match ino {
            None => self.write_new(path, data, false),
            Some(ino) => {
                let mut disk = self.0.lock().unwrap();
                disk.step()?;
                disk.inodes
                    .get_mut(&ino)
                    .unwrap()
                    .data
                    .extend_from_slice(data);
                Ok(())
            }
        }
    }

    fn read_at(
        &self,
        path: &Path,
        offset: u64,
        max_len: u64,
    ) -> io::Result<(Vec<u8>, FileIdentity)> {
        let mut disk = self.0.lock().unwrap();
        disk.step()?;
        let ino = disk.lookup(path)?;
        let data = &disk.inodes[&ino].data;
        let start = (offset as usize).min(data.len());
        let end = start
            .saturating_add(usize::try_from(max_len).unwrap_or(usize::MAX))
            .min(data.len());
        let identity = FileIdentity {
            id: ino,
            len: data.len() as u64,
            modified: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(ino),
        };
        Ok((data[start..end].to_vec(), identity))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        disk.step()?;
        let ino = disk.lookup(from)?;
        let ((dir, from_name), (_, to_name)) = (Disk::split(from), Disk::split(to));
        let entries = &mut disk.dirs.get_mut(&dir).unwrap().live;
        entries.remove(&from_name);
        entries.insert(to_name, ino);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        disk.step()?;
        disk.lookup(path)?;
        let (dir, name) = Disk::split(path);
        disk.dirs.get_mut(&dir).unwrap().live.remove(&name);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.0.lock().unwrap().slow_dir_sync {
            // Widens the window in which other saves arrive; nothing is timed.
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
        let mut disk = self.0.lock().unwrap();
        disk.step()?;
        if disk.ignore_dir_sync {
            return Ok(());
        }
        let d = disk
            .dirs
            .get_mut(dir)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        d.durable = d.live.clone();
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut disk = self.0.lock().unwrap();
        disk.step()?;
        let d = disk
            .dirs
            .get(dir)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(d.live.keys().cloned().collect())
    }

    fn identity(&self, path: &Path) -> io::Result<FileIdentity> {
        let mut disk = self.0.lock().unwrap();
        disk.step()?;
        let ino = disk.lookup(path)?;
        Ok(FileIdentity {
            id: ino,
            len: disk.inodes[&ino].data.len() as u64,
            modified: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(ino),
        })
    }
}

fn open_store(io: &SimIo) -> Result<(StateCheckpointManager, FsStore), CheckpointError> {
    let mut options = FsStoreOptions::default();
    // Compaction runs when the test says, so that a seed replays the same operations.
    options.background_compaction = false;
    let store = FsStore::open_with("/sim/checkpoints", Arc::new(io.clone()), options)?;
    Ok((StateCheckpointManager::new(Arc::new(store.clone())), store))
}

#[derive(Debug, Default)]
struct Outcome {
    acknowledged: Vec<(CheckpointId, String, u32)>,
    deleted: Vec<CheckpointId>,
}

/// Saves (and sometimes deletes) until the scheduled crash makes an operation fail.
async fn run_until_crash(io: &SimIo, rng: &mut Rng) -> Outcome {
    let mut outcome = Outcome::default();
    let Ok((manager, store)) = open_store(io) else {
        return outcome;
    };
    for step in 0..30u32 {
        let workflow = format!("wf{}", step % 3);
        if step % 7 == 6 && !outcome.acknowledged.is_empty() {
            let victim =
                outcome.acknowledged[rng.below(outcome.acknowledged.len() as u64) as usize].0;
            // Whatever the delete's outcome, the victim is no longer promised to exist.
            outcome.acknowledged.retain(|(id, ..)| *id != victim);
            match manager.delete(&victim).await {
                Ok(_) => outcome.deleted.push(victim),
                Err(_) => return outcome,
            }
            continue;
        }
        let state = vec![step; 50 + step as usize];
        match manager.save_checkpoint(&state, "agent", &workflow).await {
            Ok(id) => outcome.acknowledged.push((id, workflow, step)),
            Err(_) => return outcome,
        }
        if rng.below(3) == 0 {
            // Compacts whatever is queued; the crash may hit any of its operations.
            let report = store.compact_pending_blocking();
            if report.failed > 0 {
                return outcome;
            }
        }
    }
    outcome
}

/// Checks the promises after a crash; returns a description of the first broken one.
async fn check_after_crash(io: &SimIo, outcome: &Outcome) -> Result<(), String> {
    let (manager, store) = open_store(io).map_err(|e| format!("reopen failed: {e}"))?;
    check_promises(&manager, outcome).await?;
    // The reopened store compacts what was left in the cheap form; the promises still hold,
    // and then nothing is left uncompressed.
    let report = store.compact_pending_blocking();
    if report.failed > 0 {
        return Err(format!("compaction after reopen failed: {report:?}"));
    }
    check_promises(&manager, outcome).await?;
    let (manager, _) = open_store(io).map_err(|e| format!("second reopen failed: {e}"))?;
    check_promises(&manager, outcome).await?;
    let left = manager
        .list(&bulwark::checkpoint::ListFilter::all())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|m| m.codec == Codec::None)
        .count();
    if left > 0 {
        return Err(format!(
            "{left} checkpoints still uncompressed after compaction"
        ));
    }
    Ok(())
}

async fn check_promises(manager: &StateCheckpointManager, outcome: &Outcome) -> Result<(), String> {
    for (id, _, step) in &outcome.acknowledged {
        let state: Vec<u32> = manager
            .load_checkpoint(id)
            .await
            .map_err(|e| format!("acknowledged {id} lost: {e}"))?;
        if state != vec![*step; 50 + *step as usize] {
            return Err(format!("acknowledged {id} has the wrong state"));
        }
    }
    for id in &outcome.deleted {
        if !matches!(
            manager.load_checkpoint::<Vec<u32>>(id).await,
            Err(CheckpointError::NotFound { .. })
        ) {
            return Err(format!("deleted {id} came back"));
        }
    }
    for wf in 0..3 {
        let workflow = format!("wf{wf}");
        let last_acked = outcome
            .acknowledged
            .iter()
            .filter(|(_, w, _)| *w == workflow)
            .map(|(id, ..)| *id)
            .max();
        let latest = manager
            .get_latest_checkpoint("agent", &workflow)
            .await
            .map_err(|e| format!("latest failed: {e}"))?;
        if latest < last_acked {
            return Err(format!(
                "latest of {workflow} is {latest:?}, before acknowledged {last_acked:?}"
            ));
        }
    }
    let report = manager.verify_all().await.map_err(|e| e.to_string())?;
    if !report.is_clean() {
        return Err(format!("corrupt after crash: {:?}", report.corrupt));
    }
    Ok(())
}

async fn crash_rounds(rounds: u64, ignore_dir_sync: bool) -> Vec<String> {
    let mut failures = Vec::new();
    for seed in 0..rounds {
        let mut rng = Rng::new(seed);
        let io = SimIo::default();
        {
            let mut disk = io.0.lock().unwrap();
            disk.crash_after = Some(rng.below(260));
            disk.ignore_dir_sync = ignore_dir_sync;
        }
        let outcome = run_until_crash(&io, &mut rng).await;
        io.0.lock().unwrap().crash(&mut rng);
        // The first reopen may itself be interrupted and retried: crash again during recovery,
        // which includes compacting what the crashed run left uncompressed.
        if seed % 5 == 0 {
            io.0.lock().unwrap().crash_after = Some(rng.below(40));
            if let Ok((_, store)) = open_store(&io) {
                store.compact_pending_blocking();
            }
            io.0.lock().unwrap().crash(&mut rng);
        }
        if let Err(failure) = check_after_crash(&io, &outcome).await {
            failures.push(format!("seed {seed}: {failure}"));
        }
    }
    failures
}

#[tokio::test]
async fn every_acknowledged_checkpoint_survives_a_crash_at_any_operation() {
    let failures = crash_rounds(300, false).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn skipping_the_folder_sync_would_lose_acknowledged_checkpoints() {
    // The same schedule on a disk that ignores folder syncs: the checker must notice.
    let failures = crash_rounds(100, true).await;
    assert!(
        !failures.is_empty(),
        "the crash checker cannot tell a broken commit protocol"
    );
}

/// Eight writers save at once (their folder flushes grouped), while the crash hits any
/// operation, including the middle of a group flush; some rounds compact concurrently too.
async fn group_rounds(rounds: u64) -> (Vec<String>, u64, u64) {
    let (mut failures, mut grouped, mut flushes) = (Vec::new(), 0, 0);
    for seed in 0..rounds {
        let mut rng = Rng::new(1000 + seed);
        let io = SimIo::default();
        {
            let mut disk = io.0.lock().unwrap();
            disk.crash_after = Some(40 + rng.below(400));
            disk.slow_dir_sync = true;
        }
        let mut outcome = Outcome::default();
        if let Ok((manager, store)) = open_store(&io) {
            let compacting = seed % 2 == 0;
            let writers: Vec<_> = (0..8u32)
                .map(|writer| {
                    let manager = manager.clone();
                    tokio::spawn(async move {
                        let workflow = format!("wf{}", writer % 3);
                        let mut acked = Vec::new();
                        for step in 0..6u32 {
                            let step = writer * 100 + step;
                            let state = vec![step; 50 + step as usize];
                            match manager.save_checkpoint(&state, "agent", &workflow).await {
                                Ok(id) => acked.push((id, workflow.clone(), step)),
                                Err(_) => break,
                            }
                        }
                        acked
                    })
                })
                .collect();
            let compactor = compacting.then(|| {
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    for _ in 0..20 {
                        if store.compact_pending_blocking().failed > 0 {
                            break;
                        }
                        std::thread::yield_now();
                    }
                })
            });
            for writer in writers {
                outcome.acknowledged.extend(writer.await.unwrap());
            }
            if let Some(compactor) = compactor {
                compactor.await.unwrap();
            }
            let stats = store.commit_stats();
            grouped += stats.grouped_saves;
            flushes += stats.flushes;
        }
        io.0.lock().unwrap().slow_dir_sync = false;
        io.0.lock().unwrap().crash(&mut rng);
        if let Err(failure) = check_after_crash(&io, &outcome).await {
            failures.push(format!("seed {seed}: {failure}"));
        }
    }
    (failures, grouped, flushes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_during_a_group_flush_loses_no_acknowledged_checkpoint() {
    let (failures, grouped, flushes) = group_rounds(60).await;
    assert!(failures.is_empty(), "{failures:#?}");
    // The writers really shared flushes (otherwise this test would not cover a group).
    assert!(
        flushes < grouped,
        "{flushes} folder flushes for {grouped} grouped saves"
    );
}
