//! Keeping the filesystem store's index true: rebuilding it from the folder, rewriting
//! (compacting) the log, and applying records other processes appended.

use std::collections::BTreeMap;
use std::io;
use std::sync::PoisonError;
use std::time::SystemTime;

use super::{EXTENSION, FIXED_HEADER_LEN, FsStore, HEADER_PROBE, State};
use crate::checkpoint::envelope;
use crate::checkpoint::error::{DecodeError, StoreError};
use crate::checkpoint::id::CheckpointId;
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::store::UnreadableCheckpoint;
use crate::checkpoint::store::index::{LogRecord, MemIndex, encode_record, parse_log};

/// What an index rebuild found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RebuildReport {
    /// Checkpoints in the index after the rebuild.
    pub indexed: usize,
    /// Files whose headers had to be read because the log did not know them.
    pub discovered: usize,
    /// Index entries dropped because their file is gone.
    pub dropped: usize,
    /// Files that look like checkpoints but do not decode, each with the reason (also
    /// logged as a warning, and kept for [`CheckpointStore::unreadable`](crate::checkpoint::CheckpointStore::unreadable)).
    pub unreadable: Vec<UnreadableCheckpoint>,
    /// Leftover temporary files removed.
    pub temp_removed: usize,
}

impl FsStore {
    /// Loads the log (when `use_log`), reconciles it with the folder, and compacts the log.
    pub(super) fn rebuild(&self, use_log: bool) -> Result<RebuildReport, StoreError> {
        let _exclusive = self
            .inner
            .rebuild_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let io = &*self.inner.io;
        let mut index = MemIndex::default();
        let mut log_records = 0u64;
        let mut needs_compaction = !use_log;
        let mut log_read = None;
        if use_log {
            match io.read_at(&self.inner.log_path, 0, u64::MAX) {
                Ok((bytes, identity)) => {
                    let (records, consumed, damaged) = parse_log(&bytes);
                    log_records = records.len() as u64;
                    log_read = Some((identity.id, consumed as u64));
                    if consumed != bytes.len() {
                        self.repair_tail(&bytes);
                    }
                    needs_compaction |= damaged > 0 || consumed != bytes.len();
                    // The last record of each id wins, as when applied in order; applying
                    // only those (a compacted checkpoint has two) keeps the index as compact
                    // as one record per checkpoint makes it.
                    let mut last = BTreeMap::new();
                    for record in records {
                        match record {
                            LogRecord::Put { meta } => last.insert(meta.id, Some(meta)),
                            LogRecord::Del { id } => last.insert(id, None),
                        };
                    }
                    for meta in last.into_values().flatten() {
                        index.insert(*meta);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => needs_compaction = true,
                Err(e) => return Err(StoreError::io("read", &self.inner.log_path, e)),
            }
        }
        let names = io
            .list_dir(&self.inner.dir)
            .map_err(|e| StoreError::io("list", &self.inner.dir, e))?;
        let mut report = RebuildReport::default();
        let mut on_disk = std::collections::HashSet::new();
        let mut unreadable = BTreeMap::new();
        for name in names {
            if let Some(stem) = name
                .strip_suffix(EXTENSION)
                .filter(|_| !name.starts_with('.'))
            {
                let id = match stem.parse::<CheckpointId>() {
                    Ok(id) => id,
                    Err(e) => {
                        unreadable.insert(
                            name.clone(),
                            UnreadableCheckpoint {
                                id: None,
                                name,
                                reason: e.to_string(),
                            },
                        );
                        continue;
                    }
                };
                on_disk.insert(id);
                if index.contains(&id) {
                    continue;
                }
                match self.read_header(&id) {
                    Ok(meta) => {
                        index.insert(meta);
                        report.discovered += 1;
                    }
                    Err(StoreError::NotFound { .. }) => {}
                    Err(e) => {
                        unreadable.insert(
                            name.clone(),
                            UnreadableCheckpoint {
                                id: Some(id),
                                name,
                                reason: e.to_string(),
                            },
                        );
                    }
                }
            } else if name.starts_with('.') && name.ends_with(".tmp") {
                let path = self.inner.dir.join(&name);
                let stale = io.identity(&path).is_ok_and(|identity| {
                    SystemTime::now()
                        .duration_since(identity.modified)
                        .is_ok_and(|age| age > self.inner.options.stale_temp_age)
                });
                if stale && io.remove_file(&path).is_ok() {
                    report.temp_removed += 1;
                }
            }
        }
        let gone: Vec<CheckpointId> = index
            .ids()
            .filter(|id| !on_disk.contains(id))
            .copied()
            .collect();
        for id in &gone {
            index.remove(id);
        }
        report.dropped = gone.len();
        report.indexed = index.len();
        report.unreadable = unreadable.values().cloned().collect();
        for item in &report.unreadable {
            tracing::warn!(
                dir = %self.inner.dir.display(),
                file = %item.name,
                reason = %item.reason,
                "checkpoint file does not decode; left out of the index"
            );
        }
        needs_compaction |= report.dropped > 0
            || report.discovered > 0
            || log_records > 2 * index.len() as u64 + self.inner.options.compact_slack;
        let mut state = self.state();
        state.index = index;
        state.unreadable = unreadable;
        state.log_records = log_records;
        if needs_compaction {
            self.compact(&mut state);
        } else if let Some((log_id, consumed)) = log_read {
            // Continue after what was read; records appended since are read by `refresh`.
            state.log_id = Some(log_id);
            state.log_offset = consumed;
        } else {
            self.compact(&mut state);
        }
        Ok(report)
    }

    /// A log that does not end in a newline ends in a torn record; a newline keeps the next
    /// appended record from being glued to it.
    pub(super) fn repair_tail(&self, bytes: &[u8]) {
        if bytes.last().is_some_and(|b| *b != b'\n') {
            let _ = self.inner.io.append(&self.inner.log_path, b"\n");
        }
    }

    /// Rewrites the log from the in-memory index (temp file + rename). Failure is logged: the
    /// log is an accelerator.
    pub(super) fn compact(&self, state: &mut State) {
        let io = &*self.inner.io;
        let mut data = Vec::with_capacity(state.index.len() * 400);
        for meta in state.index.values() {
            data.extend_from_slice(&encode_record(&LogRecord::Put {
                meta: Box::new(meta.clone()),
            }));
        }
        let temp = self.temp_path("index");
        let result = io
            .write_new(&temp, &data, false)
            .and_then(|()| io.rename(&temp, &self.inner.log_path))
            .and_then(|()| io.identity(&self.inner.log_path));
        match result {
            Ok(identity) => {
                state.log_id = Some(identity.id);
                state.log_offset = data.len() as u64;
                state.log_records = state.index.len() as u64;
            }
            Err(error) => {
                let _ = io.remove_file(&temp);
                state.log_id = None;
                tracing::warn!(%error, dir = %self.inner.dir.display(), "cannot rewrite checkpoint index log");
            }
        }
    }

    pub(super) fn read_header(&self, id: &CheckpointId) -> Result<CheckpointMetadata, StoreError> {
        let path = self.path_of(id);
        let not_found_or_io = |e: io::Error| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound { id: *id }
            } else {
                StoreError::io("read", &path, e)
            }
        };
        let (mut bytes, mut identity) = self
            .inner
            .io
            .read_at(&path, 0, HEADER_PROBE)
            .map_err(not_found_or_io)?;
        let corrupt = |source: DecodeError| StoreError::Corrupt {
            name: id.to_string(),
            source,
        };
        if bytes.len() >= FIXED_HEADER_LEN {
            let len = envelope::header_len(&bytes).map_err(corrupt)? as u64;
            if len > bytes.len() as u64 {
                (bytes, identity) = self
                    .inner
                    .io
                    .read_at(&path, 0, len)
                    .map_err(not_found_or_io)?;
            }
        }
        let meta = envelope::decode_header(&bytes, identity.len).map_err(corrupt)?;
        if meta.id != *id {
            return Err(corrupt(DecodeError::Metadata {
                reason: format!("file {} holds checkpoint {}", id.file_name(), meta.id),
            }));
        }
        Ok(meta)
    }

    /// Applies records other processes appended since the last look. A replaced log (another
    /// process compacted it) means a full rebuild.
    pub(super) fn refresh(&self) -> Result<(), StoreError> {
        let io = &*self.inner.io;
        let (log_id, offset) = {
            let state = self.state();
            (state.log_id, state.log_offset)
        };
        let identity = match io.identity(&self.inner.log_path) {
            Ok(identity) => identity,
            Err(_) => return self.rebuild(true).map(|_| ()),
        };
        if Some(identity.id) != log_id || identity.len < offset {
            return self.rebuild(true).map(|_| ());
        }
        if identity.len == offset {
            return Ok(());
        }
        let (bytes, now) = io
            .read_at(&self.inner.log_path, offset, u64::MAX)
            .map_err(|e| StoreError::io("read", &self.inner.log_path, e))?;
        if Some(now.id) != log_id {
            return self.rebuild(true).map(|_| ());
        }
        let (records, consumed, _) = parse_log(&bytes);
        let mut state = self.state();
        if state.log_id == log_id && state.log_offset == offset {
            state.log_records += records.len() as u64;
            for record in records {
                state.index.apply(record);
            }
            state.log_offset = offset + consumed as u64;
        }
        Ok(())
    }
}
