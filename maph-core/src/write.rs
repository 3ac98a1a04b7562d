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

use smallvec::SmallVec;
use std::sync::atomic::Ordering;

use crate::format::OFF_HIGHEST_FENCE;
use crate::slot::Seen;
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
        self.store.check_value_len(key, value)?;
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
        self.store.check_key_len(key)?;
        let needed = self.store.scope_of(key);
        if !self.scope.covers(&needed) {
            let LockScope::Window { first, len, .. } = needed else { unreachable!("a key's scope is a window") };
            return Err(Error::OutOfScope { first, len });
        }
        Ok(())
    }
}

/// One operation of a commit, borrowed: a key and its new value (`None` removes).
type OpRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// Where a planned operation leaves a slot.
#[derive(Clone, Copy, Debug)]
enum Planned {
    /// Holds the key and value of operation `op`, whose key hash tag is `tag`.
    Live {
        op: usize,
        tag: u32,
    },
    Tombstone,
}

/// The slots a commit will write, each once, with its final state.
///
/// Commits are usually one key (`set`, `update`) or a few: a vector searched
/// linearly beats a hash map there, so the map is only built for large batches.
#[derive(Default)]
struct Plan {
    /// Slot index, whether it held a live key before the commit, final state.
    /// Inline for small commits: a one-key write allocates nothing.
    slots: SmallVec<[(u64, bool, Planned); 4]>,
    /// Slot index → position in `slots`, once `slots` is large.
    index: Option<HashMap<u64, usize>>,
}

impl Plan {
    const LINEAR_LIMIT: usize = 16;

    fn get(&self, slot: u64) -> Option<Planned> {
        let at = match &self.index {
            Some(map) => map.get(&slot).copied(),
            None => self.slots.iter().position(|&(s, _, _)| s == slot),
        };
        at.map(|i| self.slots[i].2)
    }

    fn set(&mut self, slot: u64, was_live: bool, state: Planned) {
        let at = match &self.index {
            Some(map) => map.get(&slot).copied(),
            None => self.slots.iter().position(|&(s, _, _)| s == slot),
        };
        match at {
            Some(i) => self.slots[i].2 = state, // was_live keeps its first-touch value
            None => {
                self.slots.push((slot, was_live, state));
                if let Some(map) = &mut self.index {
                    map.insert(slot, self.slots.len() - 1);
                } else if self.slots.len() > Self::LINEAR_LIMIT {
                    self.index = Some(self.slots.iter().enumerate().map(|(i, &(s, _, _))| (s, i)).collect());
                }
            }
        }
    }
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
        // Before the closure reads (and may repair) anything: a holder whose
        // lease or fence is stale must not touch a slot a newer holder owns.
        self.check_right_to_write(guard)?;
        let exclusive = guard.coordinator().excludes_writers();
        let mut txn = WriteTxn { store: self, scope: guard.scope(), exclusive, ops: Vec::new() };
        f(&mut txn)?;
        let ops: Vec<OpRef<'_>> = txn.ops.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
        self.commit(guard, &ops)
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
        self.check_key_len(key)?;
        self.check_coordinator(coordinator)?;
        let guard = coordinator.lock_exclusive(self.scope_of(key))?;
        self.check_right_to_write(&guard)?;
        if coordinator.excludes_writers() {
            self.repair_window(key);
        }
        let old = self.get(key)?;
        let new = f(old.as_deref());
        let value = new.as_ref().map(AsRef::as_ref);
        if let Some(value) = value {
            self.check_value_len(key, value)?;
        }
        self.commit(&guard, &[(key, value)])
    }

    /// Stores one key, locking only its probe window.
    pub fn set<C: WriteCoordinator>(&self, coordinator: &C, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_key_len(key)?;
        self.check_value_len(key, value)?;
        self.check_coordinator(coordinator)?;
        let guard = coordinator.lock_exclusive(self.scope_of(key))?;
        self.commit(&guard, &[(key, Some(value))])
    }

    /// Removes one key, locking only its probe window.
    pub fn remove<C: WriteCoordinator>(&self, coordinator: &C, key: &[u8]) -> Result<()> {
        self.check_key_len(key)?;
        self.check_coordinator(coordinator)?;
        let guard = coordinator.lock_exclusive(self.scope_of(key))?;
        self.commit(&guard, &[(key, None)])
    }

    pub(crate) fn check_key_len(&self, key: &[u8]) -> Result<()> {
        let max = self.max_key_len();
        if key.len() > max {
            return Err(Error::KeyTooLarge { len: key.len(), max });
        }
        Ok(())
    }

    pub(crate) fn check_value_len(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let max = self.max_value_len(key.len());
        if value.len() > max {
            return Err(Error::ValueTooLarge { len: value.len(), max });
        }
        Ok(())
    }

    /// Plans, checks and applies `ops` under `guard`. Sizes and scope were
    /// checked when the operations were recorded.
    fn commit<C: WriteCoordinator + ?Sized>(&self, guard: &ExclusiveGuard<'_, C>, ops: &[OpRef<'_>]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        // Planning may repair slots a dead writer left mid-write, so the right to
        // write is checked first (again, for writes whose closure took a while).
        self.check_right_to_write(guard)?;
        let plan = self.plan(ops, guard.coordinator().excludes_writers())?;

        // Apply: each touched slot once, with its final state.
        for (written, &(index, was_live, state)) in plan.slots.iter().enumerate() {
            crate::test_hooks::slots_written(written as u32);
            let entry = match state {
                Planned::Live { op, tag } => {
                    let (key, value) = ops[op];
                    Some((key, value.expect("a live plan comes from a set"), tag))
                }
                Planned::Tombstone => None,
            };
            self.slot(index).write(entry);
            // Relaxed: the live counts are statistics and order nothing. Only a
            // change of liveness touches the slot's counter shard.
            let live = self.live_word(self.counter_shard(index));
            match (was_live, entry.is_some()) {
                (false, true) => {
                    live.fetch_add(1, Ordering::Relaxed);
                }
                (true, false) => {
                    live.fetch_sub(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        // Release: a reader that sees the new generation also sees the slots
        // above. One shard per commit (its first slot's), so writers of
        // far-apart keys do not share a cache line.
        if let Some(&(first, _, _)) = plan.slots.first() {
            self.generation_word(self.counter_shard(first)).fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Whether the holder of `guard` may write now: its lease is valid, its
    /// fencing token is not older than one the store has accepted (recording it
    /// if it is the newest), and the file has not been replaced.
    fn check_right_to_write<C: WriteCoordinator + ?Sized>(&self, guard: &ExclusiveGuard<'_, C>) -> Result<()> {
        guard.validate()?;
        if let Some(fence) = guard.fence() {
            // Raising the recorded fence before anything is written is harmless:
            // it only ever grows, and this holder's token is genuine.
            self.accept_fence(fence)?;
        }
        self.check_not_retired()
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
    /// writing anything; fails with [`Error::TableFull`] if a key has no room.
    fn plan(&self, ops: &[OpRef<'_>], exclusive: bool) -> Result<Plan> {
        let mut plan = Plan::default();
        for (op, &(key, value)) in ops.iter().enumerate() {
            let h = self.hash(key);
            let mut found = None;
            let mut free = None;
            for index in self.window(h) {
                let seen = match plan.get(index) {
                    Some(Planned::Live { op: other, .. }) if ops[other].0 == key => Seen::Match,
                    Some(Planned::Live { .. }) => Seen::OtherKey,
                    Some(Planned::Tombstone) => Seen::Tombstone,
                    None => self.seen_by_writer(index, key, h.tag, exclusive)?,
                };
                match seen {
                    Seen::Match => {
                        found = Some(index);
                        break;
                    }
                    Seen::Empty => {
                        free = free.or(Some(index));
                        break; // no key lives past an empty slot
                    }
                    Seen::Tombstone => free = free.or(Some(index)),
                    Seen::OtherKey => {}
                }
            }
            let target = match (found, value) {
                (Some(index), _) => index,
                (None, Some(_)) => free.ok_or(Error::TableFull { probes: self.layout.max_probes })?,
                (None, None) => continue, // removing an absent key
            };
            // On first touch the slot's state comes from the store: a match means
            // it held a live key, a free slot that it did not.
            let state = if value.is_some() { Planned::Live { op, tag: h.tag } } else { Planned::Tombstone };
            plan.set(target, found.is_some(), state);
        }
        Ok(plan)
    }

    /// What a writer holding slot `index` sees there, repairing it first if a
    /// dead writer left it mid-write.
    fn seen_by_writer(&self, index: u64, key: &[u8], tag: u32, exclusive: bool) -> Result<Seen> {
        let slot = self.slot(index);
        // Under a coordinator that excludes writers we hold this slot, so an odd
        // version can only have been left by a writer that died: repair it now.
        if exclusive && slot.is_odd() {
            slot.repair(self.layout.hash_seed, self.layout.slot_count);
        }
        slot.read_for(key, tag, None, self.read_patience).map_err(|fault| self.slot_error(index, fault))
    }

    /// Repairs any slot of `key`'s window that a dead writer left mid-write.
    /// Only for a caller holding the window under a coordinator that excludes writers.
    pub(crate) fn repair_window(&self, key: &[u8]) {
        for index in self.window(self.hash(key)) {
            let slot = self.slot(index);
            if slot.is_odd() {
                slot.repair(self.layout.hash_seed, self.layout.slot_count);
            }
        }
    }
}
