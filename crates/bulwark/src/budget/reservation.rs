//! A reservation held for one call, and its record for a workflow run's checkpoint.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ledger::{Ledger, lock};
use super::price::Price;
use super::state::Parts;
use super::usage::Usage;
use crate::clock::Clock;

/// What settling a reservation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Settlement {
    /// The reservation had expired before it was settled: nothing was given back, the usage
    /// was charged all the same (the call happened).
    pub expired: bool,
    /// A budget ended above its limit: the call used more than it reserved.
    pub overspent: bool,
    /// The call's cost in nano-dollars (zero without a price).
    pub cost: u64,
    /// The reservation was restored from a record already settled: nothing was charged again.
    pub replayed: bool,
}

/// Tokens, requests and money held on a stack of budgets for one call.
///
/// Settle it with the real usage ([`settle`](Self::settle)); dropping it unsettled gives
/// everything back (the call was cancelled). [`into_record`](Self::into_record) keeps it held
/// and turns it into data for a workflow run's checkpoint.
#[must_use = "dropping a reservation gives it back at once"]
pub struct Reservation<C: Clock> {
    ledger: Ledger<C>,
    parts: Parts,
    price: Option<Price>,
    estimate: Usage,
    model: Option<String>,
    slot: u32,
    generation: u32,
    id: u64,
    deadline: u64,
    /// The ledger whose id this is (another process's, for a restored record).
    nonce: u64,
    /// Restored from a record that was already settled: settling again charges nothing.
    replayed: bool,
    done: bool,
}

impl<C: Clock> Reservation<C> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ledger: Ledger<C>,
        parts: Parts,
        price: Option<Price>,
        estimate: Usage,
        model: Option<&str>,
        slot: u32,
        generation: u32,
        id: u64,
        deadline: u64,
    ) -> Self {
        let ledger_nonce = ledger.shared.nonce;
        Self {
            ledger,
            parts,
            price,
            estimate,
            model: model.map(str::to_owned),
            slot,
            generation,
            id,
            deadline,
            nonce: ledger_nonce,
            replayed: false,
            done: false,
        }
    }

    pub(crate) fn restored(mut self, model: Option<String>, nonce: u64, replayed: bool) -> Self {
        self.model = model;
        self.nonce = nonce;
        self.replayed = replayed;
        self
    }

    /// Settles with the call's real usage: the reservation is given back and `actual` charged
    /// on every budget it held, so a call that used less refunds the difference and one that
    /// used more is charged it.
    pub fn settle(mut self, actual: Usage) -> Settlement {
        self.done = true;
        if self.replayed {
            return Settlement {
                expired: false,
                overspent: false,
                cost: 0,
                replayed: true,
            };
        }
        let held = (self.slot != u32::MAX).then_some((self.slot, self.generation));
        self.ledger.settle_parts(
            held,
            (self.nonce, self.id),
            &self.parts,
            self.price.as_ref(),
            self.model.as_deref(),
            &actual,
        )
    }

    /// Gives the reservation back now without charging (the call was never made).
    pub fn release(mut self) {
        self.done = true;
        self.ledger.release(self.slot, self.generation);
    }

    /// The amounts reserved, as (budget, key, amount).
    pub fn amounts(&self) -> Vec<(String, String, u64)> {
        let state = lock(&self.ledger.shared.state);
        self.parts
            .iter()
            .map(|(i, amount)| {
                let spec = state.spec_of(i);
                let key = state.instances[i as usize].key.to_string();
                (spec.name.clone(), key, amount)
            })
            .collect()
    }

    /// The reservation's id, as in its record.
    pub fn id(&self) -> String {
        ReservationRecord::format_id(self.nonce, self.id)
    }

    /// Keeps the reservation held and returns it as data, to store with a workflow run's
    /// state; [`Ledger::restore`] takes it back. Until then the reservation counts, and it
    /// expires at its deadline if never restored.
    pub fn into_record(mut self) -> ReservationRecord {
        self.done = true;
        if self.slot != u32::MAX && self.nonce == self.ledger.shared.nonce {
            self.ledger
                .mark_durable(self.slot, self.generation, self.id);
        }
        ReservationRecord {
            nonce: self.nonce,
            id: self.id,
            parts: self
                .amounts()
                .into_iter()
                .map(|(budget, key, amount)| PartRecord {
                    budget,
                    key,
                    amount,
                })
                .collect(),
            price: self.price,
            estimate: self.estimate,
            model: self.model.take(),
            expires_at_unix_ms: self.deadline / 1_000_000,
        }
    }
}

impl<C: Clock> Drop for Reservation<C> {
    fn drop(&mut self) {
        if !self.done && self.slot != u32::MAX {
            self.ledger.release(self.slot, self.generation);
        }
    }
}

impl<C: Clock> fmt::Debug for Reservation<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("id", &self.id())
            .field("estimate", &self.estimate)
            .field("model", &self.model)
            .finish()
    }
}

/// One budget's share of a reservation record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// The budget's name.
    pub budget: String,
    /// Its key.
    pub key: String,
    /// The amount held, in the budget's unit.
    pub amount: u64,
}

/// A reservation as data: what it holds on which budgets, until when. Serializes into a
/// workflow run's state so that a restart neither loses nor double-counts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRecord {
    /// The ledger that made it.
    pub nonce: u64,
    /// Its number in that ledger.
    pub id: u64,
    /// What it holds.
    pub parts: Vec<PartRecord>,
    /// The price it was reserved at, if any.
    pub price: Option<Price>,
    /// The usage it was reserved for.
    pub estimate: Usage,
    /// The model, if any.
    pub model: Option<String>,
    /// When it expires if never settled, Unix milliseconds.
    pub expires_at_unix_ms: u64,
}

impl ReservationRecord {
    pub(crate) fn format_id(nonce: u64, id: u64) -> String {
        format!("{nonce:016x}-{id}")
    }

    /// The reservation's id, as [`Reservation::id`] gives it.
    pub fn id(&self) -> String {
        Self::format_id(self.nonce, self.id)
    }
}
