//! Durable, verified checkpoints of agent and workflow state.
//!
//! A save serializes the state to JSON, hashes it (SHA-256), compresses it (zstd by default,
//! gzip or none), optionally encrypts it, and wraps it in an [`envelope`]: magic, format
//! version, codec, metadata (id, agent, workflow, sequence, parent, time, sizes, hash, labels)
//! under a CRC-32, then the payload; large zstd states are compressed on every core as
//! several frames, each with a checksum of its content. The [`FsStore`] makes it durable
//! before the save returns: temp file, `fdatasync`, `rename`, `fsync` of the folder (shared by
//! concurrent saves: group commit). On the [`FsStore`] a save is acknowledged in the cheap
//! form (uncompressed, with its SHA-256) and a background compactor compresses it afterwards;
//! with a keyring, or [`ManagerConfig::compress_before_ack`], it is compressed first. A load
//! checks the CRC, the lengths and the content (by the zstd frames' checksums or the
//! encryption's tag when present, otherwise by the SHA-256; `verify`, "latest" and every load
//! of a manager built with `verify_on_load(true)` check the SHA-256), so a damaged checkpoint is a typed [`CheckpointError::Corrupt`] naming it, never
//! a wrong state. Ids are UUIDv7 ([`CheckpointId`]) and sort by time; "latest" walks a workflow's
//! checkpoints newest first and skips the corrupt ones.
//!
//! The store's index (metadata by id and by workflow) lives in memory and in an append-only
//! log; it is an accelerator, rebuilt from the files' headers when missing or damaged, so a
//! save costs the same however many checkpoints exist. The byte format, the commit protocol
//! and the crash cases are in `docs/checkpoint-format.md`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use bulwark::checkpoint::StateCheckpointManager;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! struct Conversation { messages: Vec<String> }
//!
//! let dir = tempfile::tempdir()?;
//! let manager = StateCheckpointManager::open(dir.path()).await?;
//! let first = Conversation { messages: vec!["hello".into()] };
//! let id = manager.save_checkpoint(&first, "agent-1", "support-chat").await?;
//! let second = Conversation { messages: vec!["hello".into(), "how can I help?".into()] };
//! let latest = manager.save_checkpoint(&second, "agent-1", "support-chat").await?;
//!
//! assert_eq!(manager.get_latest_checkpoint("agent-1", "support-chat").await?, Some(latest));
//! assert_eq!(manager.load_checkpoint::<Conversation>(&id).await?, first);
//! let meta = manager.metadata(&latest).await?;
//! assert_eq!((meta.sequence, meta.parent_id), (2, Some(id)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod auto;
mod blocking;
mod cleanup;
mod codec;
mod config;
mod crypto;
pub mod envelope;
mod error;
mod id;
mod load;
mod maintenance;
mod manager;
mod metadata;
mod observer;
mod parallel;
mod save;
pub mod store;

pub use auto::AutoCheckpointer;
pub use blocking::BlockingCheckpointManager;
pub use cleanup::{CleanupItem, CleanupReason, CleanupReport, RetentionPolicy};
pub use codec::{Codec, Compression};
pub use config::{MAX_NAME_LEN, ManagerConfig, Parent, SaveOptions, SizeBudget};
pub use crypto::Keyring;
pub use error::{CheckpointError, DecodeError, IdError, StoreError};
pub use id::CheckpointId;
pub use maintenance::{CorruptCheckpoint, VerifyReport};
pub use manager::{LatestCheckpoint, ManagerBuilder, SkippedCheckpoint, StateCheckpointManager};
pub use metadata::{CheckpointMetadata, EncryptionInfo};
pub use observer::{CheckpointEvent, CheckpointObserver, DeleteReason};
pub use store::{
    CheckpointPage, CheckpointStore, CommitStats, CompactionReport, CompactionStats, FsStore,
    FsStoreOptions, ListFilter, ListOrder, LocalStore, UnreadableCheckpoint,
};

/// The subfolder of the server's data dir that holds checkpoints (`<data_dir>/checkpoints`).
pub const DATA_SUBDIR: &str = "checkpoints";
