//! W3C trace-context identifiers: a 128-bit trace id and a 64-bit span id.
//!
//! Ids are random (the W3C "random trace id" flag is implied), drawn from a per-thread
//! generator seeded from the operating system's hash seed, the thread and the time, so making
//! one costs a few nanoseconds and never locks. Zero is not a valid id in either width; the
//! generator never returns it.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A W3C trace id: 16 bytes, never all zero, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

/// A W3C span id (the spec's "parent-id"): 8 bytes, never all zero, written as 16 lowercase hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

/// Why a string is not a trace or span id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// The string does not have the required number of hex digits.
    #[error("expected {expected} lowercase hex digits, got {got} characters")]
    Length {
        /// Digits required: 32 for a trace id, 16 for a span id.
        expected: usize,
        /// Characters given.
        got: usize,
    },
    /// A character is not a lowercase hex digit.
    #[error("not a lowercase hex digit: {0:?}")]
    NotHex(char),
    /// All zeros, which W3C trace context reserves as invalid.
    #[error("an all-zero id is invalid")]
    Zero,
}

fn parse_hex(s: &str, digits: usize) -> Result<u128, IdParseError> {
    if s.len() != digits {
        return Err(IdParseError::Length {
            expected: digits,
            got: s.chars().count(),
        });
    }
    let mut value: u128 = 0;
    for c in s.chars() {
        let digit = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'a'..='f' => c as u32 - 'a' as u32 + 10,
            other => return Err(IdParseError::NotHex(other)),
        };
        value = (value << 4) | u128::from(digit);
    }
    if value == 0 {
        return Err(IdParseError::Zero);
    }
    Ok(value)
}

impl TraceId {
    /// A new random trace id.
    pub fn random() -> Self {
        loop {
            let id = (u128::from(next_random()) << 64) | u128::from(next_random());
            if id != 0 {
                return Self(id);
            }
        }
    }

    /// The id with this value, or `None` for zero.
    pub const fn from_u128(value: u128) -> Option<Self> {
        if value == 0 { None } else { Some(Self(value)) }
    }

    /// The id as a number.
    pub const fn to_u128(self) -> u128 {
        self.0
    }

    /// The id's 16 bytes, big-endian as on the wire.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl SpanId {
    /// A new random span id.
    pub fn random() -> Self {
        loop {
            let id = next_random();
            if id != 0 {
                return Self(id);
            }
        }
    }

    /// The id with this value, or `None` for zero.
    pub const fn from_u64(value: u64) -> Option<Self> {
        if value == 0 { None } else { Some(Self(value)) }
    }

    /// The id as a number.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// The id's 8 bytes, big-endian as on the wire.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl FromStr for TraceId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex(s, 32).map(Self)
    }
}

impl FromStr for SpanId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // 16 hex digits always fit in a u64.
        parse_hex(s, 16).map(|v| Self(v as u64))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

macro_rules! hex_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
hex_serde!(TraceId);
hex_serde!(SpanId);

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    std::hash::Hash::hash(&std::thread::current().id(), &mut hasher);
    hasher.finish()
}

/// SplitMix64: a full-period 64-bit generator with good statistical quality; each thread
/// starts from its own random seed, so ids from different threads do not collide in practice.
fn next_random() -> u64 {
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ids_round_trip_through_lowercase_hex() {
        let trace = TraceId::random();
        let span = SpanId::random();
        assert_eq!(trace.to_string().len(), 32);
        assert_eq!(span.to_string().len(), 16);
        assert_eq!(trace.to_string().parse::<TraceId>().unwrap(), trace);
        assert_eq!(span.to_string().parse::<SpanId>().unwrap(), span);
    }

    #[test]
    fn zero_uppercase_and_short_ids_are_refused() {
        assert_eq!(
            "00000000000000000000000000000000".parse::<TraceId>(),
            Err(IdParseError::Zero)
        );
        assert_eq!(
            "4BF92F3577B34DA6A3CE929D0E0E4736".parse::<TraceId>(),
            Err(IdParseError::NotHex('B'))
        );
        assert!(matches!(
            "00f067aa0ba902b".parse::<SpanId>(),
            Err(IdParseError::Length { expected: 16, .. })
        ));
    }

    #[test]
    fn random_ids_differ_across_threads() {
        let here = TraceId::random();
        let there = std::thread::spawn(TraceId::random).join().unwrap();
        assert_ne!(here, there);
    }
}
