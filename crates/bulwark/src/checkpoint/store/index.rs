//! The filesystem store's index: an in-memory map of metadata, persisted as an append-only log
//! of checksummed records (`index.log`).
//!
//! Each record is one line, `<crc32 of the JSON, 8 hex digits> <JSON>\n`, written with a single
//! `O_APPEND` write so that processes sharing the folder append whole records. A line with a bad
//! checksum (a torn write at a crash, or a record interleaved by a remote filesystem) is skipped:
//! the log is an accelerator, and whatever it lacks is recovered from the checkpoint files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::{CheckpointPage, ListFilter};
use crate::checkpoint::id::CheckpointId;
use crate::checkpoint::metadata::CheckpointMetadata;

/// One line of `index.log`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(super) enum LogRecord {
    /// A checkpoint was stored.
    Put { meta: Box<CheckpointMetadata> },
    /// A checkpoint was deleted.
    Del { id: CheckpointId },
}

pub(super) fn encode_record(record: &LogRecord) -> Vec<u8> {
    // Serializing plain data into memory cannot fail; an empty line is skipped by readers.
    let json = serde_json::to_vec(record).unwrap_or_default();
    let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// Records parsed from `bytes`, how many bytes were consumed (only whole lines), and how many
/// lines were damaged.
pub(super) fn parse_log(bytes: &[u8]) -> (Vec<LogRecord>, usize, usize) {
    let mut records = Vec::new();
    let mut consumed = 0;
    let mut damaged = 0;
    while let Some(end) = bytes[consumed..].iter().position(|b| *b == b'\n') {
        let line = &bytes[consumed..consumed + end];
        consumed += end + 1;
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(record) => records.push(record),
            None => damaged += 1,
        }
    }
    (records, consumed, damaged)
}

fn parse_line(line: &[u8]) -> Option<LogRecord> {
    let crc_text = std::str::from_utf8(line.get(..8)?).ok()?;
    let crc = u32::from_str_radix(crc_text, 16).ok()?;
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let json = line.get(9..)?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Metadata by id, and ids by (agent, workflow).
#[derive(Debug, Default)]
pub(super) struct MemIndex {
    by_id: BTreeMap<CheckpointId, CheckpointMetadata>,
    by_workflow: HashMap<(String, String), BTreeSet<CheckpointId>>,
}

impl MemIndex {
    pub(super) fn apply(&mut self, record: LogRecord) {
        match record {
            LogRecord::Put { meta } => self.insert(*meta),
            LogRecord::Del { id } => {
                self.remove(&id);
            }
        }
    }

    pub(super) fn insert(&mut self, meta: CheckpointMetadata) {
        if let Some(old) = self.by_id.remove(&meta.id) {
            self.unlink(&old);
        }
        self.by_workflow
            .entry((meta.agent_id.clone(), meta.workflow_id.clone()))
            .or_default()
            .insert(meta.id);
        self.by_id.insert(meta.id, meta);
    }

    pub(super) fn remove(&mut self, id: &CheckpointId) -> Option<CheckpointMetadata> {
        let meta = self.by_id.remove(id)?;
        self.unlink(&meta);
        Some(meta)
    }

    fn unlink(&mut self, meta: &CheckpointMetadata) {
        let key = (meta.agent_id.clone(), meta.workflow_id.clone());
        if let Some(ids) = self.by_workflow.get_mut(&key) {
            ids.remove(&meta.id);
            if ids.is_empty() {
                self.by_workflow.remove(&key);
            }
        }
    }

    pub(super) fn get(&self, id: &CheckpointId) -> Option<&CheckpointMetadata> {
        self.by_id.get(id)
    }

    pub(super) fn contains(&self, id: &CheckpointId) -> bool {
        self.by_id.contains_key(id)
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = &CheckpointId> {
        self.by_id.keys()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &CheckpointMetadata> {
        self.by_id.values()
    }

    pub(super) fn list(&self, filter: &ListFilter) -> CheckpointPage {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let range = match (filter.cursor, filter.order.is_desc()) {
            (None, _) => (Bound::Unbounded, Bound::Unbounded),
            (Some(c), false) => (Bound::Excluded(c), Bound::Unbounded),
            (Some(c), true) => (Bound::Unbounded, Bound::Excluded(c)),
        };
        let ids: Box<dyn DoubleEndedIterator<Item = &CheckpointId>> =
            match (&filter.agent_id, &filter.workflow_id) {
                (Some(agent), Some(workflow)) => {
                    match self.by_workflow.get(&(agent.clone(), workflow.clone())) {
                        Some(ids) => Box::new(ids.range(range)),
                        None => Box::new(std::iter::empty()),
                    }
                }
                _ => Box::new(self.by_id.range(range).map(|(id, _)| id)),
            };
        let ids: Box<dyn Iterator<Item = &CheckpointId>> = if filter.order.is_desc() {
            Box::new(ids.rev())
        } else {
            ids
        };
        let mut items = Vec::new();
        let mut more = false;
        for meta in ids.filter_map(|id| self.by_id.get(id)) {
            if !filter.matches(meta) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(meta.clone());
        }
        let next_cursor = if more {
            items.last().map(|m: &CheckpointMetadata| m.id)
        } else {
            None
        };
        CheckpointPage { items, next_cursor }
    }
}
