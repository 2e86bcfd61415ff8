//! Why a checkpoint operation failed: one small error per concern, one umbrella error.

use std::io;
use std::path::PathBuf;

use super::id::CheckpointId;

/// A checkpoint id from outside that is not a valid id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not the canonical 36-character hyphenated form of a UUID.
    #[error(
        "{input:?} is not a checkpoint id (expected a UUIDv7 such as 0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b)"
    )]
    Malformed {
        /// The rejected text, escaped and shortened.
        input: String,
    },
    /// A UUID of another version, which does not sort by time.
    #[error("checkpoint ids are UUIDv7, this UUID is version {version}")]
    WrongVersion {
        /// The UUID's version number.
        version: usize,
    },
}

/// Why bytes are not a valid checkpoint envelope. Decoding untrusted bytes returns one of these
/// and never panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than the fixed header.
    #[error("{len} bytes is shorter than the {min}-byte checkpoint header")]
    TooShort {
        /// Bytes present.
        len: u64,
        /// Bytes the fixed header needs.
        min: u64,
    },
    /// The file does not start with the checkpoint magic: not a checkpoint at all.
    #[error("not a checkpoint file (bad magic bytes)")]
    BadMagic,
    /// A format version this build does not read.
    #[error(
        "checkpoint format version {version} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// The version in the file.
        version: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// A codec byte this build does not know.
    #[error("unknown codec {codec}")]
    UnknownCodec {
        /// The codec byte in the file.
        codec: u8,
    },
    /// Flag bits this build does not know.
    #[error("unknown flag bits {flags:#04x}")]
    UnknownFlags {
        /// The flags byte in the file.
        flags: u8,
    },
    /// The metadata length is over the limit.
    #[error("metadata of {len} bytes exceeds the {max}-byte limit")]
    MetadataTooLarge {
        /// Declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The file is shorter than its header says: a torn or truncated write.
    #[error("truncated: header announces {expected} bytes, found {actual}")]
    Truncated {
        /// Length the header announces.
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// The file is longer than its header says.
    #[error("{actual} bytes where the header announces {expected}")]
    TrailingBytes {
        /// Length the header announces.
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// The header checksum does not match: a flipped bit in the header or metadata.
    #[error("header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    HeaderChecksum {
        /// The CRC-32 stored in the file.
        stored: u32,
        /// The CRC-32 of the bytes found.
        computed: u32,
    },
    /// The metadata is not valid.
    #[error("invalid metadata: {reason}")]
    Metadata {
        /// What is wrong with it.
        reason: String,
    },
    /// The payload does not decompress.
    #[error("payload does not decompress: {reason}")]
    Decompress {
        /// The codec's complaint.
        reason: String,
    },
    /// The state decompresses to another size than recorded.
    #[error("state is {actual} bytes, metadata records {expected}")]
    SizeMismatch {
        /// Size recorded in the metadata.
        expected: u64,
        /// Size found (or a lower bound when decompression was stopped early).
        actual: u64,
    },
    /// The SHA-256 of the state does not match the one recorded at save time.
    #[error("SHA-256 mismatch: recorded {expected}, computed {actual}")]
    HashMismatch {
        /// Hex digest recorded at save time.
        expected: String,
        /// Hex digest of the bytes found.
        actual: String,
    },
    /// The payload is encrypted and no key with its key id is configured.
    #[error("payload is encrypted with key {key_id:?}, which is not configured")]
    KeyUnavailable {
        /// The key id recorded in the checkpoint.
        key_id: String,
    },
    /// Authenticated decryption failed: wrong key, tampered bytes, or a blob moved to another
    /// agent, workflow or id.
    #[error("payload does not decrypt (wrong key, tampered, or moved from another checkpoint)")]
    Decrypt,
}

/// A failure inside a [`CheckpointStore`](super::CheckpointStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No checkpoint with this id.
    #[error("checkpoint {id} not found")]
    NotFound {
        /// The id asked for.
        id: CheckpointId,
    },
    /// A checkpoint with this id is already stored.
    #[error("checkpoint {id} already exists")]
    AlreadyExists {
        /// The id.
        id: CheckpointId,
    },
    /// A file's header does not decode.
    #[error("checkpoint {name} is corrupt: {source}")]
    Corrupt {
        /// The id when the file name is one, else the file name.
        name: String,
        /// What is wrong.
        #[source]
        source: DecodeError,
    },
    /// An I/O operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A background task running blocking I/O panicked or was cancelled.
    #[error("checkpoint I/O task failed: {reason}")]
    Task {
        /// The join error.
        reason: String,
    },
    /// Any other backend failure (a database error, say).
    #[error("checkpoint store: {0}")]
    Backend(String),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Every way a [`StateCheckpointManager`](super::StateCheckpointManager) operation can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// An id from outside is not a valid checkpoint id.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// An argument is out of range (an empty agent id, say).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which argument.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// No checkpoint with this id.
    #[error("checkpoint {id} not found")]
    NotFound {
        /// The id asked for.
        id: CheckpointId,
    },
    /// The checkpoint's bytes do not verify: it cannot be trusted.
    #[error("checkpoint {name} is corrupt: {source}")]
    Corrupt {
        /// The checkpoint's id (or file name when the name is not an id).
        name: String,
        /// What is wrong.
        #[source]
        source: DecodeError,
    },
    /// The state could not be serialized.
    #[error("cannot serialize the state: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The stored state verifies but does not deserialize into the type asked for.
    #[error("checkpoint {id} does not deserialize into the requested type: {source}")]
    Deserialize {
        /// The checkpoint.
        id: CheckpointId,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The stored checkpoint exceeds the configured hard size limit.
    #[error(
        "checkpoint of {size} bytes for {agent_id}/{workflow_id} exceeds the {limit}-byte limit"
    )]
    TooLarge {
        /// The agent.
        agent_id: String,
        /// The workflow.
        workflow_id: String,
        /// Stored size.
        size: u64,
        /// The hard limit.
        limit: u64,
    },
    /// Encryption failed or is misconfigured.
    #[error("encryption: {reason}")]
    Encryption {
        /// What went wrong.
        reason: String,
    },
    /// The storage backend failed.
    #[error(transparent)]
    Store(StoreError),
    /// The blocking facade was used from inside an async runtime, or its runtime cannot start.
    #[error("blocking checkpoint API: {reason}")]
    Runtime {
        /// What went wrong.
        reason: String,
    },
}

impl From<StoreError> for CheckpointError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { id } => Self::NotFound { id },
            StoreError::Corrupt { name, source } => Self::Corrupt { name, source },
            other => Self::Store(other),
        }
    }
}

impl CheckpointError {
    /// Whether the error means the stored bytes are damaged (as opposed to missing, refused
    /// or unreachable).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }
}
