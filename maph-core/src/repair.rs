//! Crash recovery and verification.
//!
//! A writer killed between the odd and even stores of the seqlock leaves its slot
//! odd forever. Readers give up on such a slot after their patience
//! ([`Error::SlotBusy`](crate::Error::SlotBusy)); a writer that holds the slot
//! repairs it: if the slot's checksum matches its content the write had finished
//! and only the closing store is missing, so repair completes it; otherwise the
//! content is torn and the slot becomes a tombstone (the key the dead writer was
//! writing is lost, every other key is intact).

use std::sync::atomic::Ordering;

use crate::format::{SlotState, COUNTER_SHARDS, OFF_RETIRED, RETIRED};
use crate::slot::{Repaired, SlotCopy, SlotFault};
use crate::{LockScope, Result, Store, WriteCoordinator};

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
    /// Live keys counted by the repair (the header's count is reset to this).
    pub live: u64,
}

impl RepairReport {
    /// Whether anything had to be repaired.
    pub fn is_clean(&self) -> bool {
        self.finished.is_empty() && self.cleared.is_empty() && self.damaged.is_empty()
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
    /// Set (to the file's current length) if the file no longer has the length
    /// it was mapped with; no slot was read then (see [`Store::check_file_length`]).
    pub length_changed: Option<u64>,
}

impl VerifyReport {
    /// Whether every slot is whole and where it belongs.
    pub fn is_clean(&self) -> bool {
        self.in_progress.is_empty()
            && self.corrupt.is_empty()
            && self.misplaced.is_empty()
            && self.length_changed.is_none()
    }
}

impl Store {
    /// Takes the whole store exclusively through `coordinator`, repairs every slot
    /// a dead writer left mid-write, and recounts the live keys.
    pub fn repair<C: WriteCoordinator>(&self, coordinator: &C) -> Result<RepairReport> {
        self.check_coordinator(coordinator)?;
        self.check_file_length()?;
        let guard = coordinator.lock_exclusive(LockScope::Whole)?;
        guard.validate()?;
        if !coordinator.excludes_writers() {
            // Without exclusion an odd slot may be a live writer's: do not touch it.
            return Ok(RepairReport { live: self.len(), ..RepairReport::default() });
        }
        self.repair_exclusively_held()
    }

    /// Repair for a caller that knows no other writer exists.
    pub(crate) fn repair_exclusively_held(&self) -> Result<RepairReport> {
        self.check_file_length()?;
        let mut report = RepairReport::default();
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
                        report.live += 1;
                        live[self.counter_shard(index)] += 1;
                    }
                }
                _ => {
                    slot.write(None);
                    report.damaged.push(index);
                }
            }
        }
        // Relaxed: we are the only writer; readers use them as statistics.
        for (k, &count) in live.iter().enumerate() {
            self.live_word(k).store(count, Ordering::Relaxed);
        }
        // A retired word that is neither 0 nor the mark is damage, not a retirement.
        let retired = self.region.word(OFF_RETIRED);
        if !matches!(retired.load(Ordering::Relaxed), 0 | RETIRED) {
            retired.store(0, Ordering::Relaxed);
        }
        Ok(report)
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
                Err(SlotFault::Damaged) => report.corrupt.push(index),
                Ok(copy) if !copy.checksum_ok => report.corrupt.push(index),
                Ok(copy) => match copy.meta.state {
                    SlotState::Empty => {}
                    SlotState::Tombstone => report.tombstones += 1,
                    SlotState::Live => {
                        report.live += 1;
                        if !self.reachable(index, &copy) {
                            report.misplaced.push(index);
                        }
                    }
                },
            }
        }
        report
    }
}
