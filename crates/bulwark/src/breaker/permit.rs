//! Permission to make one call, returned to the breaker when it is settled or dropped.

use std::fmt;
use std::sync::Arc;

use super::core::Core;
use super::state::State;
use super::ticket::{Finish, Ticket};
use crate::clock::{Clock, MonotonicClock};

/// How a permit ends when it is dropped unsettled: a panic unwinding through it is a failure of
/// the call; any other drop (a cancelled future) gives the permit back without counting.
fn on_drop() -> Finish {
    if std::thread::panicking() {
        Finish::Failure
    } else {
        Finish::Cancelled
    }
}

/// Permission to make one call, borrowed from a [`CircuitBreaker`](super::CircuitBreaker).
///
/// Settle it with [`success`](Self::success), [`failure`](Self::failure) or
/// [`record`](Self::record). Dropping it unsettled returns a trial slot without counting the
/// call (a cancelled call), or counts a failure if the thread is panicking, so a breaker never
/// stays stuck in HALF_OPEN because a trial vanished.
#[must_use = "a permit should be settled with success() or failure()"]
pub struct Permit<'a, C: Clock = MonotonicClock> {
    core: &'a Core<C>,
    ticket: Ticket,
    start: u64,
}

/// A [`Permit`] that owns a handle on its breaker, for futures that must be `'static`.
#[must_use = "a permit should be settled with success() or failure()"]
pub struct OwnedPermit<C: Clock = MonotonicClock> {
    core: Arc<Core<C>>,
    ticket: Ticket,
    start: u64,
}

macro_rules! permit_methods {
    () => {
        /// The call succeeded.
        #[inline]
        pub fn success(self) {
            self.record(false);
        }

        /// The call failed.
        pub fn failure(self) {
            self.record(true);
        }

        /// The call ended; `failed` says whether it counts as a failure.
        #[inline]
        pub fn record(mut self, failed: bool) {
            let ticket = std::mem::replace(&mut self.ticket, Ticket::SPENT);
            let finish = if failed {
                Finish::Failure
            } else {
                Finish::Success
            };
            self.core.finish(ticket, self.start, finish);
        }

        /// The state that admitted the call: CLOSED, HALF_OPEN (a trial) or DISABLED.
        pub fn state(&self) -> State {
            self.ticket.state()
        }
    };
}

impl<'a, C: Clock> Permit<'a, C> {
    #[inline]
    pub(crate) fn new(core: &'a Core<C>, (ticket, start): (Ticket, u64)) -> Self {
        Self {
            core,
            ticket,
            start,
        }
    }

    permit_methods!();
}

impl<C: Clock> OwnedPermit<C> {
    pub(crate) fn new(core: Arc<Core<C>>, (ticket, start): (Ticket, u64)) -> Self {
        Self {
            core,
            ticket,
            start,
        }
    }

    permit_methods!();
}

impl<C: Clock> Drop for Permit<'_, C> {
    fn drop(&mut self) {
        if self.ticket != Ticket::SPENT {
            self.core.finish(self.ticket, self.start, on_drop());
        }
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    fn drop(&mut self) {
        if self.ticket != Ticket::SPENT {
            self.core.finish(self.ticket, self.start, on_drop());
        }
    }
}

impl<C: Clock> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.core.name)
            .field("state", &self.state())
            .finish()
    }
}

impl<C: Clock> fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.core.name)
            .field("state", &self.state())
            .finish()
    }
}
