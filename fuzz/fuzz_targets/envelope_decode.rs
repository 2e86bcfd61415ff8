//! Feeds arbitrary bytes to the checkpoint envelope decoder: it must return a typed error or a
//! verified state, and never panic, hang or allocate without bound.
//!
//! Run (nightly toolchain and cargo-fuzz): `cargo +nightly fuzz run envelope_decode -- -max_total_time=60`
#![no_main]

use bulwark::checkpoint::envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = envelope::decode(data, None) {
        // A decoded envelope is self-consistent.
        assert_eq!(decoded.metadata.uncompressed_size, decoded.state.len() as u64);
    }
    let _ = envelope::decode_header(data, data.len() as u64);
});
