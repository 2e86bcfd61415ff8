//! Loading, verifying and finding the latest checkpoint: every read checks the envelope's CRC
//! and lengths, and the state's integrity before it is returned — by the SHA-256, or, on a
//! plain load of checksummed zstd frames or a sealed payload, by the codec (XXH64 per frame,
//! or the AEAD tag) unless `verify_on_load` asks for the SHA-256 too. `verify`, `verify_all`
//! and "latest" always compare the SHA-256.

use std::time::Instant;

use serde::de::DeserializeOwned;

use super::crypto::Keyring;
use super::envelope::{self, Decoded};
use super::error::{CheckpointError, DecodeError};
use super::id::CheckpointId;
use super::manager::{LatestCheckpoint, SkippedCheckpoint, StateCheckpointManager};
use super::metadata::CheckpointMetadata;
use super::observer::CheckpointEvent;
use super::parallel;
use super::store::ListFilter;

/// Decodes `bytes` stored under `id` without the final hash check, refusing a file that holds
/// another checkpoint.
fn decode_for(
    id: CheckpointId,
    bytes: &[u8],
    keyring: Option<&Keyring>,
) -> Result<Decoded, CheckpointError> {
    let corrupt = |source| CheckpointError::Corrupt {
        name: id.to_string(),
        source,
    };
    let decoded = envelope::decode_unverified(bytes, keyring).map_err(corrupt)?;
    if decoded.metadata.id != id {
        return Err(corrupt(DecodeError::Metadata {
            reason: format!("stored under {id} but holds {}", decoded.metadata.id),
        }));
    }
    Ok(decoded)
}

impl StateCheckpointManager {
    /// Loads and verifies checkpoint `id` and deserializes its state.
    pub async fn load_checkpoint<T>(&self, id: &CheckpointId) -> Result<T, CheckpointError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.load_with_metadata(id).await.map(|(_, state)| state)
    }

    /// [`load_checkpoint`](Self::load_checkpoint) with the checkpoint's metadata.
    pub async fn load_with_metadata<T>(
        &self,
        id: &CheckpointId,
    ) -> Result<(CheckpointMetadata, T), CheckpointError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let started = Instant::now();
        let id = *id;
        let keyring = self.inner.keyring.clone();
        let always_hash = self.inner.config.verify_on_load;
        let loaded = self
            .read_then(id, move |bytes| {
                let decoded = decode_for(id, &bytes, keyring.as_deref())?;
                let corrupt = |source| CheckpointError::Corrupt {
                    name: id.to_string(),
                    source,
                };
                // One pass validates the UTF-8 of the whole document; parsing a `str` then skips
                // that check string by string. Invalid UTF-8 goes to the byte parser, which
                // reports where it is.
                let parse = || match std::str::from_utf8(&decoded.state) {
                    Ok(text) => serde_json::from_str::<T>(text),
                    Err(_) => serde_json::from_slice::<T>(&decoded.state),
                };
                let check = || envelope::verify_hash(&decoded.metadata, &decoded.state);
                // When decoding proved the state intact (checksummed zstd frames, or an
                // authenticated ciphertext), the SHA-256 is left to `verify` unless
                // `verify_on_load` asks for it; otherwise large states are hashed on a second
                // thread while this one deserializes, and the value is only returned once the
                // hash has matched.
                let (state, verified) = if decoded.intact && !always_hash {
                    (parse(), Ok(()))
                } else if decoded.state.len() >= parallel::PARALLEL_MIN {
                    parallel::both(parse, check).unwrap_or_else(|| {
                        let panicked = DecodeError::Decompress {
                            reason: "the hashing thread panicked".into(),
                        };
                        (parse(), Err(panicked))
                    })
                } else {
                    (parse(), check())
                };
                verified.map_err(corrupt)?;
                let state = state.map_err(|source| CheckpointError::Deserialize { id, source })?;
                Ok((decoded.metadata, state))
            })
            .await;
        self.report_corruption(id, &loaded);
        let (metadata, state) = loaded?;
        self.emit(CheckpointEvent::Loaded {
            metadata: &metadata,
            duration: started.elapsed(),
        });
        Ok((metadata, state))
    }

    /// Reads and verifies `id`: the decoded metadata and the serialized state.
    pub(super) async fn fetch_verified(
        &self,
        id: CheckpointId,
    ) -> Result<Decoded, CheckpointError> {
        let keyring = self.inner.keyring.clone();
        let decoded = self
            .read_then(id, move |bytes| {
                let decoded = decode_for(id, &bytes, keyring.as_deref())?;
                envelope::verify_hash(&decoded.metadata, &decoded.state).map_err(|source| {
                    CheckpointError::Corrupt {
                        name: id.to_string(),
                        source,
                    }
                })?;
                Ok(decoded)
            })
            .await;
        self.report_corruption(id, &decoded);
        decoded
    }

    fn report_corruption<T>(&self, id: CheckpointId, result: &Result<T, CheckpointError>) {
        if let Err(CheckpointError::Corrupt { source, .. }) = result {
            tracing::warn!(%id, error = %source, "corrupt checkpoint");
            self.emit(CheckpointEvent::Corrupt {
                id: Some(id),
                error: source,
            });
        }
    }

    /// The serialized state of `id` as JSON, verified.
    pub async fn load_json(
        &self,
        id: &CheckpointId,
    ) -> Result<(CheckpointMetadata, serde_json::Value), CheckpointError> {
        self.load_with_metadata(id).await
    }

    /// The newest checkpoint of the workflow that verifies; corrupt newer ones are skipped
    /// (and reported to the observer and the log).
    pub async fn get_latest_checkpoint(
        &self,
        agent_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CheckpointId>, CheckpointError> {
        Ok(self
            .latest_valid(agent_id, workflow_id)
            .await?
            .metadata
            .map(|m| m.id))
    }

    /// The newest valid checkpoint of the workflow and the corrupt ones skipped on the way.
    pub async fn latest_valid(
        &self,
        agent_id: &str,
        workflow_id: &str,
    ) -> Result<LatestCheckpoint, CheckpointError> {
        let mut found = LatestCheckpoint::default();
        let mut filter = ListFilter::workflow(agent_id, workflow_id)
            .newest_first()
            .limit(16);
        loop {
            let page = self.inner.store.list(&filter).await?;
            for meta in page.items {
                match self.fetch_verified(meta.id).await {
                    // The listing comes from the index, an accelerator: only the verified
                    // header says whose checkpoint it is (issue 12 defect 5).
                    Ok(decoded)
                        if decoded.metadata.agent_id != agent_id
                            || decoded.metadata.workflow_id != workflow_id =>
                    {
                        let reason = format!(
                            "listed under agent {agent_id:?}, workflow {workflow_id:?}, but its \
                             verified header says agent {:?}, workflow {:?}",
                            decoded.metadata.agent_id, decoded.metadata.workflow_id
                        );
                        tracing::warn!(id = %meta.id, %reason, "checkpoint index disagrees with the checkpoint");
                        found.skipped.push(SkippedCheckpoint {
                            id: meta.id,
                            reason,
                        });
                    }
                    Ok(decoded) => {
                        found.metadata = Some(decoded.metadata);
                        return Ok(found);
                    }
                    // Deleted since it was listed: not a corruption.
                    Err(CheckpointError::NotFound { .. }) => {}
                    Err(error @ CheckpointError::Corrupt { .. }) => {
                        found.skipped.push(SkippedCheckpoint {
                            id: meta.id,
                            reason: error.to_string(),
                        });
                    }
                    Err(other) => return Err(other),
                }
            }
            match page.next_cursor {
                Some(cursor) => filter.cursor = Some(cursor),
                None => return Ok(found),
            }
        }
    }

    /// Reads and verifies `id` (header, lengths, decryption, decompression, SHA-256) and
    /// returns its metadata.
    pub async fn verify(&self, id: &CheckpointId) -> Result<CheckpointMetadata, CheckpointError> {
        Ok(self.fetch_verified(*id).await?.metadata)
    }
}
