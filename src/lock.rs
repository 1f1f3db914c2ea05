//! The one way vnrit takes a lock: a poisoned lock (a thread panicked while it held it) is
//! used as it is.
//!
//! Every value behind vnrit's locks is whole between statements (counters, maps, slots,
//! queues), and the panic itself is already logged and ends its thread. Refusing the lock
//! as well would spread one thread's bug to every viewer, and skipping the work (`if let
//! Ok`) would silently lose input, a cursor update or a release.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, poisoned or not.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
