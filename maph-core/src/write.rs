//! Writes: every one goes through a coordinator's exclusive guard.
//!
//! A write closure records its operations in a [`WriteTxn`]; nothing touches the
//! mapping until the closure returns `Ok`. The commit then *plans* where every
//! operation lands (so a full probe window fails the whole commit before any
//! byte changes) and only then writes the slots. So an error, from the closure
//! or from the plan, leaves the store as it was.
//!
//! Around it, the commit holds a write-intent lane (`intent.rs`): claimed before
//! anything is written, listing the slots about to be written, given back when
//! they are published. Before claiming, the committer repairs the lanes of dead
//! writers it holds the scope of; others it notes and repairs after letting go
//! of its own guard (`resolve_suspects`), when it can take their scope.
//!
//! Readers see each key change atomically (seqlock); they may see some keys of a
//! commit before others, but a key present before and after a commit is found
//! at every instant of it: a commit applies the net effect of its operations
//! key by key, so a key that exists stays in its slot (see `plan`). Readers
//! that need a consistent view of several keys take a shared guard.

use std::collections::HashMap;

use smallvec::SmallVec;
use std::sync::atomic::Ordering;

use crate::format::OFF_HIGHEST_FENCE;
use crate::intent::{Claim, Lane};
use crate::slot::{Overtaken, Seen, WriteFault};
use crate::{Error, ExclusiveGuard, LockScope, RepairReport, Result, Store, WriteCoordinator};

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

/// A commit in progress: its lane, and what it found of other writers.
#[derive(Debug)]
pub(crate) struct Commit {
    lane: Option<Lane>,
    /// Whether the coordinator excludes other writers.
    exclusive: bool,
    /// Whether another lane was claimed when this commit began (another writer
    /// mid-commit, or a dead one): then the plan looks for stale copies too.
    others_busy: bool,
    /// Lanes of writers that may be dead, outside the scope this commit holds:
    /// (lane, owner) to repair after the guard is released.
    pub(crate) suspects: Vec<(usize, u64)>,
}

impl Commit {
    fn release(&mut self, store: &Store) {
        if let Some(lane) = self.lane.take() {
            store.release_lane(lane);
        }
    }
}

/// One operation of a commit, borrowed: a key and its new value (`None` removes).
type OpRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// The index of the last operation on each distinct key, in the order of those
/// last operations: what a commit must leave, key by key.
fn last_op_per_key(ops: &[OpRef<'_>]) -> SmallVec<[usize; 4]> {
    if ops.len() == 1 {
        return smallvec::smallvec![0];
    }
    if ops.len() <= Plan::LINEAR_LIMIT {
        return (0..ops.len()).filter(|&i| !ops[i + 1..].iter().any(|(k, _)| *k == ops[i].0)).collect();
    }
    let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(ops.len());
    for (i, (key, _)) in ops.iter().enumerate() {
        last.insert(key, i);
    }
    (0..ops.len()).filter(|&i| last[ops[i].0] == i).collect()
}

/// Where a planned operation leaves a slot.
#[derive(Clone, Copy, Debug)]
enum Planned {
    /// Holds the key and value of operation `op`, whose key hash tag is `tag`.
    Live {
        op: usize,
        tag: u32,
        /// The key's commit sequence: one more than the copy it replaces.
        seq: u64,
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
        let suspects = self.write_under(&guard, f)?;
        drop(guard);
        self.resolve_suspects(coordinator, suspects);
        Ok(())
    }

    /// Runs `f` under a guard the caller already holds (a lease held across many
    /// writes, or one taken with a deadline). Keys outside the guard's scope are
    /// refused with [`Error::OutOfScope`].
    pub fn write_with<C, F>(&self, guard: &ExclusiveGuard<'_, C>, f: F) -> Result<()>
    where
        C: WriteCoordinator + ?Sized,
        F: FnOnce(&mut WriteTxn<'_>) -> Result<()>,
    {
        // Lanes of dead writers outside the guard's scope wait for a commit that
        // can release its guard (`write`, `update`, `set`, `remove`) or a repair.
        self.write_under(guard, f).map(drop)
    }

    fn write_under<C, F>(&self, guard: &ExclusiveGuard<'_, C>, f: F) -> Result<Vec<(usize, u64)>>
    where
        C: WriteCoordinator + ?Sized,
        F: FnOnce(&mut WriteTxn<'_>) -> Result<()>,
    {
        self.check_coordinator(guard.coordinator())?;
        // Before the closure reads (and may repair) anything: a holder whose
        // lease or fence is stale must not touch a slot a newer holder owns.
        self.check_right_to_write(guard)?;
        let mut commit = self.begin(guard)?;
        let mut txn = WriteTxn { store: self, scope: guard.scope(), exclusive: commit.exclusive, ops: Vec::new() };
        let recorded = f(&mut txn);
        let ops: Vec<OpRef<'_>> = txn.ops.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
        let result = recorded.and_then(|()| self.commit(guard, &mut commit, &ops));
        commit.release(self);
        result.map(|()| commit.suspects)
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
        let mut commit = self.begin(&guard)?;
        let result = (|| {
            if commit.exclusive {
                self.repair_window(key);
            }
            let old = self.get(key)?;
            let new = f(old.as_deref());
            let value = new.as_ref().map(AsRef::as_ref);
            if let Some(value) = value {
                self.check_value_len(key, value)?;
            }
            self.commit(&guard, &mut commit, &[(key, value)])
        })();
        commit.release(self);
        drop(guard);
        self.resolve_suspects(coordinator, std::mem::take(&mut commit.suspects));
        result
    }

    /// Stores one key, locking only its probe window.
    pub fn set<C: WriteCoordinator>(&self, coordinator: &C, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_key_len(key)?;
        self.check_value_len(key, value)?;
        self.write_one(coordinator, key, Some(value))
    }

    /// Removes one key, locking only its probe window.
    pub fn remove<C: WriteCoordinator>(&self, coordinator: &C, key: &[u8]) -> Result<()> {
        self.check_key_len(key)?;
        self.write_one(coordinator, key, None)
    }

    fn write_one<C: WriteCoordinator>(&self, coordinator: &C, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.check_coordinator(coordinator)?;
        let guard = coordinator.lock_exclusive(self.scope_of(key))?;
        self.check_right_to_write(&guard)?;
        let mut commit = self.begin(&guard)?;
        let result = self.commit(&guard, &mut commit, &[(key, value)]);
        commit.release(self);
        drop(guard);
        if !commit.suspects.is_empty() {
            self.resolve_suspects(coordinator, std::mem::take(&mut commit.suspects));
        }
        result
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

    /// Starts a commit under `guard`: repairs the lanes of dead writers whose
    /// scope the guard covers, notes the others, and claims a lane.
    fn begin<C: WriteCoordinator + ?Sized>(&self, guard: &ExclusiveGuard<'_, C>) -> Result<Commit> {
        let coordinator = guard.coordinator();
        let exclusive = coordinator.excludes_writers();
        let whole = exclusive && (guard.scope() == LockScope::Whole || coordinator.locks_whole_store());
        let held = if whole { LockScope::Whole } else { guard.scope() };
        let mut commit = Commit { lane: None, exclusive, others_busy: false, suspects: Vec::new() };
        let busy = self.lanes_busy();
        if busy != 0 {
            if exclusive {
                self.handle_busy_lanes(busy, held, whole, &mut commit.suspects);
            }
            commit.others_busy = true;
        }
        let claim = match (exclusive, whole) {
            (false, _) => Claim::Uncoordinated,
            (true, true) => Claim::Exclusive,
            (true, false) => Claim::Shared,
        };
        commit.lane = Some(self.claim_lane(claim, guard.scope())?);
        Ok(commit)
    }

    /// Repairs the claimed lanes whose scope `held` covers (their owners cannot
    /// be holding them: they died, or their lease lapsed); notes the others
    /// whose owner may be dead.
    fn handle_busy_lanes(&self, busy: u64, held: LockScope, whole: bool, suspects: &mut Vec<(usize, u64)>) {
        let mut report = RepairReport::default();
        for index in (0..crate::format::LANES).filter(|&i| busy & (1 << i) != 0) {
            let Some(record) = self.lane_record(index) else {
                if whole {
                    self.free_unowned_lane(index);
                }
                continue;
            };
            if held.covers(&record.scope) {
                self.repair_lane(&record, &mut report);
                self.free_repaired_lane(index, record.owner, whole);
            } else if self.lane_owner_may_be_dead(index) {
                suspects.push((index, record.owner));
            }
        }
    }

    /// Repairs, after this process let go of its own guard, the lanes of
    /// writers that may have died outside the scope it held: each one whose
    /// scope the coordinator grants at once (its owner does not hold it) and
    /// that still has the same owner. Best effort: what cannot be taken now
    /// waits for the next commit or a repair.
    pub(crate) fn resolve_suspects<C: WriteCoordinator>(&self, coordinator: &C, suspects: Vec<(usize, u64)>) {
        for (index, owner) in suspects {
            let Some(record) = self.lane_record(index).filter(|r| r.owner == owner) else { continue };
            let Ok(Some(guard)) = coordinator.try_lock_exclusive(record.scope) else { continue };
            if self.lane_record(index).is_some_and(|r| r.owner == owner) {
                let mut report = RepairReport::default();
                self.repair_lane(&record, &mut report);
                self.free_repaired_lane(index, owner, false);
            }
            drop(guard);
        }
    }

    /// Plans, checks and applies `ops` under `guard`. Sizes and scope were
    /// checked when the operations were recorded.
    fn commit<C: WriteCoordinator + ?Sized>(
        &self,
        guard: &ExclusiveGuard<'_, C>,
        commit: &mut Commit,
        ops: &[OpRef<'_>],
    ) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        // Planning may repair slots a dead writer left mid-write, so the right to
        // write is checked first (again, for writes whose closure took a while).
        self.check_right_to_write(guard)?;
        let plan = self.plan(ops, commit.exclusive, commit.others_busy)?;
        let lane = commit.lane.as_ref().expect("a commit holds a lane");
        self.record_slots(lane, plan.slots.iter().map(|&(index, _, _)| index));

        // Apply: each touched slot once, with its final state.
        for (written, &(index, was_live, state)) in plan.slots.iter().enumerate() {
            crate::test_hooks::slots_written(written as u32);
            let entry = match state {
                Planned::Live { op, tag, seq } => {
                    let (key, value) = ops[op];
                    Some((key, value.expect("a live plan comes from a set"), tag, seq))
                }
                Planned::Tombstone => None,
            };
            let written = if commit.exclusive {
                self.slot(index).write(entry).map_err(|Overtaken| WriteFault::Overtaken)
            } else {
                self.slot(index).write_unheld(entry, self.read_patience)
            };
            written.map_err(|fault| match fault {
                WriteFault::Overtaken => Error::Overtaken { slot: index },
                WriteFault::Busy(busy) => self.slot_error(index, busy),
            })?;
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
    ///
    /// The plan applies the *net* effect of the operations, key by key (the
    /// last operation on a key decides): a key present before the commit stays
    /// in its slot (overwritten or made a tombstone), and only keys new to the
    /// store take free slots. So no key ever moves between slots: a reader
    /// probing for a key that exists before and after the commit always finds
    /// it, and a crash in the middle never leaves a key in two slots.
    ///
    /// With `find_copies` (another writer was mid-commit, or died so) the whole
    /// window is searched for each key: should a key be in two slots anyway
    /// (uncoordinated writers inserting it at once, a damaged file), the copy
    /// with the higher commit sequence is kept and the others are removed.
    fn plan(&self, ops: &[OpRef<'_>], exclusive: bool, find_copies: bool) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut new_keys: SmallVec<[usize; 4]> = SmallVec::new();
        // Keys present in the store: overwritten or removed where they are.
        for op in last_op_per_key(ops) {
            let (key, value) = ops[op];
            let h = self.hash(key);
            let mut copies: SmallVec<[(u64, u64); 2]> = SmallVec::new();
            for index in self.window(h) {
                let (seen, seq) = match plan.get(index) {
                    Some(_) => (Seen::OtherKey, 0), // another key of this commit is there
                    None => self.seen_by_writer(index, key, h.tag, exclusive)?,
                };
                match seen {
                    Seen::Match => {
                        copies.push((index, seq));
                        if !find_copies {
                            break;
                        }
                    }
                    Seen::Empty => break, // no key lives past an empty slot
                    Seen::Tombstone | Seen::OtherKey => {}
                }
            }
            // The newest copy; the first in probe order among equals.
            let newest = copies.iter().copied().fold(None, |best: Option<(u64, u64)>, c| match best {
                Some(b) if b.1 >= c.1 => Some(b),
                _ => Some(c),
            });
            for &(index, _) in copies.iter().filter(|c| Some(**c) != newest) {
                plan.set(index, true, Planned::Tombstone);
            }
            match (newest, value) {
                (Some((index, seq)), Some(_)) => {
                    plan.set(index, true, Planned::Live { op, tag: h.tag, seq: seq.wrapping_add(1) })
                }
                (Some((index, _)), None) => plan.set(index, true, Planned::Tombstone),
                (None, Some(_)) => new_keys.push(op),
                (None, None) => {} // removing an absent key
            }
        }
        // Keys new to the store: the first free slot of their window (slots this
        // commit empties count as free, slots it fills do not).
        for op in new_keys {
            let (key, _) = ops[op];
            let h = self.hash(key);
            let mut free = None;
            for index in self.window(h) {
                let seen = match plan.get(index) {
                    Some(Planned::Tombstone) => Seen::Tombstone,
                    Some(Planned::Live { .. }) => Seen::OtherKey,
                    None => self.seen_by_writer(index, key, h.tag, exclusive)?.0,
                };
                match seen {
                    Seen::Empty => {
                        free = free.or(Some(index));
                        break;
                    }
                    Seen::Tombstone => {
                        free = Some(index);
                        break;
                    }
                    // Only a writer that does not exclude others can meet the
                    // key here (another inserted it since the first pass).
                    Seen::OtherKey | Seen::Match => {}
                }
            }
            let index = free.ok_or(Error::TableFull { probes: self.layout.max_probes })?;
            let was_live = matches!(plan.get(index), Some(Planned::Tombstone)); // a removed key's slot
            plan.set(index, was_live, Planned::Live { op, tag: h.tag, seq: 1 });
        }
        Ok(plan)
    }

    /// What a writer holding slot `index` sees there (and the key's commit
    /// sequence on a match), repairing it first if a dead writer left it
    /// mid-write.
    fn seen_by_writer(&self, index: u64, key: &[u8], tag: u32, exclusive: bool) -> Result<(Seen, u64)> {
        let slot = self.slot(index);
        // Under a coordinator that excludes writers we hold this slot, so an odd
        // version can only have been left by a writer that died: repair it now.
        if exclusive && slot.is_odd() {
            slot.repair(self.layout.hash_seed, self.layout.slot_count);
        }
        slot.read_for(key, tag, None, false, self.read_patience).map_err(|fault| self.slot_error(index, fault))
    }

    /// Repairs any slot of `key`'s window that a dead writer left mid-write.
    /// Only for a caller holding the window under a coordinator that excludes
    /// writers, with a lane claimed.
    pub(crate) fn repair_window(&self, key: &[u8]) {
        for index in self.window(self.hash(key)) {
            let slot = self.slot(index);
            if slot.is_odd() {
                slot.repair(self.layout.hash_seed, self.layout.slot_count);
            }
        }
    }
}
