//! Retention: which checkpoints a cleanup removes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::id::CheckpointId;
use super::metadata::CheckpointMetadata;

/// What to keep. Every condition that is set applies; a workflow's latest valid checkpoint is
/// always kept, whatever the policy says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Keep at most the newest N checkpoints of each (agent, workflow).
    pub keep_last: Option<usize>,
    /// Remove checkpoints older than this.
    #[serde(with = "opt_humantime")]
    pub max_age: Option<Duration>,
    /// Remove the oldest checkpoints until the stored bytes are at most this.
    pub max_total_bytes: Option<u64>,
    /// Remove the oldest checkpoints until at most this many remain in the whole store: with
    /// one workflow id per run, `keep_last` alone does not bound the count (nor the store's
    /// in-memory index, about 1.7 KB per checkpoint).
    pub max_checkpoints: Option<usize>,
    /// Report what would be removed without removing it.
    pub dry_run: bool,
}

impl RetentionPolicy {
    /// Keep the newest `n` checkpoints per (agent, workflow).
    pub fn keep_last(n: usize) -> Self {
        Self {
            keep_last: Some(n),
            ..Self::default()
        }
    }

    /// Also remove checkpoints older than `age`.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Also keep the stored total under `bytes`, removing the oldest first.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = Some(bytes);
        self
    }

    /// Also keep at most `count` checkpoints in the store, removing the oldest first.
    pub fn max_checkpoints(mut self, count: usize) -> Self {
        self.max_checkpoints = Some(count);
        self
    }

    /// Whether any rule is set (a policy with none removes nothing).
    pub fn has_rules(&self) -> bool {
        self.keep_last.is_some()
            || self.max_age.is_some()
            || self.max_total_bytes.is_some()
            || self.max_checkpoints.is_some()
    }

    /// Only report.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
}

/// Which rule removed a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CleanupReason {
    /// Beyond the newest `keep_last` of its workflow.
    KeepLast,
    /// Older than `max_age`.
    MaxAge,
    /// Among the oldest while the total exceeded `max_total_bytes`.
    MaxTotalBytes,
    /// Among the oldest while the store held more than `max_checkpoints`.
    MaxCheckpoints,
}

/// One checkpoint a cleanup removed (or would remove, in a dry run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CleanupItem {
    /// Its metadata.
    pub metadata: CheckpointMetadata,
    /// The rule.
    pub reason: CleanupReason,
}

/// What a cleanup did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CleanupReport {
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
    /// Checkpoints considered.
    pub examined: usize,
    /// Removed (or, in a dry run, to be removed).
    pub removed: Vec<CleanupItem>,
    /// Kept although a rule selected them, because they are their workflow's latest valid one.
    pub protected: Vec<CheckpointId>,
    /// Stored bytes freed (or to be freed).
    pub freed_bytes: u64,
    /// Removals that failed, with the reason.
    pub failed: Vec<(CheckpointId, String)>,
}

/// Decides which of `all` to remove under `policy` at `now`; `protected` are never chosen.
pub(crate) fn plan(
    policy: &RetentionPolicy,
    all: &[CheckpointMetadata],
    protected: &HashSet<CheckpointId>,
    now: SystemTime,
) -> (Vec<CleanupItem>, Vec<CheckpointId>) {
    let mut groups: HashMap<(&str, &str), Vec<&CheckpointMetadata>> = HashMap::new();
    for meta in all {
        groups
            .entry((&meta.agent_id, &meta.workflow_id))
            .or_default()
            .push(meta);
    }
    let mut removed = Vec::new();
    let mut spared = Vec::new();
    let mut survivors = Vec::new();
    for mut group in groups.into_values() {
        group.sort_by_key(|m| std::cmp::Reverse(m.id));
        for (rank, meta) in group.into_iter().enumerate() {
            let reason = if policy.keep_last.is_some_and(|n| rank >= n) {
                Some(CleanupReason::KeepLast)
            } else if policy.max_age.is_some_and(|age| {
                now.duration_since(meta.created_at)
                    .is_ok_and(|elapsed| elapsed > age)
            }) {
                Some(CleanupReason::MaxAge)
            } else {
                None
            };
            match reason {
                Some(_) if protected.contains(&meta.id) => {
                    spared.push(meta.id);
                    survivors.push(meta);
                }
                Some(reason) => removed.push(CleanupItem {
                    metadata: meta.clone(),
                    reason,
                }),
                None => survivors.push(meta),
            }
        }
    }
    if policy.max_total_bytes.is_some() || policy.max_checkpoints.is_some() {
        let mut total: u64 = survivors.iter().map(|m| m.stored_size).sum();
        let mut count = survivors.len();
        survivors.sort_by_key(|m| m.id);
        for meta in survivors {
            let reason = if policy.max_checkpoints.is_some_and(|max| count > max) {
                CleanupReason::MaxCheckpoints
            } else if policy.max_total_bytes.is_some_and(|max| total > max) {
                CleanupReason::MaxTotalBytes
            } else {
                break;
            };
            if protected.contains(&meta.id) {
                if !spared.contains(&meta.id) {
                    spared.push(meta.id);
                }
                continue;
            }
            total -= meta.stored_size;
            count -= 1;
            removed.push(CleanupItem {
                metadata: meta.clone(),
                reason,
            });
        }
    }
    removed.sort_by_key(|item| item.metadata.id);
    (removed, spared)
}

mod opt_humantime {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
