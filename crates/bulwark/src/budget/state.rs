//! The ledger's arithmetic, without locks or clocks: budget instances, held reservations and
//! the decisions on them. Every function takes the time as Unix nanoseconds.

use std::sync::Arc;

use hashbrown::HashMap;

use super::error::{BudgetExceeded, ConfigError};
use super::price::Price;
use super::spec::{BudgetSpec, Unit};
use super::usage::Usage;

/// The most budgets one call can fall under.
pub const MAX_STACK: usize = 8;

/// A provider's word that less is left than the budget thinks, until a reset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ceiling {
    pub(crate) limit: u64,
    pub(crate) until: u64,
}

/// One key of one budget, in its current window.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) spec: u32,
    pub(crate) key: Arc<str>,
    pub(crate) window: u64,
    pub(crate) window_end: u64,
    pub(crate) spent: u64,
    pub(crate) reserved: u64,
    pub(crate) limit_override: Option<u64>,
    pub(crate) ceiling: Option<Ceiling>,
    /// The window in which the soft limit was last reported crossed.
    pub(crate) soft_reported: Option<u64>,
}

impl Instance {
    pub(crate) fn used(&self) -> u64 {
        self.spent.saturating_add(self.reserved)
    }

    /// Moves to the window holding `now`; spending from a past window no longer counts, and
    /// reservations still held carry over (their calls are in flight).
    pub(crate) fn roll(&mut self, spec: &BudgetSpec, now: u64) {
        if now >= self.window_end {
            let (window, end) = spec.period.window(now);
            if window != self.window {
                self.window = window;
                self.spent = 0;
            }
            self.window_end = end;
        }
    }

    /// Time until the current window ends; `None` for a budget that never resets.
    pub(crate) fn resets_in(&self, now: u64) -> Option<std::time::Duration> {
        (self.window_end != u64::MAX)
            .then(|| std::time::Duration::from_nanos(self.window_end.saturating_sub(now)))
    }

    pub(crate) fn limit(&self, spec: &BudgetSpec, now: u64) -> u64 {
        let limit = self.limit_override.unwrap_or(spec.limit);
        match self.ceiling {
            Some(ceiling) if now < ceiling.until => limit.min(ceiling.limit),
            _ => limit,
        }
    }
}

/// The budgets and amounts one reservation holds, inline (no allocation per call).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Parts {
    pub(crate) len: u8,
    pub(crate) items: [(u32, u64); MAX_STACK],
}

impl Parts {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.items[..usize::from(self.len)].iter().copied()
    }
}

#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) id: u64,
    /// Set once the reservation became a record.
    pub(crate) record: Option<(u64, u64)>,
    pub(crate) deadline: u64,
    pub(crate) parts: Parts,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    held: Option<Held>,
}

/// Something the observers should hear of, gathered under the lock and sent after it.
#[derive(Debug)]
pub(crate) enum Note {
    Soft { instance: u32, used: u64, soft: u64 },
    Expired { id: u64 },
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) specs: Vec<BudgetSpec>,
    pub(crate) by_name: HashMap<String, u32>,
    pub(crate) instances: Vec<Instance>,
    /// Per spec: key to instance.
    index: Vec<HashMap<Arc<str>, u32>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    earliest: u64,
    next_id: u64,
    /// Reservations that became records, by (ledger nonce, id): where each stands, so that
    /// restoring a record twice neither holds nor charges it twice.
    pub(crate) durable: HashMap<(u64, u64), Durable>,
}

/// Where a reservation that became a record stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durable {
    Held(u32, u32),
    Settled,
    Expired,
}

impl State {
    pub(crate) fn new(specs: Vec<BudgetSpec>) -> Result<Self, ConfigError> {
        let mut state = State {
            earliest: u64::MAX,
            ..State::default()
        };
        for spec in specs {
            spec.validate()?;
            let index = u32::try_from(state.specs.len()).unwrap_or(u32::MAX);
            if state.by_name.insert(spec.name.clone(), index).is_some() {
                return Err(ConfigError::Duplicate(spec.name));
            }
            state.specs.push(spec);
            state.index.push(HashMap::new());
        }
        Ok(state)
    }

    /// The instance of budget `spec` for `key`, made (full) on first use.
    pub(crate) fn instance(&mut self, spec: u32, key: &str, now: u64) -> u32 {
        if let Some(found) = self.index[spec as usize].get(key) {
            return *found;
        }
        let key: Arc<str> = Arc::from(key);
        let (window, window_end) = self.specs[spec as usize].period.window(now);
        let index = u32::try_from(self.instances.len()).unwrap_or(u32::MAX);
        self.instances.push(Instance {
            spec,
            key: Arc::clone(&key),
            window,
            window_end,
            spent: 0,
            reserved: 0,
            limit_override: None,
            ceiling: None,
            soft_reported: None,
        });
        self.index[spec as usize].insert(key, index);
        index
    }

    pub(crate) fn spec_of(&self, instance: u32) -> &BudgetSpec {
        &self.specs[self.instances[instance as usize].spec as usize]
    }

    /// Whether any budget of `stack` counts money.
    pub(crate) fn needs_price(&self, stack: impl Iterator<Item = u32>) -> bool {
        let mut stack = stack;
        stack.any(|i| self.spec_of(i).unit == Unit::Cost)
    }

    /// Checks every budget of `stack` and, only if all fit, reserves on each. On refusal
    /// nothing changed but the windows rolled.
    pub(crate) fn reserve(
        &mut self,
        stack: &[u32],
        usage: &Usage,
        cost: u64,
        now: u64,
        notes: &mut Vec<Note>,
    ) -> Result<Parts, BudgetExceeded> {
        let mut parts = Parts::default();
        for &i in stack {
            if parts.iter().any(|(seen, _)| seen == i) {
                continue;
            }
            let instance = &mut self.instances[i as usize];
            let spec = &self.specs[instance.spec as usize];
            instance.roll(spec, now);
            let amount = spec.unit.amount(usage, cost);
            let limit = instance.limit(spec, now);
            let used = instance.used();
            if used.saturating_add(amount) > limit {
                return Err(BudgetExceeded {
                    budget: spec.name.clone(),
                    key: instance.key.to_string(),
                    unit: spec.unit,
                    limit,
                    used,
                    requested: amount,
                    remaining: limit.saturating_sub(used),
                    resets_in: instance.resets_in(now),
                });
            }
            parts.items[usize::from(parts.len)] = (i, amount);
            parts.len += 1;
        }
        for (i, amount) in parts.iter() {
            let instance = &mut self.instances[i as usize];
            instance.reserved = instance.reserved.saturating_add(amount);
            self.note_soft(i, notes);
        }
        Ok(parts)
    }

    fn note_soft(&mut self, i: u32, notes: &mut Vec<Note>) {
        let instance = &mut self.instances[i as usize];
        let spec = &self.specs[instance.spec as usize];
        if let Some(soft) = spec.soft_limit
            && instance.used() >= soft
            && instance.soft_reported != Some(instance.window)
        {
            instance.soft_reported = Some(instance.window);
            notes.push(Note::Soft {
                instance: i,
                used: instance.used(),
                soft,
            });
        }
    }

    /// Gives back what `parts` reserved.
    pub(crate) fn release(&mut self, parts: &Parts, now: u64) {
        for (i, amount) in parts.iter() {
            let instance = &mut self.instances[i as usize];
            instance.roll(&self.specs[instance.spec as usize], now);
            instance.reserved = instance.reserved.saturating_sub(amount);
        }
    }

    /// Charges `usage` to each budget of `parts`, in the window where it is settled.
    pub(crate) fn charge(
        &mut self,
        parts: &Parts,
        usage: &Usage,
        cost: u64,
        now: u64,
        notes: &mut Vec<Note>,
    ) -> bool {
        let mut overspent = false;
        for (i, _) in parts.iter() {
            let instance = &mut self.instances[i as usize];
            let spec = &self.specs[instance.spec as usize];
            instance.roll(spec, now);
            instance.spent = instance.spent.saturating_add(spec.unit.amount(usage, cost));
            overspent |= instance.used() > instance.limit(spec, now);
            self.note_soft(i, notes);
        }
        overspent
    }

    /// Holds `parts` until `deadline`; returns (slot, generation, id).
    pub(crate) fn hold(&mut self, parts: Parts, deadline: u64) -> (u32, u32, u64) {
        let id = self.next_id;
        self.next_id += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.held = Some(Held {
            id,
            record: None,
            deadline,
            parts,
        });
        self.earliest = self.earliest.min(deadline);
        (slot, entry.generation, id)
    }

    /// Takes the reservation in `slot` if it is still the one of `generation`.
    pub(crate) fn take(&mut self, slot: u32, generation: u32) -> Option<Held> {
        let entry = self.slots.get_mut(slot as usize)?;
        if entry.generation != generation {
            return None;
        }
        let held = entry.held.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        Some(held)
    }

    /// Marks the reservation in `slot` as a record known as `key`.
    pub(crate) fn mark_durable(&mut self, slot: u32, generation: u32, key: (u64, u64)) {
        if let Some(entry) = self.slots.get_mut(slot as usize)
            && entry.generation == generation
            && let Some(held) = &mut entry.held
        {
            held.record = Some(key);
            self.durable.insert(key, Durable::Held(slot, generation));
        }
    }

    /// Records how a reservation that became a record ended.
    pub(crate) fn finish(&mut self, held: &Held, outcome: Durable) {
        if let Some(key) = held.record {
            self.durable.insert(key, outcome);
        }
    }

    /// Whether `slot` still holds the reservation of `generation`.
    pub(crate) fn holds(&self, slot: u32, generation: u32) -> bool {
        self.slots
            .get(slot as usize)
            .is_some_and(|e| e.generation == generation && e.held.is_some())
    }

    /// Releases every reservation whose deadline has passed; cheap when none is due.
    pub(crate) fn expire(&mut self, now: u64, notes: &mut Vec<Note>) {
        if now < self.earliest {
            return;
        }
        let mut earliest = u64::MAX;
        let mut due = Vec::new();
        for (slot, entry) in self.slots.iter().enumerate() {
            if let Some(held) = &entry.held {
                if held.deadline <= now {
                    due.push((u32::try_from(slot).unwrap_or(u32::MAX), entry.generation));
                } else {
                    earliest = earliest.min(held.deadline);
                }
            }
        }
        self.earliest = earliest;
        for (slot, generation) in due {
            if let Some(held) = self.take(slot, generation) {
                self.release(&held.parts, now);
                self.finish(&held, Durable::Expired);
                notes.push(Note::Expired { id: held.id });
            }
        }
    }

    /// Reservations held now.
    pub(crate) fn outstanding(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// The price's cost of `usage`, zero without a price.
pub(crate) fn cost_of(price: Option<&Price>, usage: &Usage) -> u64 {
    price.map_or(0, |p| p.cost(usage))
}
