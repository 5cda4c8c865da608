//! A mutex lock that does not fail when a holder panicked: what that thread left
//! is still the best figure there is, and a report must still be written.

use std::sync::{Mutex, MutexGuard};

/// [`Mutex::lock`], taking the data of a poisoned lock as it is.
pub trait Locked<T> {
    /// The guard, poisoned or not.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }
}
