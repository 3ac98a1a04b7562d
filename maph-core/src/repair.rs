//! Crash recovery and verification.
//!
//! A writer killed between the odd and even stores of the seqlock leaves its slot
//! odd forever, and its write-intent lane claimed (`intent.rs`). The next holder
//! of the lock repairs the slots the lane lists before it writes: if a slot's
//! checksum matches its content the write had finished and only the closing
//! store is missing, so repair completes it; otherwise the content is torn and
//! the slot becomes a tombstone (the key the dead writer was writing is lost,
//! every other key is intact). A key found twice (the writer died between the
//! two slots of a move) keeps its newer copy. [`Store::repair`] does the same
//! for every slot, and also clears damage that no writer left.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::format::{SlotState, COUNTER_SHARDS, LANES, OFF_LANES_BUSY, OFF_RETIRED, RETIRED};
use crate::intent::{LaneRecord, MaintenanceMark};
use crate::slot::{Repaired, SlotCopy, SlotFault};
use crate::{Error, LockScope, Result, Store, WriteCoordinator};

/// How long a repair of an uncoordinated store waits for the commits in flight
/// when it starts (they take microseconds; a writer stopped mid-commit does not
/// finish, and the repair reports it instead of touching its slots).
const UNCOORDINATED_DRAIN: Duration = Duration::from_secs(5);

/// What a repair found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Slots left mid-write whose content was whole: the write was completed.
    pub finished: Vec<u64>,
    /// Slots left mid-write with torn content: cleared to tombstones.
    pub cleared: Vec<u64>,
    /// Slots not mid-write whose content was damaged (checksum mismatch,
    /// impossible lengths, or a key that lookups can never reach): cleared too.
    pub damaged: Vec<u64>,
    /// Older copies of a key found twice (a writer died between the two slots
    /// of a move): cleared, the copy with the higher commit sequence kept.
    pub duplicates: Vec<u64>,
    /// Write-intent lanes of dead writers that were repaired and freed.
    pub lanes: u64,
    /// Slots examined: 0 when nothing was left by a dead writer, the listed
    /// slots of its lane when one was, every slot for a full repair.
    pub scanned: u64,
    /// Live keys counted by the repair (the header's count is reset to this);
    /// only a full repair counts them (0 otherwise).
    pub live: u64,
}

impl RepairReport {
    /// Whether anything had to be repaired.
    pub fn is_clean(&self) -> bool {
        self.finished.is_empty() && self.cleared.is_empty() && self.damaged.is_empty() && self.duplicates.is_empty()
    }
}

/// What a read-only check of every slot found. Nothing is changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Slots checked.
    pub slots: u64,
    /// Slots holding a key.
    pub live: u64,
    /// Slots holding a tombstone.
    pub tombstones: u64,
    /// Slots that stayed mid-write for the whole read patience (a dead writer's).
    pub in_progress: Vec<u64>,
    /// Slots whose checksum does not match their content, or whose lengths are impossible.
    pub corrupt: Vec<u64>,
    /// Live keys that lookups cannot reach: outside their probe window or with
    /// another key's hash tag (a foreign or damaged layout).
    pub misplaced: Vec<u64>,
    /// Slots holding a second copy of a key found earlier in its window (a
    /// writer died between the two slots of a move).
    pub duplicates: Vec<u64>,
    /// Write-intent lanes still claimed by writers that are gone: what the
    /// next writer (or a repair) repairs first.
    pub abandoned_lanes: u64,
    /// Set (to the file's current length) if the file no longer has the length
    /// it was mapped with; no slot was read then (see [`Store::check_file_length`]).
    pub length_changed: Option<u64>,
}

impl VerifyReport {
    /// Whether every slot is whole and where it belongs, and no dead writer's
    /// lane waits for repair.
    pub fn is_clean(&self) -> bool {
        self.in_progress.is_empty()
            && self.corrupt.is_empty()
            && self.misplaced.is_empty()
            && self.duplicates.is_empty()
            && self.abandoned_lanes == 0
            && self.length_changed.is_none()
    }
}

impl Store {
    /// Takes the whole store exclusively through `coordinator`, repairs every slot
    /// a dead writer left mid-write or that is damaged, keeps the newer copy of
    /// any key found twice, frees the lanes of dead writers, and recounts the
    /// live keys.
    ///
    /// Every store can be repaired. For an [`Uncoordinated`](crate::Uncoordinated)
    /// store, whose writers take no lock, the repair first marks the store as
    /// under repair (its writers then refuse to commit, with
    /// [`Error::UnderRepair`], until it is done), waits for the commits already
    /// in flight, and fails without touching anything if a live writer stays
    /// mid-commit (stopped, say) for 5 seconds.
    pub fn repair<C: WriteCoordinator>(&self, coordinator: &C) -> Result<RepairReport> {
        self.check_coordinator(coordinator)?;
        self.check_file_length()?;
        let guard = coordinator.lock_exclusive(LockScope::Whole)?;
        guard.validate()?;
        if coordinator.excludes_writers() {
            return self.repair_exclusively_held();
        }
        let _mark = MaintenanceMark::set(self)?;
        let started = Instant::now();
        while let Some(pid) = self.live_lane_holder() {
            if started.elapsed() > UNCOORDINATED_DRAIN {
                return Err(Error::Coordination {
                    strategy: coordinator.strategy(),
                    detail: format!(
                        "process {pid} has been in the middle of a write to {} for {UNCOORDINATED_DRAIN:?}; \
                         repair touches nothing while a writer is mid-write: stop or let it finish, then repair again",
                        self.path().display()
                    ),
                });
            }
            std::thread::yield_now();
        }
        self.repair_exclusively_held()
    }

    /// Repairs the lanes of writers that died holding them (all claimed lanes:
    /// the caller holds the whole store and no other writer exists), touching
    /// only the slots they list. What a writer start does: O(1) after a clean
    /// close.
    pub(crate) fn repair_dead_lanes(&self) -> Result<RepairReport> {
        self.check_file_length()?;
        let mut report = RepairReport::default();
        let busy = self.lanes_busy();
        for index in (0..LANES).filter(|&i| busy & (1 << i) != 0) {
            match self.lane_record(index) {
                Some(record) => {
                    self.repair_lane(&record, &mut report);
                    self.free_repaired_lane(index, record.owner, true);
                }
                None => self.free_unowned_lane(index),
            }
        }
        Ok(report)
    }

    /// Repairs what the dead owner of `lane` may have left: its listed slots
    /// (or every slot of its scope), then the other copies of the keys in them.
    /// The caller holds the lane's scope.
    pub(crate) fn repair_lane(&self, lane: &LaneRecord, report: &mut RepairReport) {
        let slots: Vec<u64> = match (lane.listed(), lane.scope) {
            (Some(listed), _) => listed.to_vec(),
            (None, LockScope::Whole) => (0..self.layout.slot_count).collect(),
            (None, scope) => scope.ranges().flatten().collect(),
        };
        for &index in &slots {
            self.repair_slot(index, report);
        }
        for &index in &slots {
            self.keep_newest_copy(index, report);
        }
        report.lanes += 1;
        report.scanned += slots.len() as u64;
    }

    /// Completes or clears slot `index` if a dead writer left it odd; clears it
    /// if it is damaged (or holds a key lookups cannot reach).
    fn repair_slot(&self, index: u64, report: &mut RepairReport) {
        let slot = self.slot(index);
        match slot.repair(self.layout.hash_seed, self.layout.slot_count) {
            Some(Repaired::Finished) => report.finished.push(index),
            Some(Repaired::Cleared) => {
                report.cleared.push(index);
                return;
            }
            None => {}
        }
        match slot.read_entry(self.read_patience) {
            Ok(copy) if copy.checksum_ok && self.reachable(index, &copy) => {}
            _ => {
                slot.clear();
                report.damaged.push(index);
            }
        }
    }

    /// If slot `index` holds a key that also lives elsewhere in its window,
    /// keeps the copy with the higher commit sequence (the first in probe order
    /// among equals) and clears the others.
    fn keep_newest_copy(&self, index: u64, report: &mut RepairReport) {
        let Ok(copy) = self.slot(index).read_entry(self.read_patience) else { return };
        if copy.meta.state != SlotState::Live || !copy.checksum_ok {
            return;
        }
        let key = &copy.body[..copy.meta.key_len];
        let mut copies = Vec::new();
        for other in self.window(self.hash(key)) {
            match self.slot(other).read_entry(self.read_patience) {
                Ok(c) if c.meta.state == SlotState::Empty => break,
                Ok(c) if c.meta.state == SlotState::Live && c.checksum_ok && &c.body[..c.meta.key_len] == key => {
                    copies.push((other, c.seq));
                }
                _ => {}
            }
        }
        if copies.len() < 2 {
            return;
        }
        let newest = copies.iter().copied().fold(copies[0], |best, c| if c.1 > best.1 { c } else { best });
        for &(other, _) in copies.iter().filter(|&&c| c != newest) {
            self.slot(other).clear();
            self.live_word(self.counter_shard(other)).fetch_sub(1, Ordering::Relaxed);
            report.duplicates.push(other);
        }
    }

    /// Repair for a caller that knows no other writer exists: every slot.
    pub(crate) fn repair_exclusively_held(&self) -> Result<RepairReport> {
        self.check_file_length()?;
        let mut report = RepairReport { scanned: self.layout.slot_count, ..RepairReport::default() };
        let mut live = [0u64; COUNTER_SHARDS];
        for index in 0..self.layout.slot_count {
            let slot = self.slot(index);
            match slot.repair(self.layout.hash_seed, self.layout.slot_count) {
                Some(Repaired::Finished) => report.finished.push(index),
                Some(Repaired::Cleared) => report.cleared.push(index),
                None => {}
            }
            match slot.read_entry(self.read_patience) {
                Ok(copy) if copy.checksum_ok && self.reachable(index, &copy) => {
                    if copy.meta.state == SlotState::Live {
                        match self.earlier_copy(index, &copy) {
                            // The earlier copy is older: it goes, this one stays.
                            Some((earlier, seq)) if seq < copy.seq => {
                                self.slot(earlier).clear();
                                live[self.counter_shard(earlier)] -= 1;
                                report.duplicates.push(earlier);
                            }
                            Some(_) => {
                                slot.clear();
                                report.duplicates.push(index);
                                continue;
                            }
                            None => {}
                        }
                        live[self.counter_shard(index)] += 1;
                    }
                }
                _ => {
                    slot.clear();
                    report.damaged.push(index);
                }
            }
        }
        report.live = live.iter().sum();
        // Relaxed: we are the only writer; readers use them as statistics.
        for (k, &count) in live.iter().enumerate() {
            self.live_word(k).store(count, Ordering::Relaxed);
        }
        // Every lane is repaired by the pass above: free them all. With atomic
        // read-modify-writes of the busy word: a refused uncoordinated writer may
        // be giving its lane back at the same moment.
        let busy = self.lanes_busy();
        for index in 0..LANES {
            match self.lane_record(index) {
                Some(record) => {
                    self.free_repaired_lane(index, record.owner, false);
                    report.lanes += 1;
                }
                None if busy & (1 << index) != 0 => {
                    self.region.word(OFF_LANES_BUSY).fetch_and(!(1 << index), Ordering::Release);
                }
                None => {}
            }
        }
        // A retired word that is neither 0 nor the mark is damage, not a retirement.
        let retired = self.region.word(OFF_RETIRED);
        if !matches!(retired.load(Ordering::Relaxed), 0 | RETIRED) {
            retired.store(0, Ordering::Relaxed);
        }
        Ok(report)
    }

    /// Another live copy of `copy`'s key (in slot `index`) earlier in its
    /// probe window, with that copy's commit sequence.
    fn earlier_copy(&self, index: u64, copy: &SlotCopy) -> Option<(u64, u64)> {
        let key = &copy.body[..copy.meta.key_len];
        for other in self.window(self.hash(key)).take_while(|&other| other != index) {
            match self.slot(other).read_entry(self.read_patience) {
                Ok(c) if c.meta.state == SlotState::Live && c.checksum_ok && &c.body[..c.meta.key_len] == key => {
                    return Some((other, c.seq));
                }
                _ => {}
            }
        }
        None
    }

    /// Whether a lookup of the slot's key can find it: a live key must sit in its
    /// probe window and carry its hash tag (empty and tombstone slots always can).
    fn reachable(&self, index: u64, copy: &SlotCopy) -> bool {
        if copy.meta.state != SlotState::Live {
            return true;
        }
        let key = &copy.body[..copy.meta.key_len];
        copy.tag == self.hash(key).tag && self.scope_of(key).contains_slot(index)
    }

    /// Reads every slot and reports what is mid-write, damaged or misplaced.
    /// Safe to run at any time from any process; changes nothing.
    pub fn verify(&self) -> VerifyReport {
        let mut report = VerifyReport { slots: self.layout.slot_count, ..VerifyReport::default() };
        if self.check_file_length().is_err() {
            report.length_changed = Some(std::fs::metadata(self.path()).map_or(0, |m| m.len()));
            return report;
        }
        for index in 0..self.layout.slot_count {
            match self.slot(index).read_entry(self.read_patience) {
                Err(SlotFault::Busy { .. }) => report.in_progress.push(index),
                Err(SlotFault::Damaged | SlotFault::Checksum) => report.corrupt.push(index),
                Ok(copy) if !copy.checksum_ok => report.corrupt.push(index),
                Ok(copy) => match copy.meta.state {
                    SlotState::Empty => {}
                    SlotState::Tombstone => report.tombstones += 1,
                    SlotState::Live => {
                        report.live += 1;
                        if !self.reachable(index, &copy) {
                            report.misplaced.push(index);
                        } else if self.earlier_copy(index, &copy).is_some() {
                            report.duplicates.push(index);
                        }
                    }
                },
            }
        }
        report.abandoned_lanes = (0..LANES).filter(|&i| self.lane_owner_may_be_dead(i)).count() as u64;
        report
    }
}
