//! Lock helpers shared by the primitives.
//!
//! Poisoning only records that another thread panicked while holding a lock. Every structure
//! the primitives keep behind a lock is updated in single steps (an insert, a remove, a store
//! of an atomic) and is never left half-changed, so a poisoned lock is still safe to use and
//! the primitives keep working instead of panicking in turn.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[allow(dead_code)] // used by primitives that keep a Mutex
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
