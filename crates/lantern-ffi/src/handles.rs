//! Registries of live handles. A handle is the address of an object the registry owns;
//! a call looks the address up (it never dereferences what C passed), so a freed or
//! foreign handle gives `LANTERN_INVALID_HANDLE` instead of undefined behaviour.
//!
//! A lookup clones the object's `Arc`: a handle freed by one thread while another still
//! runs a call on it stays alive until that call returns.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::status::{lantern_status, Failure, FfiResult};

/// The live objects of one handle type, by address.
#[derive(Debug)]
pub(crate) struct Registry<T> {
    /// What the type is called in messages (`lantern_engine`).
    kind: &'static str,
    live: Mutex<BTreeMap<usize, Arc<T>>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new(kind: &'static str) -> Self {
        Self { kind, live: Mutex::new(BTreeMap::new()) }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Arc<T>>> {
        // The map is never left half-updated: a panic elsewhere cannot poison it usefully.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes ownership of `object` and returns its handle.
    pub(crate) fn insert(&self, object: T) -> *mut T {
        let object = Arc::new(object);
        let handle = Arc::as_ptr(&object).cast_mut();
        self.live().insert(handle as usize, object);
        handle
    }

    /// The object of `handle`, the argument called `what`.
    pub(crate) fn get(&self, handle: *const T, what: &str) -> FfiResult<Arc<T>> {
        if handle.is_null() {
            return Err(Failure::null(what));
        }
        self.live().get(&(handle as usize)).cloned().ok_or_else(|| {
            Failure::new(
                lantern_status::LANTERN_INVALID_HANDLE,
                format!("{what} is not a live {} (freed, or not made by lantern)", self.kind),
            )
        })
    }

    /// Forgets `handle`; its object is dropped when no running call holds it. NULL and
    /// handles that are not live are ignored.
    pub(crate) fn remove(&self, handle: *const T) {
        let removed = self.live().remove(&(handle as usize));
        // Dropped after the registry's lock is released: freeing a model takes a while.
        drop(removed);
    }
}
