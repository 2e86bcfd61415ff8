//! The async contract shared by the local ledger and the Redis backend, so that one
//! conformance suite runs on both.

use std::future::Future;
use std::pin::Pin;

use super::error::BudgetError;
use super::ledger::{BudgetHandle, BudgetSnapshot, Charge, Ledger};
use super::reservation::{ReservationRecord, Settlement};
use super::state::MAX_STACK;
use super::usage::Usage;
use crate::clock::Clock;

/// A budget by name and key, as a backend without handles takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BudgetRef<'a> {
    /// The budget's name.
    pub budget: &'a str,
    /// The key; empty for a global budget.
    pub key: &'a str,
}

impl<'a> BudgetRef<'a> {
    /// Budget `budget` for `key`.
    pub const fn new(budget: &'a str, key: &'a str) -> Self {
        Self { budget, key }
    }
}

/// The future a [`BudgetBackend`] returns.
pub type BudgetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BudgetError>> + Send + 'a>>;

/// Reserve and settle, whatever holds the budgets. A reservation crosses this contract as a
/// [`ReservationRecord`], which is also what a workflow run keeps.
pub trait BudgetBackend: Send + Sync {
    /// Reserves `charge` on every budget of `stack`, or on none.
    fn reserve<'a>(
        &'a self,
        stack: &'a [BudgetRef<'a>],
        charge: &'a Charge<'a>,
    ) -> BudgetFuture<'a, ReservationRecord>;

    /// Gives the reservation back and charges `actual`.
    fn settle<'a>(
        &'a self,
        record: &'a ReservationRecord,
        actual: Usage,
    ) -> BudgetFuture<'a, Settlement>;

    /// Gives the reservation back without charging.
    fn release<'a>(&'a self, record: &'a ReservationRecord) -> BudgetFuture<'a, ()>;

    /// One budget key's state.
    fn snapshot<'a>(&'a self, budget: BudgetRef<'a>) -> BudgetFuture<'a, BudgetSnapshot>;

    /// `"local"` or `"redis"`.
    fn kind(&self) -> &'static str;
}

impl<C: Clock> Ledger<C> {
    fn handles(&self, stack: &[BudgetRef<'_>]) -> Result<Vec<BudgetHandle>, BudgetError> {
        if stack.len() > MAX_STACK {
            return Err(BudgetError::StackTooDeep {
                got: stack.len(),
                max: MAX_STACK,
            });
        }
        stack.iter().map(|r| self.budget(r.budget, r.key)).collect()
    }
}

impl<C: Clock> BudgetBackend for Ledger<C> {
    fn reserve<'a>(
        &'a self,
        stack: &'a [BudgetRef<'a>],
        charge: &'a Charge<'a>,
    ) -> BudgetFuture<'a, ReservationRecord> {
        Box::pin(async move {
            let handles = self.handles(stack)?;
            Ok(Ledger::reserve(self, &handles, charge)?.into_record())
        })
    }

    fn settle<'a>(
        &'a self,
        record: &'a ReservationRecord,
        actual: Usage,
    ) -> BudgetFuture<'a, Settlement> {
        Box::pin(async move { Ok(self.restore(record)?.settle(actual)) })
    }

    fn release<'a>(&'a self, record: &'a ReservationRecord) -> BudgetFuture<'a, ()> {
        Box::pin(async move {
            self.restore(record)?.release();
            Ok(())
        })
    }

    fn snapshot<'a>(&'a self, budget: BudgetRef<'a>) -> BudgetFuture<'a, BudgetSnapshot> {
        Box::pin(async move {
            let handle = self.budget(budget.budget, budget.key)?;
            self.snapshot_of(handle)
                .ok_or_else(|| BudgetError::UnknownBudget(budget.budget.to_owned()))
        })
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}
