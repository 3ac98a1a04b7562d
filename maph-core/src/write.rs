//! Writes: every one goes through a coordinator's exclusive guard.
//!
//! A write closure records its operations in a [`WriteTxn`]; nothing touches the
//! mapping until the closure returns `Ok`. The commit then *plans* where every
//! operation lands (so a full probe window fails the whole commit before any
//! byte changes) and only then writes the slots. So an error, from the closure
//! or from the plan, leaves the store as it was.
//!
//! Readers see each key change atomically (seqlock); they may see some keys of a
//! commit before others. Readers that need a consistent view of several keys take
//! a shared guard, for strategies that support one.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::format::{SlotState, OFF_GENERATION, OFF_HIGHEST_FENCE, OFF_LIVE_COUNT};
use crate::slot::Slot;
use crate::{Error, ExclusiveGuard, LockScope, Result, Store, WriteCoordinator};

/// The operations of one write, applied together when the closure returns `Ok`.
#[derive(Debug)]
pub struct WriteTxn<'s> {
    store: &'s Store,
    scope: LockScope,
    /// Whether the guard's coordinator excludes other writers (then an odd slot
    /// in scope was abandoned by a dead writer and may be repaired).
    exclusive: bool,
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl<'s> WriteTxn<'s> {
    /// Stores `value` under `key`, replacing any previous value. Fails at once,
    /// with nothing recorded, if the key or value is too large or the key lies
    /// outside the locked scope.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_key(key)?;
        let max = self.store.max_value_len(key.len());
        if value.len() > max {
            return Err(Error::ValueTooLarge { len: value.len(), max });
        }
        self.ops.push((key.to_vec(), Some(value.to_vec())));
        Ok(())
    }

    /// Removes `key` (a no-op if it is absent).
    pub fn remove(&mut self, key: &[u8]) -> Result<()> {
        self.check_key(key)?;
        self.ops.push((key.to_vec(), None));
        Ok(())
    }

    /// The value of `key` as this transaction will leave it: its own earlier
    /// operations first, then the store.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some((_, value)) = self.ops.iter().rev().find(|(k, _)| k == key) {
            return Ok(value.clone());
        }
        if self.exclusive && self.scope.covers(&self.store.scope_of(key)) {
            self.store.repair_window(key);
        }
        self.store.get(key)
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        let max = self.store.max_key_len();
        if key.len() > max {
            return Err(Error::KeyTooLarge { len: key.len(), max });
        }
        let needed = self.store.scope_of(key);
        if !self.scope.covers(&needed) {
            let LockScope::Window { first, len, .. } = needed else { unreachable!("a key's scope is a window") };
            return Err(Error::OutOfScope { first, len });
        }
        Ok(())
    }
}

/// Where a planned operation leaves a slot.
#[derive(Clone, Copy, Debug)]
enum Planned {
    /// Holds the key and value of operation `op`.
    Live {
        op: usize,
    },
    Tombstone,
}

impl Store {
    /// Runs `f` under an exclusive lock on the whole store and commits what it
    /// recorded. Nothing is written if `f` or the commit fails.
    pub fn write<C, F>(&self, coordinator: &C, f: F) -> Result<()>
    where
        C: WriteCoordinator,
        F: FnOnce(&mut WriteTxn<'_>) -> Result<()>,
    {
        self.check_coordinator(coordinator)?;
        let guard = coordinator.lock_exclusive(LockScope::Whole)?;
        self.write_with(&guard, f)
    }

    /// Runs `f` under a guard the caller already holds (a lease held across many
    /// writes, or one taken with a deadline). Keys outside the guard's scope are
    /// refused with [`Error::OutOfScope`].
    pub fn write_with<C, F>(&self, guard: &ExclusiveGuard<'_, C>, f: F) -> Result<()>
    where
        C: WriteCoordinator + ?Sized,
        F: FnOnce(&mut WriteTxn<'_>) -> Result<()>,
    {
        self.check_coordinator(guard.coordinator())?;
        let exclusive = guard.coordinator().excludes_writers();
        let mut txn = WriteTxn { store: self, scope: guard.scope(), exclusive, ops: Vec::new() };
        f(&mut txn)?;
        self.commit(guard, txn)
    }

    /// Atomically replaces the value of `key` with `f(old)`; `None` removes it.
    /// Only `key`'s probe window is locked, so coordinators that lock ranges let
    /// updates of other keys proceed in parallel.
    pub fn update<C, F, V>(&self, coordinator: &C, key: &[u8], f: F) -> Result<()>
    where
        C: WriteCoordinator,
        F: FnOnce(Option<&[u8]>) -> Option<V>,
        V: AsRef<[u8]>,
    {
        self.check_coordinator(coordinator)?;
        let guard = coordinator.lock_exclusive(self.scope_of(key))?;
        self.write_with(&guard, |tx| {
            let old = tx.get(key)?;
            match f(old.as_deref()) {
                Some(new) => tx.set(key, new.as_ref()),
                None => tx.remove(key),
            }
        })
    }

    /// Stores one key, locking only its probe window.
    pub fn set<C: WriteCoordinator>(&self, coordinator: &C, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_coordinator(coordinator)?;
        let guard = coordinator.lock_exclusive(self.scope_of(key))?;
        self.write_with(&guard, |tx| tx.set(key, value))
    }

    /// Removes one key, locking only its probe window.
    pub fn remove<C: WriteCoordinator>(&self, coordinator: &C, key: &[u8]) -> Result<()> {
        self.check_coordinator(coordinator)?;
        let guard = coordinator.lock_exclusive(self.scope_of(key))?;
        self.write_with(&guard, |tx| tx.remove(key))
    }

    fn commit<C: WriteCoordinator + ?Sized>(&self, guard: &ExclusiveGuard<'_, C>, txn: WriteTxn<'_>) -> Result<()> {
        if txn.ops.is_empty() {
            return Ok(());
        }
        guard.validate()?;
        self.check_not_retired()?;
        let exclusive = guard.coordinator().excludes_writers();
        let (plan, touched) = self.plan(&txn.ops, exclusive)?;
        if let Some(fence) = guard.fence() {
            self.accept_fence(fence)?;
        }

        // Apply: each touched slot once, with its final state.
        let mut scratch = Vec::with_capacity(self.layout.slot_size as usize);
        let mut live_delta: i64 = 0;
        for &(index, was_live) in &touched {
            let entry = match plan[&index] {
                Planned::Live { op } => {
                    let (key, value) = &txn.ops[op];
                    Some((key.as_slice(), value.as_deref().expect("planned live")))
                }
                Planned::Tombstone => None,
            };
            let tag = entry.map_or(0, |(key, _)| self.hash(key).tag);
            self.slot(index).write(entry, tag, &mut scratch);
            live_delta += i64::from(entry.is_some()) - i64::from(was_live);
        }
        // Relaxed/Release: counters for statistics; the Release on the generation
        // lets a reader that sees the new generation also see the slots above.
        let live = self.region.word(OFF_LIVE_COUNT);
        if live_delta > 0 {
            live.fetch_add(live_delta as u64, Ordering::Relaxed);
        } else if live_delta < 0 {
            live.fetch_sub(live_delta.unsigned_abs(), Ordering::Relaxed);
        }
        self.region.word(OFF_GENERATION).fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Records `fence` as the highest token seen, unless a higher one was.
    fn accept_fence(&self, fence: u64) -> Result<()> {
        // AcqRel fetch_max: the check and the update are one atomic step, so two
        // writers racing with different tokens cannot both pass a stale check.
        let highest = self.region.word(OFF_HIGHEST_FENCE).fetch_max(fence, Ordering::AcqRel);
        if highest > fence {
            return Err(Error::StaleFence { presented: fence, highest });
        }
        Ok(())
    }

    /// Decides the final state of every slot the operations touch, without
    /// writing anything. Returns the plan and the touched slots in first-touch
    /// order, each with whether it held a live key before.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        ops: &[(Vec<u8>, Option<Vec<u8>>)],
        exclusive: bool,
    ) -> Result<(HashMap<u64, Planned>, Vec<(u64, bool)>)> {
        let mut plan: HashMap<u64, Planned> = HashMap::new();
        let mut touched: Vec<(u64, bool)> = Vec::new();
        let mut scratch = Vec::new();
        for (op, (key, value)) in ops.iter().enumerate() {
            let h = self.hash(key);
            let mut found = None;
            let mut free = None;
            for index in self.window(h) {
                let state = match plan.get(&index) {
                    Some(Planned::Live { op: other }) => {
                        if ops[*other].0 == *key {
                            Seen::Match
                        } else {
                            Seen::Other
                        }
                    }
                    Some(Planned::Tombstone) => Seen::Free,
                    None => self.seen_by_writer(self.slot(index), key, h.tag, exclusive, &mut scratch, index)?,
                };
                match state {
                    Seen::Match => {
                        found = Some(index);
                        break;
                    }
                    Seen::Empty => {
                        free = free.or(Some(index));
                        break; // no key lives past an empty slot
                    }
                    Seen::Free => free = free.or(Some(index)),
                    Seen::Other => {}
                }
            }
            let target = match (found, value) {
                (Some(index), _) => index,
                (None, Some(_)) => free.ok_or(Error::TableFull { probes: self.layout.max_probes })?,
                (None, None) => continue, // removing an absent key
            };
            if !plan.contains_key(&target) {
                let was_live = found.is_some() || self.slot_is_live(target)?;
                touched.push((target, was_live));
            }
            plan.insert(target, if value.is_some() { Planned::Live { op } } else { Planned::Tombstone });
        }
        Ok((plan, touched))
    }

    /// What a writer holding `slot` sees there, repairing it first if a dead
    /// writer left it mid-write.
    fn seen_by_writer(
        &self,
        slot: Slot<'_>,
        key: &[u8],
        tag: u32,
        exclusive: bool,
        scratch: &mut Vec<u8>,
        index: u64,
    ) -> Result<Seen> {
        // Under a coordinator that excludes writers we hold this slot, so an odd
        // version can only have been left by a writer that died: repair it now.
        if exclusive && slot.is_odd() {
            slot.repair(self.layout.hash_seed, self.layout.slot_count, scratch);
        }
        let seen = slot.read_for(key, tag, None, self.read_patience).map_err(|fault| self.slot_error(index, fault))?;
        Ok(match seen {
            crate::slot::Seen::Match => Seen::Match,
            crate::slot::Seen::Empty => Seen::Empty,
            crate::slot::Seen::Tombstone => Seen::Free,
            crate::slot::Seen::OtherKey => Seen::Other,
        })
    }

    /// Repairs any slot of `key`'s window that a dead writer left mid-write.
    /// Only for a caller holding the window under a coordinator that excludes writers.
    fn repair_window(&self, key: &[u8]) {
        let mut scratch = Vec::new();
        for index in self.window(self.hash(key)) {
            let slot = self.slot(index);
            if slot.is_odd() {
                slot.repair(self.layout.hash_seed, self.layout.slot_count, &mut scratch);
            }
        }
    }

    fn slot_is_live(&self, index: u64) -> Result<bool> {
        let copy = self.slot(index).read_entry(self.read_patience).map_err(|fault| self.slot_error(index, fault))?;
        Ok(copy.meta.state == SlotState::Live)
    }
}

/// A slot as the planner sees it.
enum Seen {
    Match,
    Empty,
    Free,
    Other,
}
