//! The seqlock protocol of one slot.
//!
//! The slot's first word, `hash_version`, holds the key's 32-bit tag (high half)
//! and a version (low half) that is odd while a write is in progress.
//!
//! Writer (holds the slot through its coordinator):
//! 1. store `version + 1` (odd), Relaxed;
//! 2. `fence(Release)`: any reader that sees a body word of step 3 also sees step 1;
//! 3. store meta, checksum and body words, Relaxed;
//! 4. store `tag << 32 | version + 2` (even), Release: a reader that loads it sees step 3.
//!
//! Reader:
//! 1. load `hash_version` (Acquire); if odd, wait;
//! 2. load meta and body words, Relaxed;
//! 3. `fence(Acquire)`, then load `hash_version` again (Relaxed);
//! 4. the copy is whole iff both loads are equal; otherwise start over.
//!
//! Why that suffices (Boehm, "Can seqlocks get along with programming language
//! memory models?", 2012): if any load in reader step 2 saw a store of writer step
//! 3, the writer's release fence synchronises with the reader's acquire fence, so
//! reader step 3 sees at least the odd version and the check fails. If none did,
//! the copy is from the last completed write, whose even version reader step 1
//! acquired. Readers wait a bounded time (`patience`) for an odd slot, because
//! an odd slot that never turns even was left by a writer that died.

use std::time::{Duration, Instant};

use crate::format::{Meta, SlotState, SLOT_OFF_BODY, SLOT_OFF_CHECKSUM, SLOT_OFF_META};
use crate::hash::hash_key;
use crate::shared_memory::SharedRegion;
use crate::sync::{fence, spin_hint, AtomicU64, Ordering};

/// Why a slot could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotFault {
    /// The slot stayed odd (mid-write) for longer than the reader's patience.
    Busy { waited: Duration },
    /// A stable copy of the slot is malformed (the file was damaged).
    Damaged,
}

#[cfg(not(loom))]
thread_local! {
    /// Reused by `Slot::write` to compose a slot's bytes without allocating.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with an empty byte buffer: this thread's reusable one normally; a
/// fresh one under loom, whose threads share one OS thread (and its locals).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    #[cfg(not(loom))]
    return SCRATCH.with(|scratch| {
        let mut bytes = scratch.borrow_mut();
        bytes.clear();
        f(&mut bytes)
    });
    #[cfg(loom)]
    return f(&mut Vec::new());
}

/// What a slot holds from the point of view of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    Empty,
    Tombstone,
    /// The key itself; its value was copied out if asked for.
    Match,
    OtherKey,
}

/// A whole entry copied out of a slot, with its stored checksum.
pub(crate) struct SlotCopy {
    pub meta: Meta,
    /// The hash tag in the slot's `hash_version` word.
    pub tag: u32,
    /// Key followed by value.
    pub body: Vec<u8>,
    pub checksum_ok: bool,
}

/// What repair did to a slot left mid-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repaired {
    /// The content was whole (checksum valid): the write was completed.
    Finished,
    /// The content was torn: the slot became a tombstone.
    Cleared,
}

/// Waits for an odd slot: spin briefly, then yield, and give up after `patience`.
struct Waiter {
    spins: u32,
    started: Option<Instant>,
    patience: Duration,
}

impl Waiter {
    fn new(patience: Duration) -> Waiter {
        Waiter { spins: 0, started: None, patience }
    }

    fn wait(&mut self) -> Result<(), SlotFault> {
        self.spins += 1;
        if self.spins < 64 {
            spin_hint();
            return Ok(());
        }
        // A writer preempted mid-write needs the CPU back: yield it.
        std::thread::yield_now();
        let started = *self.started.get_or_insert_with(Instant::now);
        let waited = started.elapsed();
        if waited > self.patience {
            return Err(SlotFault::Busy { waited });
        }
        Ok(())
    }
}

/// One slot of a mapped store.
pub(crate) struct Slot<'r> {
    region: &'r SharedRegion,
    offset: usize,
    capacity: usize,
}

impl<'r> Slot<'r> {
    pub fn new(region: &'r SharedRegion, offset: usize, capacity: usize) -> Slot<'r> {
        Slot { region, offset, capacity }
    }

    fn hash_version(&self) -> &AtomicU64 {
        self.region.word(self.offset)
    }

    fn meta_word(&self) -> &AtomicU64 {
        self.region.word(self.offset + SLOT_OFF_META)
    }

    fn checksum_word(&self) -> &AtomicU64 {
        self.region.word(self.offset + SLOT_OFF_CHECKSUM)
    }

    /// Whether a write is in progress (or was abandoned) right now.
    pub fn is_odd(&self) -> bool {
        self.hash_version().load(Ordering::Acquire) & 1 == 1
    }

    /// Classifies the slot for `key` (whose tag is `tag`). On `Match`, the value is
    /// copied into `value_out` (cleared first) when one is given.
    pub fn read_for(
        &self,
        key: &[u8],
        tag: u32,
        mut value_out: Option<&mut Vec<u8>>,
        patience: Duration,
    ) -> Result<Seen, SlotFault> {
        let mut waiter = Waiter::new(patience);
        loop {
            let before = self.hash_version().load(Ordering::Acquire);
            if before & 1 == 1 {
                waiter.wait()?;
                continue;
            }
            let meta = Meta::decode(self.meta_word().load(Ordering::Relaxed), self.capacity);
            // `None` (torn or damaged meta) is decided after validation.
            let seen = meta.map(|m| match m.state {
                SlotState::Empty => Seen::Empty,
                SlotState::Tombstone => Seen::Tombstone,
                SlotState::Live => {
                    let body = self.offset + SLOT_OFF_BODY;
                    if (before >> 32) as u32 == tag && m.key_len == key.len() && self.region.equals(body, key) {
                        if let Some(out) = value_out.as_deref_mut() {
                            out.clear();
                            self.region.copy_out(body + m.key_len, m.value_len, out);
                        }
                        Seen::Match
                    } else {
                        Seen::OtherKey
                    }
                }
            });
            fence(Ordering::Acquire);
            if self.hash_version().load(Ordering::Relaxed) == before {
                return seen.ok_or(SlotFault::Damaged);
            }
            waiter.wait()?;
        }
    }

    /// Copies the whole slot out under the seqlock, checking its checksum.
    pub fn read_entry(&self, patience: Duration) -> Result<SlotCopy, SlotFault> {
        let mut waiter = Waiter::new(patience);
        let mut body = Vec::new();
        loop {
            let before = self.hash_version().load(Ordering::Acquire);
            if before & 1 == 1 {
                waiter.wait()?;
                continue;
            }
            let meta_word = self.meta_word().load(Ordering::Relaxed);
            let checksum = self.checksum_word().load(Ordering::Relaxed);
            let meta = Meta::decode(meta_word, self.capacity);
            body.clear();
            if let Some(m) = meta {
                self.region.copy_out(self.offset + SLOT_OFF_BODY, m.key_len + m.value_len, &mut body);
            }
            fence(Ordering::Acquire);
            if self.hash_version().load(Ordering::Relaxed) == before {
                let meta = meta.ok_or(SlotFault::Damaged)?;
                let checksum_ok = checksum_of(meta, &body) == checksum;
                return Ok(SlotCopy { meta, tag: (before >> 32) as u32, body, checksum_ok });
            }
            waiter.wait()?;
        }
    }

    /// Writes a live entry (`key`, `value`, key hash `tag`) or a tombstone
    /// (`None`) into the slot. The caller holds the slot through its coordinator,
    /// so no other writer is in it.
    pub fn write(&self, entry: Option<(&[u8], &[u8], u32)>) {
        let (meta, key, value, tag) = match entry {
            Some((key, value, tag)) => {
                (Meta { key_len: key.len(), state: SlotState::Live, value_len: value.len() }, key, value, tag)
            }
            None => (Meta { key_len: 0, state: SlotState::Tombstone, value_len: 0 }, &[][..], &[][..], 0),
        };
        // Compose meta ‖ key ‖ value once: it is both what the checksum covers
        // and, from byte 8 on, the slot body. A per-thread buffer saves an
        // allocation per write.
        with_scratch(|bytes| {
            bytes.extend_from_slice(&meta.encode().to_le_bytes());
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(value);
            let checksum = xxhash_rust::xxh3::xxh3_64(bytes);

            let hash_version = self.hash_version();
            // Relaxed: we are the only writer of this word while we hold the slot.
            let old = hash_version.load(Ordering::Relaxed);
            let version = (old as u32) & !1; // an abandoned odd version is rounded down
            hash_version.store((old & !0xffff_ffff) | u64::from(version.wrapping_add(1)), Ordering::Relaxed);
            fence(Ordering::Release);
            self.meta_word().store(meta.encode(), Ordering::Relaxed);
            crate::test_hooks::slot_body_word_stored(1);
            self.checksum_word().store(checksum, Ordering::Relaxed);
            crate::test_hooks::slot_body_word_stored(2);
            self.region.copy_in(self.offset + SLOT_OFF_BODY, &bytes[8..], |words| {
                crate::test_hooks::slot_body_word_stored(2 + words)
            });
            hash_version.store(u64::from(tag) << 32 | u64::from(version.wrapping_add(2)), Ordering::Release);
        });
    }

    /// Repairs a slot a dead writer left odd: completes it if its content is whole,
    /// otherwise turns it into a tombstone. The caller must hold the slot and know
    /// that no live writer is in it. Returns `None` if the slot was not odd.
    pub fn repair(&self, seed: u64, slot_count: u64) -> Option<Repaired> {
        let hash_version = self.hash_version();
        let old = hash_version.load(Ordering::Acquire);
        if old & 1 == 0 {
            return None;
        }
        let meta = Meta::decode(self.meta_word().load(Ordering::Relaxed), self.capacity);
        let stored = self.checksum_word().load(Ordering::Relaxed);
        if let Some(m) = meta {
            let mut body = Vec::new();
            self.region.copy_out(self.offset + SLOT_OFF_BODY, m.key_len + m.value_len, &mut body);
            if checksum_of(m, &body) == stored {
                let tag = match m.state {
                    SlotState::Live => hash_key(seed, &body[..m.key_len], slot_count).tag,
                    _ => 0,
                };
                let version = (old as u32).wrapping_add(1);
                hash_version.store(u64::from(tag) << 32 | u64::from(version), Ordering::Release);
                return Some(Repaired::Finished);
            }
        }
        self.write(None);
        Some(Repaired::Cleared)
    }
}

/// The checksum a slot with this content must carry. A never-written slot is all
/// zero, checksum included, so `Empty` checks against 0.
fn checksum_of(meta: Meta, body: &[u8]) -> u64 {
    let (key, value) = body.split_at(meta.key_len.min(body.len()));
    checksum_of_parts(meta, key, value)
}

/// xxh3-64 of the meta word's bytes, the key and the value (as `Slot::write`
/// computes it over the composed bytes), streamed so repair and verify need not
/// copy the three together.
fn checksum_of_parts(meta: Meta, key: &[u8], value: &[u8]) -> u64 {
    if meta.state == SlotState::Empty {
        return 0;
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    hasher.update(&meta.encode().to_le_bytes());
    hasher.update(key);
    hasher.update(value);
    hasher.digest()
}

/// Model checking of the seqlock with loom: every interleaving of a writer and a
/// reader (and loom's model of weak memory: relaxed loads may return older
/// stores) is explored, running the real `Slot` code on loom atomics.
///
/// `RUSTFLAGS="--cfg loom" cargo test -p maph-core --lib --release loom`
#[cfg(all(test, loom))]
mod loom_model {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    const SLOT: usize = 64;
    const KEY: &[u8] = b"key";
    const OLD: &[u8] = b"old value, 17 by";
    const NEW: &[u8] = b"NEW VALUE, 17 BY";

    fn slot(region: &SharedRegion) -> Slot<'_> {
        Slot::new(region, 0, SLOT - crate::format::SLOT_HEADER_SIZE)
    }

    /// A reader racing one overwrite sees the old value or the new one, whole.
    #[test]
    fn loom_reader_never_sees_a_torn_value() {
        loom::model(|| {
            let region = Arc::new(SharedRegion::for_model(SLOT));
            slot(&region).write(Some((KEY, OLD, 7)));
            let writer = {
                let region = region.clone();
                loom::thread::spawn(move || slot(&region).write(Some((KEY, NEW, 7))))
            };
            let mut value = Vec::new();
            let seen = slot(&region).read_for(KEY, 7, Some(&mut value), Duration::from_secs(3600));
            assert_eq!(seen, Ok(Seen::Match));
            assert!(value == OLD || value == NEW, "torn read: {value:?}");
            writer.join().unwrap();
        });
    }

    /// A reader racing a delete sees the key whole or finds a tombstone.
    #[test]
    fn loom_reader_sees_a_delete_whole() {
        loom::model(|| {
            let region = Arc::new(SharedRegion::for_model(SLOT));
            slot(&region).write(Some((KEY, OLD, 7)));
            let writer = {
                let region = region.clone();
                loom::thread::spawn(move || slot(&region).write(None))
            };
            let mut value = Vec::new();
            match slot(&region).read_for(KEY, 7, Some(&mut value), Duration::from_secs(3600)) {
                Ok(Seen::Match) => assert_eq!(value, OLD),
                Ok(Seen::Tombstone) => {}
                other => panic!("unexpected {other:?}"),
            }
            writer.join().unwrap();
        });
    }
}
