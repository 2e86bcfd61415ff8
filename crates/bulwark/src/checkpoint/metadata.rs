//! What is known about a checkpoint without reading its state.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::codec::Codec;
use super::id::CheckpointId;

/// The metadata of one checkpoint, as stored in its envelope and returned by `metadata`,
/// `list` and the HTTP API. Times serialize as RFC 3339 strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CheckpointMetadata {
    /// The checkpoint's id (sorts by creation time).
    pub id: CheckpointId,
    /// The agent whose state this is.
    pub agent_id: String,
    /// The workflow the agent was running.
    pub workflow_id: String,
    /// Position in the workflow's history: the parent's sequence plus one, starting at 1.
    pub sequence: u64,
    /// The checkpoint this one follows, when there is one.
    pub parent_id: Option<CheckpointId>,
    /// When the checkpoint was saved (millisecond precision).
    #[serde(with = "rfc3339")]
    pub created_at: SystemTime,
    /// How the state is compressed.
    pub codec: Codec,
    /// Size of the serialized state.
    pub uncompressed_size: u64,
    /// Size of the stored payload (compressed, and encrypted when encryption is on).
    pub stored_size: u64,
    /// SHA-256 of the serialized (uncompressed) state, lowercase hex.
    pub sha256: String,
    /// User labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Encryption details, when the payload is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// The envelope format version the checkpoint was written in.
    pub format_version: u16,
}

impl CheckpointMetadata {
    /// Stored size ÷ uncompressed size (0 for an empty state).
    pub fn compression_ratio(&self) -> f64 {
        if self.uncompressed_size == 0 {
            0.0
        } else {
            self.stored_size as f64 / self.uncompressed_size as f64
        }
    }

    /// Milliseconds since the Unix epoch of `created_at`.
    pub fn created_at_millis(&self) -> u64 {
        system_time_to_millis(self.created_at)
    }
}

/// How a checkpoint's payload is encrypted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EncryptionInfo {
    /// The AEAD, e.g. `xchacha20poly1305`.
    pub algorithm: String,
    /// The id of the key that sealed it, for rotation.
    pub key_id: String,
}

/// The latest year RFC 3339 can spell; later times in a file are refused as corrupt.
pub(crate) const MAX_MILLIS: u64 = 253_402_300_799_999;

pub(crate) fn system_time_to_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
        .min(MAX_MILLIS)
}

pub(crate) fn millis_to_system_time(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis.min(MAX_MILLIS))
}

pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{millis_to_system_time, system_time_to_millis};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        // Clamped into 1970..=9999 so that formatting can never fail.
        let clamped = millis_to_system_time(system_time_to_millis(*t));
        s.collect_str(&humantime::format_rfc3339_millis(clamped))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&s).map_err(serde::de::Error::custom)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
