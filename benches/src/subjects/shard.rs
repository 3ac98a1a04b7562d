//! Partitioning: a maph-shard store, each shard written only by its owner.

use maph_core::{Mode, WriteCoordinator};
use maph_shard::{ShardConfig, ShardedStore};

use super::maph::increment_in;
use crate::rows::Role;
use crate::subject::{Increment, Subject};

/// Shards of the partitioned row: enough for one per worker at 8 processes.
pub const SHARDS: u32 = 8;

/// A sharded store and the shards this process claimed.
///
/// Alone, it claims every shard. Writer `i` of `w` claims the shards `s` with
/// `s % w == i` and writes only keys routed to them: partitioned writers never
/// share a key, which is the point of the strategy. A reader claims nothing.
pub struct ShardSubject {
    store: ShardedStore,
}

impl ShardSubject {
    /// Creates a store of [`SHARDS`] shards with `slots_per_shard` slots each in `dir`.
    pub fn create(dir: &std::path::Path, slots_per_shard: u64) -> anyhow::Result<()> {
        ShardedStore::create(dir, &ShardConfig::new(SHARDS, slots_per_shard).routing_seed(0x7368_6172))?;
        Ok(())
    }

    /// Opens the store in `dir` for `role`, claiming the shards it writes.
    pub fn open(dir: &std::path::Path, role: Role) -> anyhow::Result<ShardSubject> {
        let (mode, owner) = match role {
            Role::Alone => (Mode::ReadWrite, Some((0, 1))),
            Role::Writer { index, writers } => (Mode::ReadWrite, Some((index, writers))),
            Role::Reader { .. } => (Mode::ReadOnly, None),
        };
        let mut store = ShardedStore::open(dir, mode)?;
        if let Some((index, writers)) = owner {
            for shard in 0..SHARDS {
                if owner_of(shard, writers) == index {
                    store.claim(shard)?;
                }
            }
        }
        Ok(ShardSubject { store })
    }

    fn owned_shard(&self, key: &[u8]) -> anyhow::Result<(&maph_core::Store, &maph_core::SingleWriter)> {
        let shard = self.store.shard_for(key);
        let coordinator =
            self.store.coordinator(shard).ok_or_else(|| anyhow::anyhow!("shard {shard} is not claimed"))?;
        Ok((self.store.shard(shard)?, coordinator))
    }
}

/// Which writer of `writers` owns `shard`.
fn owner_of(shard: u32, writers: usize) -> usize {
    shard as usize % writers.max(1)
}

impl Subject for ShardSubject {
    fn set(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        Ok(self.store.set(key, value)?)
    }

    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        Ok(self.store.get_into(key, out)?)
    }

    fn get_locked(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        let (shard, coordinator) = self.owned_shard(key)?;
        let _guard = coordinator.lock_shared(shard.scope_of(key))?;
        Ok(shard.get_into(key, out)?)
    }

    /// One commit per shard the batch touches: a sharded store has no atomic
    /// write across shards.
    fn set_batch(&mut self, keys: &[&[u8]], value: &[u8]) -> anyhow::Result<()> {
        for shard in 0..self.store.shard_count() {
            let mine: Vec<&[u8]> = keys.iter().copied().filter(|k| self.store.shard_for(k) == shard).collect();
            if !mine.is_empty() {
                self.store.write(shard, |tx| mine.iter().try_for_each(|key| tx.set(key, value)))?;
            }
        }
        Ok(())
    }

    fn get_batch(&mut self, keys: &[&[u8]], out: &mut Vec<u8>) -> anyhow::Result<usize> {
        let mut found = 0;
        for key in keys {
            found += usize::from(self.store.get_into(key, out)?);
        }
        Ok(found)
    }

    fn lock_unlock(&mut self, key: &[u8]) -> anyhow::Result<()> {
        let (shard, coordinator) = self.owned_shard(key)?;
        drop(coordinator.lock_exclusive(shard.scope_of(key))?);
        Ok(())
    }

    fn increment(&mut self, key: &[u8], time_lock: bool) -> anyhow::Result<Increment> {
        let (shard, coordinator) = self.owned_shard(key)?;
        increment_in(shard, coordinator, key, time_lock)
    }

    fn writer_of(&self, key: &[u8], writers: usize) -> Option<usize> {
        Some(owner_of(self.store.shard_for(key), writers))
    }
}
