//! Property tests of the envelope decoder over arbitrary and mutated bytes: it returns a typed
//! error or the exact original, never panics and never a silently different state. (The
//! cargo-fuzz target in `fuzz/` explores the same decoder without bounds, on nightly.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use bulwark::checkpoint::envelope::{self, FIXED_HEADER_LEN};
use bulwark::checkpoint::{Codec, Compression, FsStore, StateCheckpointManager};
use proptest::prelude::*;

/// Valid envelopes for every codec, made once through the public API.
fn samples() -> &'static Vec<(Vec<u8>, Vec<u8>)> {
    static SAMPLES: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut out = Vec::new();
            for codec in [Codec::None, Codec::Gzip, Codec::Zstd] {
                let store = std::sync::Arc::new(FsStore::open(dir.path()).unwrap());
                let manager = StateCheckpointManager::builder(store)
                    .compression(Compression::new(codec))
                    .build()
                    .unwrap();
                let state = serde_json::json!({"messages": [{"role": "user", "content": "hello ".repeat(40)}]});
                let id = manager.save_checkpoint(&state, "agent", "wf").await.unwrap();
                let bytes = std::fs::read(dir.path().join(format!("{id}.ckpt"))).unwrap();
                out.push((bytes, serde_json::to_vec(&state).unwrap()));
            }
            out
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = envelope::decode(&bytes, None);
        let _ = envelope::decode_header(&bytes, bytes.len() as u64);
        if bytes.len() >= FIXED_HEADER_LEN {
            let _ = envelope::header_len(&bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic_the_decoder(
        sample in 0usize..3,
        keep in 0usize..200,
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let (bytes, _) = &samples()[sample];
        let mut mutated = bytes[..keep.min(bytes.len())].to_vec();
        mutated.extend_from_slice(&tail);
        let _ = envelope::decode(&mutated, None);
    }

    #[test]
    fn a_mutated_envelope_decodes_to_the_original_or_fails(
        sample in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (bytes, state) = &samples()[sample];
        let mut mutated = bytes.clone();
        for (at, value) in &edits {
            let i = at.index(mutated.len());
            mutated[i] = *value;
        }
        if let Some(at) = truncate {
            mutated.truncate(at.index(mutated.len()));
        }
        if let Ok(decoded) = envelope::decode(&mutated, None) {
            // Only edits that changed nothing that matters may pass, and then the state is exact.
            prop_assert_eq!(&decoded.state, state);
        }
    }
}
