//! A maph store behind any coordinator: the one implementation every strategy row uses.

use std::sync::Arc;

use maph_core::{Store, WriteCoordinator};

use crate::subject::{encode_counter, next_counter, timed_if, Increment, Subject};

/// A maph store and the coordinator its writes go through.
///
/// Every maph row (single writer, uncoordinated, flock, fcntl, Redis, futex…)
/// is this same type with another `C`, so they run exactly the same code.
pub struct MaphSubject<C: WriteCoordinator> {
    // Declared first, so dropped first: some coordinators hold a handle on the store.
    coordinator: C,
    store: Arc<Store>,
    idle: Option<fn(&C)>,
}

impl<C: WriteCoordinator> MaphSubject<C> {
    /// Measures `store` written through `coordinator`. (An `Arc` because some
    /// coordinators, the in-file futex lock for one, keep a handle on the store.)
    pub fn new(store: impl Into<Arc<Store>>, coordinator: C) -> MaphSubject<C> {
        MaphSubject { store: store.into(), coordinator, idle: None }
    }

    /// Calls `idle` on the coordinator when the subject goes idle (see
    /// [`Subject::idle`]): for a lease, giving the lock back.
    pub fn on_idle(mut self, idle: fn(&C)) -> MaphSubject<C> {
        self.idle = Some(idle);
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl<C: WriteCoordinator> Subject for MaphSubject<C> {
    fn set(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        Ok(self.store.set(&self.coordinator, key, value)?)
    }

    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        Ok(self.store.get_into(key, out)?)
    }

    fn get_locked(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        let _guard = self.coordinator.lock_shared(self.store.scope_of(key))?;
        Ok(self.store.get_into(key, out)?)
    }

    fn set_batch(&mut self, keys: &[&[u8]], value: &[u8]) -> anyhow::Result<()> {
        Ok(self.store.write(&self.coordinator, |tx| keys.iter().try_for_each(|key| tx.set(key, value)))?)
    }

    fn get_batch(&mut self, keys: &[&[u8]], out: &mut Vec<u8>) -> anyhow::Result<usize> {
        read_batch(&self.store, keys, out)
    }

    fn lock_unlock(&mut self, key: &[u8]) -> anyhow::Result<()> {
        drop(self.coordinator.lock_exclusive(self.store.scope_of(key))?);
        Ok(())
    }

    fn increment(&mut self, key: &[u8], time_lock: bool) -> anyhow::Result<Increment> {
        increment_in(&self.store, &self.coordinator, key, time_lock)
    }

    fn idle(&mut self) {
        if let Some(idle) = self.idle {
            idle(&self.coordinator);
        }
    }
}

/// A maph store mapped read-only: what a reader process of any strategy is.
/// Its reads are the same lock-free `Store::get_into` as a writer's.
pub struct MaphReader {
    store: Store,
}

impl MaphReader {
    /// Reads `store` (opened read-only).
    pub fn new(store: Store) -> MaphReader {
        MaphReader { store }
    }
}

fn read_only() -> anyhow::Error {
    anyhow::anyhow!("a reader process does not write")
}

impl Subject for MaphReader {
    fn set(&mut self, _key: &[u8], _value: &[u8]) -> anyhow::Result<()> {
        Err(read_only())
    }

    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        Ok(self.store.get_into(key, out)?)
    }

    fn set_batch(&mut self, _keys: &[&[u8]], _value: &[u8]) -> anyhow::Result<()> {
        Err(read_only())
    }

    fn get_batch(&mut self, keys: &[&[u8]], out: &mut Vec<u8>) -> anyhow::Result<usize> {
        read_batch(&self.store, keys, out)
    }

    fn lock_unlock(&mut self, _key: &[u8]) -> anyhow::Result<()> {
        Err(read_only())
    }

    fn increment(&mut self, _key: &[u8], _time_lock: bool) -> anyhow::Result<Increment> {
        Err(read_only())
    }
}

/// Reads every key of `keys`, lock-free, one after another.
fn read_batch(store: &Store, keys: &[&[u8]], out: &mut Vec<u8>) -> anyhow::Result<usize> {
    let mut found = 0;
    for key in keys {
        found += usize::from(store.get_into(key, out)?);
    }
    Ok(found)
}

/// Adds one to the counter under `key` in `store` through `coordinator`: what
/// `Store::update` does, with the lock acquisition timed on its own when asked.
pub(crate) fn increment_in<C: WriteCoordinator>(
    store: &Store,
    coordinator: &C,
    key: &[u8],
    time_lock: bool,
) -> anyhow::Result<Increment> {
    let (guard, lock_wait_ns) = timed_if(time_lock, || coordinator.lock_exclusive(store.scope_of(key)));
    let guard = guard?;
    let mut damaged = false;
    store.write_with(&guard, |tx| {
        let old = tx.get(key)?;
        let (next, was_damaged) = next_counter(old.as_deref());
        damaged = was_damaged;
        tx.set(key, &encode_counter(next))
    })?;
    Ok(Increment { lock_wait_ns, damaged })
}
