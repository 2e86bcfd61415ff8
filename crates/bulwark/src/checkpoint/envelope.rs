//! The checkpoint envelope: the bytes of one checkpoint file (see docs/checkpoint-format.md).
//!
//! ```text
//! offset  size  field
//!      0     8  magic 0x89 'B' 'W' 'C' 'K' 'P' '\r' '\n'
//!      8     2  format version, u16 little-endian (1)
//!     10     1  codec (0 none, 1 gzip, 2 zstd)
//!     11     1  flags (bit 0: payload encrypted; other bits must be 0)
//!     12     4  metadata length M, u32 LE (at most 1 MiB)
//!     16     8  payload length P, u64 LE
//!     24     4  CRC-32 (IEEE) of bytes 0..24 followed by the M metadata bytes
//!     28     M  metadata, UTF-8 JSON
//!   28+M     P  payload: the serialized state, compressed, then encrypted when flagged
//! ```
//!
//! The file is exactly `28 + M + P` bytes. The CRC guards the header and metadata (so a
//! flipped bit there cannot silently re-label a checkpoint); the SHA-256 in the metadata
//! guards the state. Decoding never trusts a length before checking it against the bytes
//! present, and never panics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::codec::{self, Codec, Compression};
use super::crypto::Keyring;
use super::error::{CheckpointError, DecodeError};
use super::id::CheckpointId;
use super::metadata::{
    CheckpointMetadata, EncryptionInfo, MAX_MILLIS, hex, millis_to_system_time,
    system_time_to_millis,
};
use super::parallel;

/// The first eight bytes of every checkpoint file. The high first byte and the CR LF catch
/// files mangled by text-mode transfers, as PNG's signature does.
pub const MAGIC: [u8; 8] = [0x89, b'B', b'W', b'C', b'K', b'P', b'\r', b'\n'];
/// The envelope format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed header before the metadata.
pub const FIXED_HEADER_LEN: usize = 28;
/// Largest metadata block accepted.
pub const MAX_METADATA_LEN: u32 = 1 << 20;
const FLAG_ENCRYPTED: u8 = 0b1;
const KNOWN_FLAGS: u8 = FLAG_ENCRYPTED;

/// The metadata JSON inside the file. Codec, stored size and version live in the fixed header
/// and are not repeated here.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMeta {
    id: CheckpointId,
    agent_id: String,
    workflow_id: String,
    sequence: u64,
    parent_id: Option<CheckpointId>,
    created_at_ms: u64,
    uncompressed_size: u64,
    sha256: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    encryption: Option<EncryptionInfo>,
}

/// What the caller decides about a checkpoint before it is encoded.
#[derive(Clone, Debug)]
pub(crate) struct NewCheckpoint<'a> {
    pub(crate) id: CheckpointId,
    pub(crate) agent_id: &'a str,
    pub(crate) workflow_id: &'a str,
    pub(crate) sequence: u64,
    pub(crate) parent_id: Option<CheckpointId>,
    pub(crate) created_at_ms: u64,
    pub(crate) labels: BTreeMap<String, String>,
}

/// How the state is turned into a payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EncodeOptions<'a> {
    pub(crate) compression: Compression,
    /// Hash and compress large states on several threads.
    pub(crate) parallel: bool,
    pub(crate) keyring: Option<&'a Keyring>,
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(data));
    out
}

/// SHA-256 and compressed bytes of `state`. Large zstd states are compressed as several
/// frames on several threads (see [`parallel`]); other large states are hashed on a second
/// thread while the calling thread compresses.
fn hash_and_compress(
    state: &[u8],
    options: EncodeOptions<'_>,
) -> Result<([u8; 32], Vec<u8>), CheckpointError> {
    let compression = options.compression;
    let helpers = if options.parallel {
        parallel::helpers_for(state.len())
    } else {
        0
    };
    if helpers == 0 || compression.codec == Codec::None {
        return Ok((sha256(state), codec::compress(compression, state)?));
    }
    if compression.codec == Codec::Zstd {
        return parallel::hash_and_compress_zstd(state, compression.level, helpers, sha256);
    }
    let (compressed, digest) =
        parallel::both(|| codec::compress(compression, state), || sha256(state)).ok_or_else(
            || CheckpointError::InvalidInput {
                what: "state",
                reason: "the hashing thread panicked".into(),
            },
        )?;
    Ok((digest, compressed?))
}

/// Encodes `state` (already serialized) into envelope bytes.
pub(crate) fn encode(
    new: &NewCheckpoint<'_>,
    state: &[u8],
    options: EncodeOptions<'_>,
) -> Result<(CheckpointMetadata, Vec<u8>), CheckpointError> {
    let (digest, compressed) = hash_and_compress(state, options)?;
    let (payload, encryption) = match options.keyring {
        Some(keyring) if keyring.can_encrypt() => {
            let (info, sealed) = keyring.seal(&compressed, &associated_data(new))?;
            (sealed, Some(info))
        }
        _ => (compressed, None),
    };
    let stored = StoredMeta {
        id: new.id,
        agent_id: new.agent_id.to_owned(),
        workflow_id: new.workflow_id.to_owned(),
        sequence: new.sequence,
        parent_id: new.parent_id,
        created_at_ms: new.created_at_ms.min(MAX_MILLIS),
        uncompressed_size: state.len() as u64,
        sha256: hex(&digest),
        labels: new.labels.clone(),
        encryption,
    };
    let meta_json = serde_json::to_vec(&stored).map_err(CheckpointError::Serialize)?;
    let meta_len = u32::try_from(meta_json.len())
        .ok()
        .filter(|len| *len <= MAX_METADATA_LEN)
        .ok_or_else(|| CheckpointError::InvalidInput {
            what: "labels",
            reason: format!(
                "metadata of {} bytes exceeds {MAX_METADATA_LEN}",
                meta_json.len()
            ),
        })?;
    let flags = if stored.encryption.is_some() {
        FLAG_ENCRYPTED
    } else {
        0
    };
    let mut bytes = Vec::with_capacity(FIXED_HEADER_LEN + meta_json.len() + payload.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.push(options.compression.codec.to_byte());
    bytes.push(flags);
    bytes.extend_from_slice(&meta_len.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..24]);
    crc.update(&meta_json);
    bytes.extend_from_slice(&crc.finalize().to_le_bytes());
    bytes.extend_from_slice(&meta_json);
    bytes.extend_from_slice(&payload);
    let metadata = into_metadata(stored, options.compression.codec, payload.len() as u64);
    Ok((metadata, bytes))
}

fn into_metadata(stored: StoredMeta, codec: Codec, stored_size: u64) -> CheckpointMetadata {
    CheckpointMetadata {
        id: stored.id,
        agent_id: stored.agent_id,
        workflow_id: stored.workflow_id,
        sequence: stored.sequence,
        parent_id: stored.parent_id,
        created_at: millis_to_system_time(stored.created_at_ms),
        codec,
        uncompressed_size: stored.uncompressed_size,
        stored_size,
        sha256: stored.sha256,
        labels: stored.labels,
        encryption: stored.encryption,
        format_version: FORMAT_VERSION,
    }
}

/// The associated data an encrypted payload is bound to: agent, workflow and checkpoint id,
/// each length-prefixed so that no two triples give the same bytes.
fn associated_data(new: &NewCheckpoint<'_>) -> Vec<u8> {
    associated_data_of(new.agent_id, new.workflow_id, &new.id)
}

pub(crate) fn associated_data_of(agent: &str, workflow: &str, id: &CheckpointId) -> Vec<u8> {
    let mut ad = Vec::with_capacity(32 + agent.len() + workflow.len() + 16);
    ad.extend_from_slice(b"bulwark-checkpoint-v1");
    for part in [
        agent.as_bytes(),
        workflow.as_bytes(),
        id.as_uuid().as_bytes(),
    ] {
        ad.extend_from_slice(&(part.len() as u64).to_le_bytes());
        ad.extend_from_slice(part);
    }
    ad
}

/// The length of the header (fixed part plus metadata) announced by the first
/// [`FIXED_HEADER_LEN`] bytes, so a reader can fetch exactly the header of a file.
pub fn header_len(prefix: &[u8]) -> Result<usize, DecodeError> {
    let fixed = fixed_header(prefix)?;
    Ok(FIXED_HEADER_LEN + fixed.meta_len as usize)
}

struct Fixed {
    codec: Codec,
    flags: u8,
    meta_len: u32,
    payload_len: u64,
    crc: u32,
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], DecodeError> {
    bytes
        .get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(DecodeError::TooShort {
            len: bytes.len() as u64,
            min: FIXED_HEADER_LEN as u64,
        })
}

fn fixed_header(bytes: &[u8]) -> Result<Fixed, DecodeError> {
    if bytes.len() < FIXED_HEADER_LEN {
        // A prefix of the magic is still a (truncated) checkpoint; anything else is foreign.
        let n = bytes.len().min(MAGIC.len());
        return Err(if bytes[..n] == MAGIC[..n] {
            DecodeError::TooShort {
                len: bytes.len() as u64,
                min: FIXED_HEADER_LEN as u64,
            }
        } else {
            DecodeError::BadMagic
        });
    }
    if read_array::<8>(bytes, 0)? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes(read_array(bytes, 8)?);
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            version,
            supported: FORMAT_VERSION,
        });
    }
    let [codec, flags] = read_array::<2>(bytes, 10)?;
    let codec = Codec::from_byte(codec)?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::UnknownFlags { flags });
    }
    let meta_len = u32::from_le_bytes(read_array(bytes, 12)?);
    if meta_len > MAX_METADATA_LEN {
        return Err(DecodeError::MetadataTooLarge {
            len: u64::from(meta_len),
            max: u64::from(MAX_METADATA_LEN),
        });
    }
    Ok(Fixed {
        codec,
        flags,
        meta_len,
        payload_len: u64::from_le_bytes(read_array(bytes, 16)?),
        crc: u32::from_le_bytes(read_array(bytes, 24)?),
    })
}

/// Decodes and checks the header of an envelope: `header` holds at least the fixed header and
/// metadata, `file_len` is the length of the whole file. The payload is not read, so this is
/// what an index rebuild uses.
pub fn decode_header(header: &[u8], file_len: u64) -> Result<CheckpointMetadata, DecodeError> {
    let fixed = fixed_header(header)?;
    let meta_end = FIXED_HEADER_LEN + fixed.meta_len as usize;
    let expected = (meta_end as u64).saturating_add(fixed.payload_len);
    if file_len < expected {
        return Err(DecodeError::Truncated {
            expected,
            actual: file_len,
        });
    }
    if header.len() < meta_end {
        return Err(DecodeError::Truncated {
            expected: meta_end as u64,
            actual: header.len() as u64,
        });
    }
    if file_len > expected {
        return Err(DecodeError::TrailingBytes {
            expected,
            actual: file_len,
        });
    }
    let meta_bytes = &header[FIXED_HEADER_LEN..meta_end];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..24]);
    crc.update(meta_bytes);
    let computed = crc.finalize();
    if computed != fixed.crc {
        return Err(DecodeError::HeaderChecksum {
            stored: fixed.crc,
            computed,
        });
    }
    let stored: StoredMeta =
        serde_json::from_slice(meta_bytes).map_err(|e| DecodeError::Metadata {
            reason: e.to_string(),
        })?;
    validate_meta(&stored, fixed.flags)?;
    Ok(into_metadata(stored, fixed.codec, fixed.payload_len))
}

fn validate_meta(stored: &StoredMeta, flags: u8) -> Result<(), DecodeError> {
    let bad = |reason: &str| {
        Err(DecodeError::Metadata {
            reason: reason.to_owned(),
        })
    };
    if stored.sha256.len() != 64 || !stored.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad("sha256 is not 64 hex digits");
    }
    if stored.created_at_ms > MAX_MILLIS {
        return bad("created_at is past the year 9999");
    }
    if stored.agent_id.is_empty() || stored.workflow_id.is_empty() {
        return bad("empty agent or workflow id");
    }
    if (flags & FLAG_ENCRYPTED != 0) != stored.encryption.is_some() {
        return bad("encryption flag and metadata disagree");
    }
    Ok(())
}

/// A fully decoded and verified checkpoint.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Its metadata.
    pub metadata: CheckpointMetadata,
    /// The serialized state (JSON), verified against the recorded SHA-256.
    pub state: Vec<u8>,
    /// Whether decoding itself proved the state intact: every zstd frame carried a checksum
    /// of its content, or the payload was encrypted (its authentication tag covers every
    /// byte).
    pub(crate) intact: bool,
}

/// Decodes a whole envelope and verifies it: header checksum, lengths, decryption (with
/// `keyring` when the payload is encrypted), decompression and the state's SHA-256.
///
/// Any byte string is a valid input: the result is a [`DecodeError`], never a panic.
pub fn decode(bytes: &[u8], keyring: Option<&Keyring>) -> Result<Decoded, DecodeError> {
    let decoded = decode_unverified(bytes, keyring)?;
    verify_hash(&decoded.metadata, &decoded.state)?;
    Ok(decoded)
}

/// [`decode`] without the final SHA-256 comparison, so that a loader can verify the hash on one
/// thread while it deserializes on another, or skip it when decoding already proved the state
/// intact ([`Decoded::intact`]). Otherwise the state must not be used before [`verify_hash`]
/// has passed.
pub(crate) fn decode_unverified(
    bytes: &[u8],
    keyring: Option<&Keyring>,
) -> Result<Decoded, DecodeError> {
    let metadata = decode_header(bytes, bytes.len() as u64)?;
    let start = usize::try_from((bytes.len() as u64).saturating_sub(metadata.stored_size))
        .unwrap_or(usize::MAX);
    let payload = bytes.get(start..).ok_or(DecodeError::Truncated {
        expected: metadata.stored_size,
        actual: bytes.len() as u64,
    })?;
    let intact = metadata.encryption.is_some()
        || (metadata.codec == Codec::Zstd && codec::zstd_frames_checksummed(payload));
    let state = open_payload(&metadata, payload, keyring)?;
    Ok(Decoded {
        metadata,
        state,
        intact,
    })
}

/// Compares the SHA-256 of `state` with the one recorded in `metadata`.
pub(crate) fn verify_hash(metadata: &CheckpointMetadata, state: &[u8]) -> Result<(), DecodeError> {
    let actual = hex(&sha256(state));
    if actual.eq_ignore_ascii_case(&metadata.sha256) {
        Ok(())
    } else {
        Err(DecodeError::HashMismatch {
            expected: metadata.sha256.clone(),
            actual,
        })
    }
}

fn open_payload(
    metadata: &CheckpointMetadata,
    payload: &[u8],
    keyring: Option<&Keyring>,
) -> Result<Vec<u8>, DecodeError> {
    let opened;
    let compressed = match &metadata.encryption {
        None => payload,
        Some(info) => {
            let ad = associated_data_of(&metadata.agent_id, &metadata.workflow_id, &metadata.id);
            opened = match keyring {
                Some(keyring) => keyring.open(info, payload, &ad)?,
                None => {
                    return Err(DecodeError::KeyUnavailable {
                        key_id: info.key_id.clone(),
                    });
                }
            };
            &opened
        }
    };
    codec::decompress(metadata.codec, compressed, metadata.uncompressed_size)
}

/// `created_at` for a new checkpoint: now, in milliseconds since the epoch.
pub(crate) fn now_millis() -> u64 {
    system_time_to_millis(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample(codec: Codec) -> (CheckpointMetadata, Vec<u8>, Vec<u8>) {
        let state = br#"{"messages":[{"role":"user","content":"hi"}]}"#.repeat(50);
        let new = NewCheckpoint {
            id: CheckpointId::new(),
            agent_id: "agent",
            workflow_id: "wf",
            sequence: 1,
            parent_id: None,
            created_at_ms: 1_700_000_000_000,
            labels: BTreeMap::from([("step".to_owned(), "plan".to_owned())]),
        };
        let options = EncodeOptions {
            compression: Compression::new(codec),
            parallel: true,
            keyring: None,
        };
        let (meta, bytes) = encode(&new, &state, options).unwrap();
        (meta, bytes, state)
    }

    #[test]
    fn an_encoded_envelope_decodes_to_the_same_state_and_metadata() {
        for codec in [Codec::None, Codec::Gzip, Codec::Zstd] {
            let (meta, bytes, state) = sample(codec);
            let decoded = decode(&bytes, None).unwrap();
            assert_eq!(decoded.state, state);
            assert_eq!(decoded.metadata, meta);
            assert_eq!(decoded.metadata.codec, codec);
            assert_eq!(decoded.metadata.labels["step"], "plan");
        }
    }

    #[test]
    fn a_large_state_compressed_in_parallel_chunks_decodes_to_the_same_bytes() {
        let state: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("{} ", i % 977).into_bytes())
            .collect();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let new = NewCheckpoint {
                id: CheckpointId::new(),
                agent_id: "a",
                workflow_id: "w",
                sequence: 1,
                parent_id: None,
                created_at_ms: 0,
                labels: BTreeMap::new(),
            };
            let encode_with = |parallel| {
                let options = EncodeOptions {
                    compression: Compression::new(codec),
                    parallel,
                    keyring: None,
                };
                encode(&new, &state, options).unwrap()
            };
            let (parallel_meta, parallel_bytes) = encode_with(true);
            let (sequential_meta, _) = encode_with(false);
            assert_eq!(parallel_meta.sha256, sequential_meta.sha256);
            assert_eq!(decode(&parallel_bytes, None).unwrap().state, state);
        }
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let (_, bytes, _) = sample(Codec::Zstd);
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(
                decode(&damaged, None).is_err(),
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let (_, bytes, _) = sample(Codec::Gzip);
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len], None).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::TooShort { .. } | DecodeError::Truncated { .. }
                ),
                "{len}: {err:?}"
            );
        }
    }

    #[test]
    fn unknown_versions_codecs_and_foreign_files_get_their_own_errors() {
        let (_, bytes, _) = sample(Codec::None);
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(matches!(
            decode(&v2, None),
            Err(DecodeError::UnsupportedVersion { version: 2, .. })
        ));
        let mut codec = bytes.clone();
        codec[10] = 9;
        assert_eq!(
            decode(&codec, None).unwrap_err(),
            DecodeError::UnknownCodec { codec: 9 }
        );
        assert_eq!(
            decode(b"hello, I am a text file that wandered in", None).unwrap_err(),
            DecodeError::BadMagic
        );
    }
}
