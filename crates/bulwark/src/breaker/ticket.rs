//! The small values that travel between a breaker and its permits: what a permit allows
//! ([`Ticket`]), why a call was refused ([`Refusal`]) and how a permit ended ([`Finish`]).
//! Each is one machine word, so that holding or returning one never copies a multi-word struct
//! (such copies compiled to store-forwarding stalls that tripled the cost of a closed call).

use super::state::State;

/// What a permit lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Role {
    /// An ordinary call in CLOSED.
    Closed = 0,
    /// A trial call in HALF_OPEN; holds one of the `half_open_max_calls` slots.
    Trial = 1,
    /// A call through a disabled breaker; counted, never trips anything.
    Disabled = 2,
}

/// The breaker's side of a permit, packed in one word (so that holding and settling it never
/// copies a multi-word struct): the epoch that issued it in the low 32 bits, the [`Role`] above.
/// The admission time, when someone needs durations, travels beside it (`start`, else
/// [`NO_START`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

/// `start` of a permit whose call is not being timed.
pub(crate) const NO_START: u64 = u64::MAX;

impl Ticket {
    /// A permit that has been settled already.
    pub(crate) const SPENT: Self = Self(u64::MAX);

    #[inline]
    pub(crate) fn new(epoch: u32, role: Role) -> Self {
        Self(u64::from(epoch) | ((role as u64) << 32))
    }

    #[inline]
    pub(crate) fn epoch(self) -> u32 {
        self.0 as u32
    }

    #[inline]
    pub(crate) fn role(self) -> Option<Role> {
        match self.0 >> 32 {
            0 => Some(Role::Closed),
            1 => Some(Role::Trial),
            2 => Some(Role::Disabled),
            _ => None,
        }
    }

    pub(crate) fn state(self) -> State {
        match self.role() {
            Some(Role::Trial) => State::HalfOpen,
            Some(Role::Disabled) => State::Disabled,
            _ => State::Closed,
        }
    }
}

/// A refusal packed in one word: the refusing state in the low 3 bits, the wait in nanoseconds
/// above (all ones for "no scheduled trial").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal(u64);

impl Refusal {
    const NO_WAIT: u64 = u64::MAX >> 3;

    pub(crate) fn new(state: State, wait: Option<u64>) -> Self {
        let code = match state {
            State::Open => 1,
            State::HalfOpen => 2,
            _ => 3,
        };
        Self(code | (wait.map_or(Self::NO_WAIT, |w| w.min(Self::NO_WAIT - 1)) << 3))
    }

    pub(crate) fn state(self) -> State {
        match self.0 & 7 {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::ForcedOpen,
        }
    }

    pub(crate) fn wait(self) -> Option<u64> {
        let wait = self.0 >> 3;
        (wait != Self::NO_WAIT).then_some(wait)
    }
}

/// How a permit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Success,
    Failure,
    Cancelled,
}
