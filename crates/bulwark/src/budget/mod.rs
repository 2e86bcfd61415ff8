//! Token, request and cost budgets for LLM calls: reserve before the call, settle after it.
//!
//! **Algorithm.** A budget ([`BudgetSpec`]) counts one [`Unit`] (tokens, input or output
//! tokens, requests, nano-dollars) against a hard `limit` per [`Period`] (fixed windows on Unix
//! time: every N seconds, UTC days, UTC months, or never), for each key it is used with (a
//! provider's model, a tenant, an agent, a workflow run). Each key keeps two numbers in its
//! current window: `spent` (settled) and `reserved` (held by calls in flight). A call
//! *reserves* its bound — prompt tokens plus `max_tokens`, priced — on every budget of its
//! stack: admitted only if, on each, `spent + reserved + amount <= limit` (inclusive: reaching
//! the limit exactly is allowed), and then taken on all of them in the same critical section,
//! so a rejection or a cancellation leaves no partial reservation behind. Because the bound is
//! held before the call, concurrent calls cannot overspend (check-then-charge lets N calls pass
//! the same check). *Settling* gives the reservation back and charges the real usage: a call
//! that used less refunds the difference, one that used more (a provider ignoring
//! `max_tokens`) is charged it and reported `overspent`. A reservation that is never settled
//! expires after its time to live on the ledger's clock and is given back. The hierarchy is the
//! stack: a key's budget never bypasses its team's, because both are in the stack and each must
//! fit. A provider's rate-limit headers can only tighten a budget ([`Ledger::tighten`]).
//!
//! **Cost.** A [`PriceTable`] (dollars per 1M input, cached input and output tokens, from
//! TOML) turns usage into nano-dollars, rounded up. A cost budget for a model without a price
//! is an error ([`BudgetError::UnknownModel`]), never a free call.
//!
//! **Events.** Refusals ([`BudgetExceeded`]: which budget and key, how much is left, when it
//! resets), soft-limit crossings (once per window), expiries and settlements go to
//! [`BudgetObserver`]s, outside the lock.
//!
//! **Durable runs.** [`Reservation::into_record`] turns a held reservation into a
//! [`ReservationRecord`] to keep in a workflow run's state; [`Ledger::restore`] takes it back,
//! in the same process or a new one, holding it at most once and never charging it twice.
//! A [`BudgetExceeded`] is the error a durable step maps to a pause.
//!
//! **Shared budgets.** [`BudgetBackend`] is the async contract of the local [`Ledger`] and of
//! the Redis backend (`redis::RedisBudgets`, feature `redis`), where reserve and settle are each
//! one atomic Lua script and stale reservations expire server-side.
//!
//! ```
//! use bulwark::budget::{BudgetSpec, Charge, Ledger, Period, PriceTable, Unit, Usage};
//! use bulwark::clock::ManualClock;
//! use std::time::Duration;
//!
//! let prices = PriceTable::from_toml("[models.\"gpt-4o\"]\ninput = 2.5\noutput = 10.0")?;
//! let ledger = Ledger::builder()
//!     .clock(ManualClock::new())
//!     .unix_origin(Duration::from_secs(1_765_000_000))
//!     .prices(prices)
//!     .budget(BudgetSpec::new("gpt-4o:tpm", Unit::Tokens, 10_000, Period::minute()))
//!     .budget(BudgetSpec::new("tenant:daily", Unit::Cost, 50_000_000, Period::Day)) // $0.05
//!     .build()?;
//! let stack = [ledger.budget("gpt-4o:tpm", "")?, ledger.budget("tenant:daily", "acme")?];
//!
//! // Reserve the prompt's 1 000 tokens and the completion's bound of 4 000.
//! let reservation = ledger.reserve(&stack, &Charge::new("gpt-4o", Usage::estimate(1_000, 4_000)))?;
//! assert_eq!(ledger.snapshot_of(stack[0]).ok_or("no budget")?.reserved, 5_000);
//! // A second call of the same size no longer fits the per-minute budget.
//! let refused = ledger.reserve(&stack, &Charge::new("gpt-4o", Usage::estimate(1_000, 5_000)));
//! assert_eq!(refused.unwrap_err().exceeded().ok_or("not a refusal")?.remaining, 5_000);
//!
//! // The call used 300 completion tokens: the rest is refunded.
//! let settled = reservation.settle(Usage::new(1_000, 300));
//! assert_eq!(settled.cost, 5_500_000); // $0.0025 + $0.003
//! let tpm = ledger.snapshot_of(stack[0]).ok_or("no budget")?;
//! assert_eq!((tpm.spent, tpm.reserved, tpm.remaining), (1_300, 0, 8_700));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod error;
mod ledger;
mod observer;
mod price;
#[cfg(feature = "redis")]
pub mod redis;
mod reservation;
pub(crate) mod spec;
mod state;
mod usage;

pub use backend::{BudgetBackend, BudgetFuture, BudgetRef};
pub use error::{BudgetError, BudgetExceeded, ConfigError};
pub use ledger::{
    BudgetHandle, BudgetSnapshot, Charge, DEFAULT_RESERVATION_TTL, Ledger, LedgerBuilder,
};
pub use observer::{BudgetEvent, BudgetObserver};
pub use price::{ModelPrice, NANO_USD_PER_USD, Price, PriceTable};
pub use reservation::{PartRecord, Reservation, ReservationRecord, Settlement};
pub use spec::{BudgetSpec, Period, Unit};
pub use state::MAX_STACK;
pub use usage::Usage;
