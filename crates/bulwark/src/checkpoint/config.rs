//! How a manager encodes and budgets checkpoints, as a plain validated value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cleanup::RetentionPolicy;
use super::codec::Compression;
use super::error::CheckpointError;
use super::id::CheckpointId;

/// Size limits per checkpoint, on the stored (compressed) size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SizeBudget {
    /// Above this a save succeeds with a warning (log and observer event).
    pub warn_bytes: Option<u64>,
    /// Above this a save fails with [`CheckpointError::TooLarge`] and nothing is stored.
    pub max_bytes: Option<u64>,
}

impl SizeBudget {
    /// A budget with a warning size and a hard limit.
    pub fn new(warn_bytes: Option<u64>, max_bytes: Option<u64>) -> Self {
        Self {
            warn_bytes,
            max_bytes,
        }
    }
}

/// The manager's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// Codec and level of new checkpoints (zstd level 1 by default).
    pub compression: Compression,
    /// For states of at least 128 KiB: hash on one thread while compressing on others (zstd
    /// compresses chunks in parallel, as concatenated frames). Measured in docs/PERFORMANCE.md.
    pub parallel: bool,
    /// Per-checkpoint size limits.
    pub size_budget: SizeBudget,
    /// Applied automatically in the background every `cleanup_every` saves, when set.
    pub retention: Option<RetentionPolicy>,
    /// Saves between automatic cleanups.
    pub cleanup_every: u32,
    /// Compare the SHA-256 of the state at every load, even when decoding already proved it
    /// intact (checksummed zstd frames, or an authenticated ciphertext). Off by default: the
    /// frames' XXH64 catches damage and costs nothing extra, the hash costs about 0.7 ms per
    /// MB. `verify`, `verify_all` and "latest" always hash, whatever this says.
    pub verify_on_load: bool,
    /// Compress (and encrypt) before a save returns, even on a store that compacts in the
    /// background. Off by default: on the filesystem store a save is acknowledged in the
    /// cheap form (uncompressed, with its SHA-256) and compressed by the compactor afterwards,
    /// so compression costs the caller nothing. A manager with a keyring that encrypts
    /// always compresses and encrypts first: the cheap form would put plaintext on disk.
    pub compress_before_ack: bool,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            compression: Compression::default(),
            parallel: true,
            size_budget: SizeBudget::default(),
            retention: None,
            cleanup_every: 100,
            verify_on_load: false,
            compress_before_ack: false,
        }
    }
}

impl ManagerConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        self.compression.validate()?;
        if let (Some(warn), Some(max)) = (self.size_budget.warn_bytes, self.size_budget.max_bytes)
            && warn > max
        {
            return Err(CheckpointError::InvalidInput {
                what: "size budget",
                reason: format!("warn_bytes {warn} is above max_bytes {max}"),
            });
        }
        if self.retention.is_some() && self.cleanup_every == 0 {
            return Err(CheckpointError::InvalidInput {
                what: "cleanup_every",
                reason: "must be at least 1 when a retention policy is set".into(),
            });
        }
        Ok(())
    }
}

/// Which checkpoint a new one follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parent {
    /// The workflow's newest checkpoint (the default).
    #[default]
    Latest,
    /// A given checkpoint: resuming from an earlier point branches the history there.
    Explicit(CheckpointId),
    /// None: the start of a new history.
    None,
    /// Fenced: follows exactly this checkpoint (`None`: starts the history), and fails with
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the workflow's newest
    /// checkpoint is anything else at the moment of storing — another writer got there
    /// first. The store checks atomically where it can (PostgreSQL).
    Expect(Option<CheckpointId>),
}

/// Options of one save beyond the state and its owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaveOptions {
    /// User labels stored in the metadata.
    pub labels: BTreeMap<String, String>,
    /// Which checkpoint this one follows.
    pub parent: Parent,
}

impl SaveOptions {
    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the parent.
    pub fn parent(mut self, parent: Parent) -> Self {
        self.parent = parent;
        self
    }
}

/// Longest agent or workflow id accepted.
pub const MAX_NAME_LEN: usize = 512;

pub(crate) fn validate_name(what: &'static str, name: &str) -> Result<(), CheckpointError> {
    let reason = if name.is_empty() {
        "must not be empty".to_owned()
    } else if name.len() > MAX_NAME_LEN {
        format!("{} bytes is longer than {MAX_NAME_LEN}", name.len())
    } else if name.chars().any(char::is_control) {
        "must not contain control characters".to_owned()
    } else {
        return Ok(());
    };
    Err(CheckpointError::InvalidInput { what, reason })
}
