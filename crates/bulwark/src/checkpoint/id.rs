//! Checkpoint ids: UUIDv7, so that they sort by creation time.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::error::IdError;

/// The id of one checkpoint: a UUID version 7 (RFC 9562), whose first 48 bits are the Unix
/// time in milliseconds, so ids sort by creation time. Within one process the `uuid` crate
/// adds a counter below the millisecond, so ids made by one process are strictly increasing.
///
/// An id from outside (CLI, HTTP) goes through [`FromStr`], which accepts only the canonical
/// 36-character hyphenated form of a version-7 UUID. A file name is built from the parsed
/// 128-bit value, never from the caller's text, so no id can name a path outside the
/// checkpoint folder.
///
/// ```
/// use bulwark::checkpoint::CheckpointId;
///
/// let id = CheckpointId::new();
/// let parsed: CheckpointId = id.to_string().parse()?;
/// assert_eq!(parsed, id);
/// assert!("../../etc/passwd".parse::<CheckpointId>().is_err());
/// # Ok::<(), bulwark::checkpoint::IdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckpointId(Uuid);

impl CheckpointId {
    /// A fresh id for the current time.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// A fresh id that sorts after `previous`: the current time's id, or, when that does not
    /// sort after `previous` (two processes within one millisecond, where UUIDv7's random
    /// bits decide the order, or a clock that stepped back), `previous` plus one in its
    /// random bits. A workflow's newest checkpoint is the one with the greatest id, so a new
    /// checkpoint must sort after the one it extends.
    ///
    /// ```
    /// use bulwark::checkpoint::CheckpointId;
    ///
    /// let first = CheckpointId::new();
    /// let second = CheckpointId::new_after(Some(&first));
    /// assert!(second > first);
    /// assert!(CheckpointId::new_after(Some(&second)) > second);
    /// ```
    pub fn new_after(previous: Option<&CheckpointId>) -> Self {
        let fresh = Self::new();
        match previous {
            Some(previous) if fresh <= *previous => previous.successor(),
            _ => fresh,
        }
    }

    /// The smallest UUIDv7 greater than this one: one more in the 62 random bits after the
    /// variant, or, in the (2^-62) case that they are all ones, the next millisecond.
    fn successor(&self) -> Self {
        const RAND_B: u128 = (1 << 62) - 1;
        let value = self.0.as_u128();
        if value & RAND_B != RAND_B {
            return Self(Uuid::from_u128(value + 1));
        }
        let millis = (value >> 80) + 1;
        // Version 7 in bits 76..80, variant 0b10 in bits 62..64, random parts zero.
        Self(Uuid::from_u128(
            ((millis & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (0b10 << 62),
        ))
    }

    /// The id's 128 bits.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The id from a UUID, which must be version 7.
    pub fn from_uuid(uuid: Uuid) -> Result<Self, IdError> {
        if uuid.get_version_num() == 7 {
            Ok(Self(uuid))
        } else {
            Err(IdError::WrongVersion {
                version: uuid.get_version_num(),
            })
        }
    }

    /// The creation time embedded in the id (millisecond precision).
    pub fn timestamp(&self) -> SystemTime {
        let millis = u64::from_be_bytes({
            let b = self.0.as_bytes();
            [0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]
        });
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    /// The file name this checkpoint has in a filesystem store: `<id>.ckpt`.
    pub(crate) fn file_name(&self) -> String {
        format!("{}.ckpt", self.0.as_hyphenated())
    }
}

impl Default for CheckpointId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.as_hyphenated(), f)
    }
}

impl fmt::Debug for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointId({})", self.0.as_hyphenated())
    }
}

impl FromStr for CheckpointId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical hyphenated form: `uuid` would also accept braces, `urn:` prefixes
        // and the 32-digit form, which would give one checkpoint several spellings.
        let bytes = s.as_bytes();
        let well_formed = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        if !well_formed {
            return Err(IdError::Malformed {
                input: truncate_for_message(s),
            });
        }
        let uuid = Uuid::try_parse(s).map_err(|_| IdError::Malformed {
            input: truncate_for_message(s),
        })?;
        Self::from_uuid(uuid)
    }
}

fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.escape_debug().to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s[..end].escape_debug())
}

impl Serialize for CheckpointId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CheckpointId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_id_made_after_another_sorts_after_it_and_stays_a_v7_id() {
        let far_future = CheckpointId::from_uuid(Uuid::from_u128(
            (0xFFFF_FFFF_FFF0_u128 << 80) | (0x7 << 76) | (0b10 << 62) | 5,
        ))
        .unwrap();
        let next = CheckpointId::new_after(Some(&far_future));
        assert!(next > far_future);
        assert_eq!(next.as_uuid().get_version_num(), 7);
        assert_eq!(next.to_string().parse::<CheckpointId>().unwrap(), next);
        // All random bits set: the successor moves to the next millisecond.
        let full = CheckpointId::from_uuid(Uuid::from_u128(
            (0xFFFF_FFFF_FFF0_u128 << 80) | (0x7 << 76) | (0b10 << 62) | ((1 << 62) - 1),
        ))
        .unwrap();
        let next = CheckpointId::new_after(Some(&full));
        assert!(next > full);
        assert_eq!(next.as_uuid().get_version_num(), 7);
        assert_eq!(next.as_uuid().get_variant(), uuid::Variant::RFC4122);
        assert_eq!(
            next.timestamp().duration_since(full.timestamp()).unwrap(),
            Duration::from_millis(1)
        );
        // An older previous id does not hold the new one back.
        let old = CheckpointId::new();
        assert!(CheckpointId::new_after(Some(&old)) > old);
    }

    #[test]
    fn ids_made_in_sequence_sort_in_sequence() {
        let ids: Vec<_> = (0..1000).map(|_| CheckpointId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn only_the_canonical_form_of_a_v7_uuid_parses() {
        let id = CheckpointId::new();
        let text = id.to_string();
        assert_eq!(text.parse::<CheckpointId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<CheckpointId>().unwrap(), id);
        for bad in [
            "",
            "..",
            "../../etc/passwd",
            "0190a1b2-0000-7000-8000-00000000000/",
            "0190a1b2-0000-7000-8000-000000000000/..",
            &text.replace('-', ""),
            &format!("{{{text}}}"),
            &format!("urn:uuid:{text}"),
            "0190a1b2-0000-4000-8000-000000000000",
            "0190a1b2\\0000-7000-8000-000000000000",
        ] {
            assert!(bad.parse::<CheckpointId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_timestamp_is_the_creation_time_to_the_millisecond() {
        let before = SystemTime::now() - Duration::from_millis(1);
        let id = CheckpointId::new();
        let after = SystemTime::now() + Duration::from_millis(1);
        assert!(id.timestamp() >= before && id.timestamp() <= after);
    }
}
