//! A maph store behind any coordinator: the one implementation every strategy row uses.

use maph_core::{ContentionStats, Store, WriteCoordinator};

use crate::subject::{encode_counter, next_counter, timed, Increment, Subject};

/// A maph store and the coordinator its writes go through.
///
/// Every maph row (single writer, uncoordinated, flock, fcntl, Redis, futex…)
/// is this same type with another `C`, so they run exactly the same code.
pub struct MaphSubject<C: WriteCoordinator> {
    store: Store,
    coordinator: C,
}

impl<C: WriteCoordinator> MaphSubject<C> {
    /// Measures `store` written through `coordinator`.
    pub fn new(store: Store, coordinator: C) -> MaphSubject<C> {
        MaphSubject { store, coordinator }
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

    fn has_locked_read(&self) -> bool {
        true
    }

    fn set_batch(&mut self, keys: &[Vec<u8>], value: &[u8]) -> anyhow::Result<()> {
        Ok(self.store.write(&self.coordinator, |tx| keys.iter().try_for_each(|key| tx.set(key, value)))?)
    }

    fn get_batch(&mut self, keys: &[Vec<u8>], out: &mut Vec<u8>) -> anyhow::Result<usize> {
        let mut found = 0;
        for key in keys {
            found += usize::from(self.store.get_into(key, out)?);
        }
        Ok(found)
    }

    fn increment(&mut self, key: &[u8]) -> anyhow::Result<Increment> {
        // What `Store::update` does, with the lock acquisition timed on its own.
        let (guard, lock_wait) = timed(|| self.coordinator.lock_exclusive(self.store.scope_of(key)));
        let guard = guard?;
        let mut damaged = false;
        self.store.write_with(&guard, |tx| {
            let old = tx.get(key)?;
            let (next, was_damaged) = next_counter(old.as_deref());
            damaged = was_damaged;
            tx.set(key, &encode_counter(next))
        })?;
        Ok(Increment { lock_wait, damaged })
    }

    fn contention(&self) -> Option<ContentionStats> {
        Some(self.coordinator.contention())
    }
}
