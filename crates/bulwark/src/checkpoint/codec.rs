//! Compression of the serialized state: none, gzip (what the original system used) or zstd.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::{CheckpointError, DecodeError};

/// How a checkpoint's state is compressed. The byte in the file is [`Codec::to_byte`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Stored as serialized.
    None,
    /// gzip (DEFLATE), as the original system stored its checkpoints.
    Gzip,
    /// Zstandard: about the ratio of gzip at a tenth of the time; the default.
    #[default]
    Zstd,
}

impl Codec {
    /// The codec byte of the envelope.
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Zstd => 2,
        }
    }

    /// The codec of an envelope's codec byte.
    pub const fn from_byte(byte: u8) -> Result<Self, DecodeError> {
        match byte {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Zstd),
            codec => Err(DecodeError::UnknownCodec { codec }),
        }
    }

    /// The level used when none is given: zstd 1 (chosen from the checkpoint bench: 30 % of
    /// the state for a 1 MB chat history, at two thirds of level 3's CPU), gzip 6.
    pub const fn default_level(self) -> i32 {
        match self {
            Self::None => 0,
            Self::Gzip => 6,
            Self::Zstd => 1,
        }
    }

    /// The codec's name as written in metadata and accepted by [`FromStr`].
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Codec {
    type Err = CheckpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            other => Err(CheckpointError::InvalidInput {
                what: "codec",
                reason: format!("{other:?} is not one of none, gzip, zstd"),
            }),
        }
    }
}

/// A codec and its level, as a plain validated value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compression {
    /// The codec.
    pub codec: Codec,
    /// The level: 1–22 (or −7…−1 for zstd's fast levels) for zstd, 0–9 for gzip, ignored for
    /// none.
    pub level: i32,
}

impl Compression {
    /// `codec` at its default level.
    pub const fn new(codec: Codec) -> Self {
        Self {
            codec,
            level: codec.default_level(),
        }
    }

    /// The same codec at `level`.
    pub const fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// Checks the level against the codec's range.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        let ok = match self.codec {
            Codec::None => true,
            Codec::Gzip => (0..=9).contains(&self.level),
            Codec::Zstd => (-7..=22).contains(&self.level) && self.level != 0,
        };
        if ok {
            Ok(())
        } else {
            Err(CheckpointError::InvalidInput {
                what: "compression level",
                reason: format!("{} is out of range for {}", self.level, self.codec),
            })
        }
    }
}

impl Default for Compression {
    /// zstd at level 1.
    fn default() -> Self {
        Self::new(Codec::Zstd)
    }
}

pub(crate) fn compress(compression: Compression, data: &[u8]) -> Result<Vec<u8>, CheckpointError> {
    let failed = |e: std::io::Error| CheckpointError::InvalidInput {
        what: "compression",
        reason: e.to_string(),
    };
    match compression.codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let level = u32::try_from(compression.level).unwrap_or(6).min(9);
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 3 + 64),
                flate2::Compression::new(level),
            );
            encoder.write_all(data).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
        Codec::Zstd => zstd_frame(data, compression.level).map_err(failed),
    }
}

/// One zstd frame holding `data`, with its content size and an XXH64 checksum of the content,
/// which the decoder checks: a damaged payload fails to decompress instead of yielding other
/// bytes.
pub(crate) fn zstd_frame(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    thread_local! {
        /// This thread's compression context and its level: making one allocates and
        /// initializes its tables, a cost worth paying once per thread, not once per frame.
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    use zstd::zstd_safe::CParameter;
    COMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(std::io::Error::other)?;
        let (current, compressor) = match &mut *slot {
            Some(existing) => existing,
            empty => {
                let mut compressor = zstd::bulk::Compressor::new(level)?;
                compressor.set_parameter(CParameter::ChecksumFlag(true))?;
                empty.insert((level, compressor))
            }
        };
        if *current != level {
            compressor.set_parameter(CParameter::CompressionLevel(level))?;
            *current = level;
        }
        compressor.compress(data)
    })
}

/// Whether `stored` is a sequence of zstd frames that each carry a checksum of their content
/// (what [`zstd_frame`] writes), so that decompressing it also verifies it.
pub(crate) fn zstd_frames_checksummed(stored: &[u8]) -> bool {
    const MAGIC: [u8; 4] = 0xFD2F_B528_u32.to_le_bytes();
    const CHECKSUM_FLAG: u8 = 0b100;
    let mut rest = stored;
    while !rest.is_empty() {
        let checked = rest.get(..4) == Some(&MAGIC[..])
            && rest
                .get(4)
                .is_some_and(|descriptor| descriptor & CHECKSUM_FLAG != 0);
        let Ok(len) = zstd::zstd_safe::find_frame_compressed_size(rest) else {
            return false;
        };
        match rest.get(len..) {
            Some(tail) if checked && len > 0 => rest = tail,
            _ => return false,
        }
    }
    !stored.is_empty()
}

/// Pre-allocation for decompression is capped so that a size claimed by a damaged file cannot
/// reserve much memory before any real output exists.
const MAX_PREALLOCATION: u64 = 64 << 20;

/// Decompresses `stored`, refusing to produce more than `expected_size` bytes (so a damaged
/// or hostile file cannot expand without bound).
pub(crate) fn decompress(
    codec: Codec,
    stored: &[u8],
    expected_size: u64,
) -> Result<Vec<u8>, DecodeError> {
    if codec == Codec::Zstd
        && expected_size <= MAX_PREALLOCATION
        && let Some(result) = super::parallel::decompress_zstd_frames(stored, expected_size)
    {
        return result;
    }
    let mut out = Vec::new();
    let prealloc = usize::try_from(expected_size.min(MAX_PREALLOCATION)).unwrap_or(0);
    out.try_reserve_exact(prealloc)
        .map_err(|e| DecodeError::Decompress {
            reason: e.to_string(),
        })?;
    let limit = expected_size.saturating_add(1);
    let result = match codec {
        Codec::None => {
            out.extend_from_slice(stored);
            Ok(())
        }
        Codec::Gzip => flate2::read::GzDecoder::new(stored)
            .take(limit)
            .read_to_end(&mut out)
            .map(|_| ()),
        Codec::Zstd => zstd::stream::read::Decoder::with_buffer(stored)
            .and_then(|decoder| decoder.take(limit).read_to_end(&mut out))
            .map(|_| ()),
    };
    result.map_err(|e| DecodeError::Decompress {
        reason: e.to_string(),
    })?;
    if out.len() as u64 != expected_size {
        return Err(DecodeError::SizeMismatch {
            expected: expected_size,
            actual: out.len() as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn every_codec_round_trips_and_compresses_repetitive_text() {
        let data = b"{\"role\":\"assistant\",\"content\":\"hello\"}".repeat(200);
        for codec in [Codec::None, Codec::Gzip, Codec::Zstd] {
            let stored = compress(Compression::new(codec), &data).unwrap();
            if codec != Codec::None {
                assert!(
                    stored.len() * 4 < data.len(),
                    "{codec} stored {}",
                    stored.len()
                );
            }
            let back = decompress(codec, &stored, data.len() as u64).unwrap();
            assert_eq!(back, data);
            assert_eq!(Codec::from_byte(codec.to_byte()).unwrap(), codec);
            assert_eq!(codec.name().parse::<Codec>().unwrap(), codec);
        }
    }

    #[test]
    fn zstd_frames_carry_checksums_that_catch_a_flipped_byte() {
        let data = b"{\"role\":\"tool\",\"content\":\"42 results\"}".repeat(300);
        let stored = compress(Compression::new(Codec::Zstd), &data).unwrap();
        assert!(zstd_frames_checksummed(&stored));
        assert!(!zstd_frames_checksummed(
            &zstd::bulk::compress(&data, 1).unwrap()
        ));
        assert!(!zstd_frames_checksummed(b""));
        assert!(!zstd_frames_checksummed(&data));
        // Every single-byte flip past the frame header either fails to decode or fails the
        // checksum: none decodes to other bytes.
        for at in 6..stored.len() {
            let mut damaged = stored.clone();
            damaged[at] ^= 0x20;
            if let Ok(back) = decompress(Codec::Zstd, &damaged, data.len() as u64) {
                assert_eq!(back, data, "flip at {at} decoded to other bytes");
            }
        }
    }

    #[test]
    fn decompression_stops_at_the_recorded_size() {
        let data = vec![0u8; 1 << 20];
        let stored = compress(Compression::new(Codec::Zstd), &data).unwrap();
        let err = decompress(Codec::Zstd, &stored, 1000).unwrap_err();
        assert_eq!(
            err,
            DecodeError::SizeMismatch {
                expected: 1000,
                actual: 1001
            }
        );
    }

    #[test]
    fn levels_outside_the_codec_range_are_refused() {
        assert!(
            Compression::new(Codec::Gzip)
                .with_level(10)
                .validate()
                .is_err()
        );
        assert!(
            Compression::new(Codec::Zstd)
                .with_level(23)
                .validate()
                .is_err()
        );
        assert!(
            Compression::new(Codec::Zstd)
                .with_level(19)
                .validate()
                .is_ok()
        );
        assert!(Codec::from_byte(3).is_err());
    }
}
