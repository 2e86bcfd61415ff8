//! The local ledger: every budget of a process behind one mutex, so that a stacked
//! reservation is checked and taken on all its budgets in one critical section.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::{BudgetError, ConfigError};
use super::observer::{BudgetEvent, BudgetObserver};
use super::price::{Price, PriceTable};
use super::reservation::{Reservation, ReservationRecord, Settlement};
use super::spec::{BudgetSpec, Period, Unit};
use super::state::{Durable, MAX_STACK, Note, Parts, State, cost_of};
use super::usage::Usage;
use crate::clock::{Clock, MonotonicClock, duration_to_nanos};

/// How long a reservation may stay unsettled before it is given back (default 10 minutes).
pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(600);

/// One budget of a ledger for one key, resolved once so that calls skip the name lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BudgetHandle {
    pub(crate) index: u32,
}

/// What one call asks of its budgets: a model (for its price) and a usage.
#[derive(Clone, Copy, Debug)]
pub struct Charge<'a> {
    pub(crate) model: Option<&'a str>,
    pub(crate) usage: Usage,
}

impl<'a> Charge<'a> {
    /// A call to `model` estimated at `usage` (see [`Usage::estimate`]).
    pub fn new(model: &'a str, usage: Usage) -> Self {
        Self {
            model: Some(model),
            usage,
        }
    }

    /// A call without a model: only token and request budgets can take it.
    pub fn tokens(usage: Usage) -> Self {
        Self { model: None, usage }
    }
}

/// One budget key's state, for the API and the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BudgetSnapshot {
    /// The budget.
    pub budget: String,
    /// The key; empty for a global budget.
    pub key: String,
    /// Its unit.
    pub unit: Unit,
    /// Its period.
    pub period: Period,
    /// The limit in force now.
    pub limit: u64,
    /// The soft limit.
    pub soft_limit: Option<u64>,
    /// Settled in the current window.
    pub spent: u64,
    /// Held by unsettled reservations.
    pub reserved: u64,
    /// `limit - spent - reserved`, never below zero.
    pub remaining: u64,
    /// Time until the window resets, in milliseconds; `None` when it never does.
    #[serde(
        rename = "resets_in_ms",
        serialize_with = "crate::serde_duration::millis::serialize"
    )]
    pub resets_in: Option<Duration>,
}

pub(crate) struct Shared<C: Clock> {
    pub(crate) state: Mutex<State>,
    clock: C,
    /// Unix time, in nanoseconds, at the clock's origin.
    unix_origin: u64,
    ttl: u64,
    prices: PriceTable,
    observers: Vec<Arc<dyn BudgetObserver>>,
    /// Tells this ledger's reservation records from another's.
    pub(crate) nonce: u64,
}

/// Token, request and cost budgets, reserved before a call and settled after it.
///
/// Clones share the same budgets. See the [module docs](super) for the algorithm.
pub struct Ledger<C: Clock = MonotonicClock> {
    pub(crate) shared: Arc<Shared<C>>,
}

impl<C: Clock> Clone for Ledger<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Ledger<MonotonicClock> {
    /// A builder on the real clock.
    pub fn builder() -> LedgerBuilder<MonotonicClock> {
        LedgerBuilder {
            clock: MonotonicClock::new(),
            unix_origin: None,
            ttl: DEFAULT_RESERVATION_TTL,
            prices: PriceTable::new(),
            specs: Vec::new(),
            observers: Vec::new(),
        }
    }
}

pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<C: Clock> Ledger<C> {
    /// Unix time now, in nanoseconds, on the ledger's clock.
    pub(crate) fn now(&self) -> u64 {
        self.shared
            .unix_origin
            .saturating_add(self.shared.clock.now_nanos())
    }

    /// The budget named `budget` for `key` (empty for a global one), made full on first use.
    pub fn budget(&self, budget: &str, key: &str) -> Result<BudgetHandle, BudgetError> {
        let now = self.now();
        let mut state = lock(&self.shared.state);
        let spec = *state
            .by_name
            .get(budget)
            .ok_or_else(|| BudgetError::UnknownBudget(budget.to_owned()))?;
        Ok(BudgetHandle {
            index: state.instance(spec, key, now),
        })
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.shared.prices
    }

    fn price(
        &self,
        state: &State,
        stack: &[BudgetHandle],
        charge: &Charge<'_>,
    ) -> Result<Option<Price>, BudgetError> {
        if !state.needs_price(stack.iter().map(|h| h.index)) {
            return Ok(charge.model.and_then(|m| self.shared.prices.get(m)));
        }
        let model = charge.model.unwrap_or_default();
        self.shared
            .prices
            .get(model)
            .map(Some)
            .ok_or_else(|| BudgetError::UnknownModel(model.to_owned()))
    }

    /// Reserves `charge` on every budget of `stack`, or on none: a call must fit every budget
    /// it falls under. Dropping the reservation unsettled gives it back; a reservation never
    /// settled nor dropped (a task that died, a record never restored) is given back at its
    /// deadline.
    pub fn reserve(
        &self,
        stack: &[BudgetHandle],
        charge: &Charge<'_>,
    ) -> Result<Reservation<C>, BudgetError> {
        if stack.len() > MAX_STACK {
            return Err(BudgetError::StackTooDeep {
                got: stack.len(),
                max: MAX_STACK,
            });
        }
        let now = self.now();
        let mut notes = Vec::new();
        let mut state = lock(&self.shared.state);
        if stack
            .iter()
            .any(|h| h.index as usize >= state.instances.len())
        {
            return Err(BudgetError::UnknownBudget(
                "(handle of another ledger)".into(),
            ));
        }
        state.expire(now, &mut notes);
        let price = self.price(&state, stack, charge)?;
        let cost = cost_of(price.as_ref(), &charge.usage);
        let mut indices = [0u32; MAX_STACK];
        for (slot, handle) in indices.iter_mut().zip(stack) {
            *slot = handle.index;
        }
        let result = state.reserve(
            &indices[..stack.len()],
            &charge.usage,
            cost,
            now,
            &mut notes,
        );
        let held = result.map(|parts| {
            let deadline = now.saturating_add(self.shared.ttl);
            let (slot, generation, id) = state.hold(parts, deadline);
            (parts, slot, generation, id, deadline)
        });
        drop(state);
        self.publish(&notes);
        match held {
            Ok((parts, slot, generation, id, deadline)) => Ok(Reservation::new(
                self.clone(),
                parts,
                price,
                charge.usage,
                charge.model,
                slot,
                generation,
                id,
                deadline,
            )),
            Err(exceeded) => {
                self.emit(&BudgetEvent::Rejected(&exceeded));
                Err(exceeded.into())
            }
        }
    }

    /// Settles: gives back the reservation and charges `actual`. Returns whether a budget
    /// ended above its limit.
    pub(crate) fn settle_parts(
        &self,
        held: Option<(u32, u32)>,
        key: (u64, u64),
        parts: &Parts,
        price: Option<&Price>,
        model: Option<&str>,
        actual: &Usage,
    ) -> Settlement {
        let now = self.now();
        let cost = cost_of(price, actual);
        let mut notes = Vec::new();
        let mut state = lock(&self.shared.state);
        // A reservation past its deadline is expired whether or not a reserve swept it yet.
        state.expire(now, &mut notes);
        let was_held = held.and_then(|(slot, generation)| state.take(slot, generation));
        if let Some(held) = &was_held {
            state.release(&held.parts, now);
            state.finish(held, Durable::Settled);
        } else if state.durable.get(&key) == Some(&Durable::Settled) {
            // Another handle on the same record settled it already.
            return Settlement {
                expired: false,
                overspent: false,
                cost: 0,
                replayed: true,
            };
        }
        let overspent = state.charge(parts, actual, cost, now, &mut notes);
        drop(state);
        self.publish(&notes);
        self.emit(&BudgetEvent::Settled {
            model,
            usage: actual,
            cost,
            overspent,
        });
        Settlement {
            expired: was_held.is_none(),
            overspent,
            cost,
            replayed: false,
        }
    }

    /// Gives back a held reservation without charging anything.
    pub(crate) fn release(&self, slot: u32, generation: u32) {
        let now = self.now();
        let mut state = lock(&self.shared.state);
        if let Some(held) = state.take(slot, generation) {
            state.release(&held.parts, now);
            state.finish(&held, Durable::Settled);
        }
    }

    /// Marks a held reservation as a record, so that restoring it is idempotent.
    pub(crate) fn mark_durable(&self, slot: u32, generation: u32, id: u64) {
        lock(&self.shared.state).mark_durable(slot, generation, (self.shared.nonce, id));
    }

    /// Takes back a reservation from its record (after a restart, or in another task): if it
    /// is still held here, the same reservation; if this ledger never saw it (a new process),
    /// it is held again without a limit check, since it was admitted once: counted once, never
    /// twice, however often the record is restored. A record already settled comes back
    /// settled (settling it again charges nothing); one past its deadline comes back expired
    /// (settling it charges the usage, and nothing is held).
    pub fn restore(&self, record: &ReservationRecord) -> Result<Reservation<C>, BudgetError> {
        let now = self.now();
        let mut parts = Parts::default();
        let mut state = lock(&self.shared.state);
        if record.parts.len() > MAX_STACK {
            return Err(BudgetError::InvalidRecord("too many budgets".into()));
        }
        for part in &record.parts {
            let spec = *state
                .by_name
                .get(&part.budget)
                .ok_or_else(|| BudgetError::UnknownBudget(part.budget.clone()))?;
            let instance = state.instance(spec, &part.key, now);
            parts.items[usize::from(parts.len)] = (instance, part.amount);
            parts.len += 1;
        }
        let deadline = record.expires_at_unix_ms.saturating_mul(1_000_000);
        let key = (record.nonce, record.id);
        let (slot, generation, replayed) = match state.durable.get(&key).copied() {
            Some(Durable::Held(slot, generation)) if state.holds(slot, generation) => {
                (slot, generation, false)
            }
            Some(Durable::Settled) => (u32::MAX, 0, true),
            Some(Durable::Held(..) | Durable::Expired) => (u32::MAX, 0, false),
            None if deadline > now => {
                for (i, amount) in parts.iter() {
                    let instance = &mut state.instances[i as usize];
                    instance.reserved = instance.reserved.saturating_add(amount);
                }
                let (slot, generation, _) = state.hold(parts, deadline);
                state.mark_durable(slot, generation, key);
                (slot, generation, false)
            }
            None => (u32::MAX, 0, false),
        };
        let id = record.id;
        drop(state);
        Ok(Reservation::new(
            self.clone(),
            parts,
            record.price,
            record.estimate,
            None,
            slot,
            generation,
            id,
            deadline,
        )
        .restored(record.model.clone(), record.nonce, replayed))
    }

    /// Gives back every reservation past its deadline now (reservations are also expired on
    /// the next `reserve` after a deadline).
    pub fn expire_stale(&self) {
        let now = self.now();
        let mut notes = Vec::new();
        lock(&self.shared.state).expire(now, &mut notes);
        self.publish(&notes);
    }

    /// Tightens `budget` to `remaining` more until `resets_in` from now, when a provider says
    /// less is left than the ledger thinks; never loosens it.
    pub fn tighten(&self, budget: BudgetHandle, remaining: u64, resets_in: Duration) {
        let now = self.now();
        let mut state = lock(&self.shared.state);
        let State {
            specs, instances, ..
        } = &mut *state;
        let Some(instance) = instances.get_mut(budget.index as usize) else {
            return;
        };
        let spec = &specs[instance.spec as usize];
        instance.roll(spec, now);
        let limit = instance.used().saturating_add(remaining);
        if limit < instance.limit(spec, now) {
            instance.ceiling = Some(super::state::Ceiling {
                limit,
                until: now.saturating_add(duration_to_nanos(resets_in)),
            });
        }
    }

    /// Sets `budget`'s hard limit for its key (a tenant on a bigger plan); `None` goes back to
    /// the spec's.
    pub fn set_limit(&self, budget: BudgetHandle, limit: Option<u64>) {
        if let Some(instance) = lock(&self.shared.state)
            .instances
            .get_mut(budget.index as usize)
        {
            instance.limit_override = limit;
        }
    }

    /// The state of one budget key.
    pub fn snapshot_of(&self, budget: BudgetHandle) -> Option<BudgetSnapshot> {
        let now = self.now();
        let mut state = lock(&self.shared.state);
        snapshot(&mut state, budget.index, now)
    }

    /// The state of every budget key, in the order they were first used.
    pub fn snapshot(&self) -> Vec<BudgetSnapshot> {
        let now = self.now();
        let mut state = lock(&self.shared.state);
        (0..state.instances.len())
            .filter_map(|i| snapshot(&mut state, u32::try_from(i).ok()?, now))
            .collect()
    }

    /// Reservations held now.
    pub fn outstanding(&self) -> usize {
        lock(&self.shared.state).outstanding()
    }

    pub(crate) fn emit(&self, event: &BudgetEvent<'_>) {
        for observer in &self.shared.observers {
            observer.on_budget_event(event);
        }
    }

    fn publish(&self, notes: &[Note]) {
        if notes.is_empty() || self.shared.observers.is_empty() {
            return;
        }
        let state = lock(&self.shared.state);
        let described: Vec<(String, String, Unit, &Note)> = notes
            .iter()
            .map(|note| match note {
                Note::Soft { instance, .. } => {
                    let spec = state.spec_of(*instance);
                    let key = state.instances[*instance as usize].key.to_string();
                    (spec.name.clone(), key, spec.unit, note)
                }
                Note::Expired { .. } => (String::new(), String::new(), Unit::Tokens, note),
            })
            .collect();
        drop(state);
        for (budget, key, unit, note) in described {
            match note {
                Note::Soft { used, soft, .. } => self.emit(&BudgetEvent::SoftLimitCrossed {
                    budget: &budget,
                    key: &key,
                    unit,
                    used: *used,
                    soft_limit: *soft,
                }),
                Note::Expired { id, .. } => {
                    let id = ReservationRecord::format_id(self.shared.nonce, *id);
                    tracing::warn!(reservation = %id, "budget reservation expired unsettled; given back");
                    self.emit(&BudgetEvent::Expired { id: &id });
                }
            }
        }
    }
}

fn snapshot(state: &mut State, index: u32, now: u64) -> Option<BudgetSnapshot> {
    let State {
        specs, instances, ..
    } = state;
    let instance = instances.get_mut(index as usize)?;
    let spec = &specs[instance.spec as usize];
    instance.roll(spec, now);
    let limit = instance.limit(spec, now);
    Some(BudgetSnapshot {
        budget: spec.name.clone(),
        key: instance.key.to_string(),
        unit: spec.unit,
        period: spec.period,
        limit,
        soft_limit: spec.soft_limit,
        spent: instance.spent,
        reserved: instance.reserved,
        remaining: limit.saturating_sub(instance.used()),
        resets_in: instance.resets_in(now),
    })
}

impl<C: Clock> fmt::Debug for Ledger<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("budgets", &lock(&self.shared.state).specs.len())
            .field("prices", &self.shared.prices.len())
            .finish()
    }
}

/// Builds a [`Ledger`]; see [`Ledger::builder`].
#[must_use]
pub struct LedgerBuilder<C: Clock> {
    clock: C,
    unix_origin: Option<Duration>,
    ttl: Duration,
    prices: PriceTable,
    specs: Vec<BudgetSpec>,
    observers: Vec<Arc<dyn BudgetObserver>>,
}

impl<C: Clock> LedgerBuilder<C> {
    /// Uses `clock` (a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> LedgerBuilder<C2> {
        LedgerBuilder {
            clock,
            unix_origin: self.unix_origin,
            ttl: self.ttl,
            prices: self.prices,
            specs: self.specs,
            observers: self.observers,
        }
    }

    /// The Unix time at the clock's origin, which places windows on the calendar (default:
    /// now minus the clock's reading). Tests on a manual clock set it to a fixed date.
    pub fn unix_origin(mut self, origin: Duration) -> Self {
        self.unix_origin = Some(origin);
        self
    }

    /// Defines a budget; each key of it is made full on first use.
    pub fn budget(mut self, spec: BudgetSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// The prices cost budgets use.
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// How long a reservation may stay unsettled (default [`DEFAULT_RESERVATION_TTL`]).
    pub fn reservation_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Adds an observer of every [`BudgetEvent`].
    pub fn observer(mut self, observer: Arc<dyn BudgetObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Validates the budgets and builds the ledger.
    pub fn build(self) -> Result<Ledger<C>, ConfigError> {
        let state = State::new(self.specs)?;
        let unix_origin = match self.unix_origin {
            Some(origin) => duration_to_nanos(origin),
            None => {
                let unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, duration_to_nanos);
                unix.saturating_sub(self.clock.now_nanos())
            }
        };
        Ok(Ledger {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                clock: self.clock,
                unix_origin,
                ttl: duration_to_nanos(self.ttl),
                prices: self.prices,
                observers: self.observers,
                nonce: fastrand::u64(..),
            }),
        })
    }
}

impl<C: Clock> fmt::Debug for LedgerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerBuilder")
            .field("budgets", &self.specs)
            .field("ttl", &self.ttl)
            .finish()
    }
}
