//! The breaker's states and the packed word that holds the current one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls are rejected until the timeout has passed.
    Open,
    /// A limited number of trial calls pass; their outcome closes or reopens the breaker.
    HalfOpen,
    /// Opened by hand ([`CircuitBreaker::force_open`](super::CircuitBreaker::force_open)):
    /// every call is rejected until [`reset`](super::CircuitBreaker::reset).
    ForcedOpen,
    /// Switched off by hand ([`CircuitBreaker::disable`](super::CircuitBreaker::disable)):
    /// every call passes and nothing trips the breaker until
    /// [`reset`](super::CircuitBreaker::reset).
    Disabled,
}

impl State {
    /// The state's name as the HTTP API shows it (`"closed"`, `"half_open"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
        }
    }

    /// Whether calls are refused outright in this state.
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::ForcedOpen)
    }

    const fn code(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
            Self::ForcedOpen => 3,
            Self::Disabled => 4,
        }
    }

    const fn from_code(code: u64) -> Self {
        match code {
            0 => Self::Closed,
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::ForcedOpen,
            _ => Self::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest value a threshold or a count in the state word can take (20 bits).
pub(crate) const MAX_COUNT: u32 = (1 << 20) - 1;

const KIND_BITS: u32 = 3;
const EPOCH_BITS: u32 = 21;
const EPOCH_SHIFT: u32 = KIND_BITS;
const TRIALS_SHIFT: u32 = EPOCH_SHIFT + EPOCH_BITS;
const COUNT_SHIFT: u32 = TRIALS_SHIFT + 20;
const KIND_MASK: u64 = (1 << KIND_BITS) - 1;
const EPOCH_MASK: u64 = (1 << EPOCH_BITS) - 1;
const FIELD_MASK: u64 = MAX_COUNT as u64;

/// Everything the state machine decides on, packed in one `u64` so that every change is a
/// single compare-and-swap:
///
/// | bits | field | meaning |
/// |---|---|---|
/// | 0..3 | kind | the [`State`] |
/// | 3..24 | epoch | bumped on every change of state; a permit remembers the epoch it was issued in, so an outcome that arrives after the state moved on is not counted against the new state |
/// | 24..44 | trials | trial permits (issued in HALF_OPEN) not yet returned, whatever the state is now: admission in HALF_OPEN requires `trials < half_open_max_calls`, which is what makes the limit strict |
/// | 44..64 | count | CLOSED: consecutive failures; HALF_OPEN: successful trials |
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    pub(crate) const INITIAL: Self = Self(0);

    #[inline]
    pub(crate) const fn kind(self) -> State {
        State::from_code(self.0 & KIND_MASK)
    }

    #[inline]
    pub(crate) const fn epoch(self) -> u32 {
        ((self.0 >> EPOCH_SHIFT) & EPOCH_MASK) as u32
    }

    #[inline]
    pub(crate) const fn trials(self) -> u32 {
        ((self.0 >> TRIALS_SHIFT) & FIELD_MASK) as u32
    }

    #[inline]
    pub(crate) const fn count(self) -> u32 {
        ((self.0 >> COUNT_SHIFT) & FIELD_MASK) as u32
    }

    pub(crate) const fn with_trials(self, trials: u32) -> Self {
        let trials = if trials > MAX_COUNT {
            MAX_COUNT
        } else {
            trials
        };
        Self((self.0 & !(FIELD_MASK << TRIALS_SHIFT)) | ((trials as u64) << TRIALS_SHIFT))
    }

    pub(crate) const fn with_count(self, count: u32) -> Self {
        let count = if count > MAX_COUNT { MAX_COUNT } else { count };
        Self((self.0 & !(FIELD_MASK << COUNT_SHIFT)) | ((count as u64) << COUNT_SHIFT))
    }

    /// The word for entering `kind`: next epoch, count zero, outstanding trials kept.
    pub(crate) const fn next(self, kind: State) -> Self {
        let epoch = (self.epoch() as u64 + 1) & EPOCH_MASK;
        Self(kind.code() | (epoch << EPOCH_SHIFT) | ((self.trials() as u64) << TRIALS_SHIFT))
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Word")
            .field("kind", &self.kind())
            .field("epoch", &self.epoch())
            .field("trials", &self.trials())
            .field("count", &self.count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_fields_round_trip_without_disturbing_each_other() {
        let w = Word::INITIAL
            .next(State::HalfOpen)
            .with_trials(7)
            .with_count(MAX_COUNT);
        assert_eq!(w.kind(), State::HalfOpen);
        assert_eq!(w.epoch(), 1);
        assert_eq!(w.trials(), 7);
        assert_eq!(w.count(), MAX_COUNT);
        let n = w.next(State::Closed);
        assert_eq!(
            (n.kind(), n.epoch(), n.trials(), n.count()),
            (State::Closed, 2, 7, 0)
        );
    }

    #[test]
    fn epoch_wraps_without_touching_the_kind() {
        let mut w = Word::INITIAL;
        for _ in 0..(1u32 << EPOCH_BITS) {
            w = w.next(State::Open);
        }
        assert_eq!(w.epoch(), 0);
        assert_eq!(w.kind(), State::Open);
    }
}
