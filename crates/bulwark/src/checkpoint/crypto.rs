//! Encryption at rest (cargo feature `encryption`): XChaCha20-Poly1305 with the agent, workflow
//! and checkpoint ids as associated data, so a payload moved to another checkpoint fails to
//! open. Each checkpoint records the id of the key that sealed it; a [`Keyring`] holds the
//! active key and older keys kept for reading.

use std::collections::HashMap;
use std::fmt;

use super::error::{CheckpointError, DecodeError};
use super::metadata::EncryptionInfo;

#[cfg(feature = "encryption")]
const ALGORITHM: &str = "xchacha20poly1305";
#[cfg(feature = "encryption")]
const NONCE_LEN: usize = 24;

/// Keys for sealing and opening checkpoint payloads. Without the `encryption` feature a keyring
/// holds no key, and encrypted checkpoints report [`DecodeError::KeyUnavailable`].
#[derive(Clone, Default)]
pub struct Keyring {
    active: Option<String>,
    keys: HashMap<String, [u8; 32]>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring that seals new checkpoints with `key`, recorded as `key_id`.
    #[cfg(feature = "encryption")]
    pub fn new(key_id: impl Into<String>, key: [u8; 32]) -> Self {
        let key_id = key_id.into();
        Self {
            keys: HashMap::from([(key_id.clone(), key)]),
            active: Some(key_id),
        }
    }

    /// Adds a key that is only used to open checkpoints sealed with it (after a rotation).
    #[cfg(feature = "encryption")]
    pub fn with_old_key(mut self, key_id: impl Into<String>, key: [u8; 32]) -> Self {
        self.keys.insert(key_id.into(), key);
        self
    }

    /// The id of the key new checkpoints are sealed with.
    pub fn active_key_id(&self) -> Option<&str> {
        self.active.as_deref()
    }

    pub(crate) fn can_encrypt(&self) -> bool {
        self.active.is_some()
    }

    #[cfg(feature = "encryption")]
    pub(crate) fn seal(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<(EncryptionInfo, Vec<u8>), CheckpointError> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};

        let failed = |reason: String| CheckpointError::Encryption { reason };
        let key_id = self
            .active
            .clone()
            .ok_or_else(|| failed("no active key".into()))?;
        let key = self
            .keys
            .get(&key_id)
            .ok_or_else(|| failed(format!("active key {key_id:?} missing")))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| failed(format!("no randomness: {e}")))?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated_data,
                },
            )
            .map_err(|_| failed("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok((
            EncryptionInfo {
                algorithm: ALGORITHM.to_owned(),
                key_id,
            },
            out,
        ))
    }

    #[cfg(not(feature = "encryption"))]
    pub(crate) fn seal(
        &self,
        _plaintext: &[u8],
        _associated_data: &[u8],
    ) -> Result<(EncryptionInfo, Vec<u8>), CheckpointError> {
        Err(CheckpointError::Encryption {
            reason: "built without the `encryption` feature".into(),
        })
    }

    #[cfg(feature = "encryption")]
    pub(crate) fn open(
        &self,
        info: &EncryptionInfo,
        sealed: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, DecodeError> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};

        if info.algorithm != ALGORITHM {
            return Err(DecodeError::Metadata {
                reason: format!("unknown encryption algorithm {:?}", info.algorithm),
            });
        }
        let key = self
            .keys
            .get(&info.key_id)
            .ok_or_else(|| DecodeError::KeyUnavailable {
                key_id: info.key_id.clone(),
            })?;
        if sealed.len() < NONCE_LEN {
            return Err(DecodeError::Decrypt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        XChaCha20Poly1305::new(key.into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .map_err(|_| DecodeError::Decrypt)
    }

    #[cfg(not(feature = "encryption"))]
    pub(crate) fn open(
        &self,
        info: &EncryptionInfo,
        _sealed: &[u8],
        _associated_data: &[u8],
    ) -> Result<Vec<u8>, DecodeError> {
        Err(DecodeError::KeyUnavailable {
            key_id: info.key_id.clone(),
        })
    }
}
