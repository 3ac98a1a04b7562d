//! The seqlock protocol of one slot.
//!
//! The slot's first word, `hash_version`, holds the key's 32-bit tag (high half)
//! and a version (low half) that is odd while a write is in progress.
//!
//! Writer (holds the slot through its coordinator):
//! 1. store `version + 1` (odd), Relaxed;
//! 2. `fence(Release)`: any reader that sees a body word of step 3 also sees step 1;
//! 3. store meta, sequence, checksum and body words, Relaxed;
//! 4. compare-and-swap `version + 1` into `tag << 32 | version + 2` (even),
//!    Release: a reader that loads it sees step 3. The swap fails only if
//!    someone else changed the version since step 1: another holder judged
//!    this writer dead (its lease lapsed while it was paused) and repaired or
//!    rewrote the slot. The writer then reports [`Overtaken`] and leaves the
//!    slot as it is: if its late body stores mixed into the other holder's
//!    content, the checksum says so and readers refuse it until a repair.
//!
//! Reader:
//! 1. load `hash_version` (Acquire); if odd, wait;
//! 2. load meta, sequence, checksum and body words, Relaxed;
//! 3. `fence(Acquire)`, then load `hash_version` again (Relaxed);
//! 4. the copy is whole iff both loads are equal; otherwise start over;
//! 5. a copy it returns must match its checksum (meta, sequence, key and value:
//!    exactly the bytes it returns and what they mean). A whole copy that does
//!    not is read again a few times and then reported ([`SlotFault::Checksum`]),
//!    never returned: bytes mixed under an even version (two writers that were
//!    not excluded, an overtaken writer, a damaged file) never reach a caller.
//!
//! Why steps 1–4 suffice (Boehm, "Can seqlocks get along with programming
//! language memory models?", 2012): if any load in reader step 2 saw a store of
//! writer step 3, the writer's release fence synchronises with the reader's
//! acquire fence, so reader step 3 sees at least the odd version and the check
//! fails. If none did, the copy is from the last completed write, whose even
//! version reader step 1 acquired. Readers wait a bounded time (`patience`) for
//! an odd slot, because an odd slot that never turns even was left by a writer
//! that died.

use std::time::{Duration, Instant};

use crate::format::{Meta, SlotState, SLOT_OFF_BODY, SLOT_OFF_CHECKSUM, SLOT_OFF_META, SLOT_OFF_SEQ};
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
    /// A stable copy of the slot does not match its checksum, read after read.
    Checksum,
}

/// A slot write whose publishing compare-and-swap failed: someone else changed
/// the slot's version while this writer was between its odd store and its
/// publish. Nothing of the write can be trusted; the slot is left for repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overtaken;

/// Why a slot write did not publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteFault {
    /// See [`Overtaken`].
    Overtaken,
    /// A writer that does not hold the slot waited past its patience for
    /// another one to leave it (that one died mid-write).
    Busy(SlotFault),
}

/// How often a whole copy that fails its checksum is read again before the
/// slot is reported: enough to ride out a repair finishing as we look.
const CHECKSUM_RETRIES: u32 = 3;

#[cfg(not(loom))]
thread_local! {
    /// Reused by `Slot::write` to compose a slot's bytes, and by reads to
    /// compose what the checksum covers, without allocating.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with an empty byte buffer: this thread's reusable one normally; a
/// fresh one under loom, whose threads share one OS thread (and its locals).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    #[cfg(not(loom))]
    return SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut bytes) => {
            bytes.clear();
            f(&mut bytes)
        }
        // Re-entered (a read inside a write's closure cannot happen today, but
        // a fresh buffer is always correct).
        Err(_) => f(&mut Vec::new()),
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
    /// The key's commit sequence.
    pub seq: u64,
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

    fn seq_word(&self) -> &AtomicU64 {
        self.region.word(self.offset + SLOT_OFF_SEQ)
    }

    /// Whether a write is in progress (or was abandoned) right now.
    pub fn is_odd(&self) -> bool {
        self.hash_version().load(Ordering::Acquire) & 1 == 1
    }

    /// Classifies the slot for `key` (whose tag is `tag`) and returns, on
    /// `Match`, the key's commit sequence. On `Match` the value is copied into
    /// `value_out` (cleared first) when one is given; with `verify`, a match is
    /// only returned if meta, sequence, key and value match the checksum.
    pub fn read_for(
        &self,
        key: &[u8],
        tag: u32,
        mut value_out: Option<&mut Vec<u8>>,
        verify: bool,
        patience: Duration,
    ) -> Result<(Seen, u64), SlotFault> {
        let mut waiter = Waiter::new(patience);
        let mut bad_checksums = 0;
        // Where a verified value goes when the caller wants none (`contains`).
        let mut discarded = Vec::new();
        loop {
            let before = self.hash_version().load(Ordering::Acquire);
            if before & 1 == 1 {
                waiter.wait()?;
                continue;
            }
            let meta_word = self.meta_word().load(Ordering::Relaxed);
            let (mut seq, mut checksum) = (0, 0);
            // `None` (torn or damaged meta) is decided after validation.
            let seen = Meta::decode(meta_word, self.capacity).map(|m| match m.state {
                SlotState::Empty => Seen::Empty,
                SlotState::Tombstone => Seen::Tombstone,
                SlotState::Live => {
                    let body = self.offset + SLOT_OFF_BODY;
                    if (before >> 32) as u32 == tag && m.key_len == key.len() && self.region.equals(body, key) {
                        seq = self.seq_word().load(Ordering::Relaxed);
                        if verify {
                            checksum = self.checksum_word().load(Ordering::Relaxed);
                        }
                        if verify || value_out.is_some() {
                            let out = value_out.as_deref_mut().unwrap_or(&mut discarded);
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
            if self.hash_version().load(Ordering::Relaxed) != before {
                waiter.wait()?;
                continue;
            }
            let seen = seen.ok_or(SlotFault::Damaged)?;
            if seen == Seen::Match && verify {
                let value = value_out.as_deref().unwrap_or(&discarded);
                if checksum_of_parts(meta_word, seq, key, value) != checksum {
                    bad_checksums += 1;
                    if bad_checksums > CHECKSUM_RETRIES {
                        return Err(SlotFault::Checksum);
                    }
                    std::thread::yield_now();
                    continue;
                }
            }
            return Ok((seen, seq));
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
            let seq = self.seq_word().load(Ordering::Relaxed);
            let checksum = self.checksum_word().load(Ordering::Relaxed);
            let meta = Meta::decode(meta_word, self.capacity);
            body.clear();
            if let Some(m) = meta {
                self.region.copy_out(self.offset + SLOT_OFF_BODY, m.key_len + m.value_len, &mut body);
            }
            fence(Ordering::Acquire);
            if self.hash_version().load(Ordering::Relaxed) == before {
                let meta = meta.ok_or(SlotFault::Damaged)?;
                let checksum_ok = checksum_of(meta, seq, &body) == checksum;
                return Ok(SlotCopy { meta, tag: (before >> 32) as u32, seq, body, checksum_ok });
            }
            waiter.wait()?;
        }
    }

    /// Reads the slot for a caller that returns its content: a whole copy that
    /// fails its checksum is read again a few times, then reported.
    pub fn read_checked(&self, patience: Duration) -> Result<SlotCopy, SlotFault> {
        let mut bad_checksums = 0;
        loop {
            let copy = self.read_entry(patience)?;
            if copy.checksum_ok {
                return Ok(copy);
            }
            bad_checksums += 1;
            if bad_checksums > CHECKSUM_RETRIES {
                return Err(SlotFault::Checksum);
            }
            std::thread::yield_now();
        }
    }

    /// Writes a live entry (`key`, `value`, key hash `tag`, commit sequence
    /// `seq`) or a tombstone (`None`) into the slot. The caller holds the slot
    /// through its coordinator; [`Overtaken`] if someone changed the slot's
    /// version meanwhile (see the module docs).
    pub fn write(&self, entry: Option<(&[u8], &[u8], u32, u64)>) -> Result<(), Overtaken> {
        self.write_as(entry, None).map_err(|_| Overtaken)
    }

    /// As [`write`](Self::write), for a writer that does *not* hold the slot
    /// (`Uncoordinated`): the odd store is a compare-and-swap from an even
    /// version, waiting (up to `patience`) while another writer is in the slot,
    /// so two such writers take turns on the slot instead of tearing it.
    pub fn write_unheld(&self, entry: Option<(&[u8], &[u8], u32, u64)>, patience: Duration) -> Result<(), WriteFault> {
        self.write_as(entry, Some(patience))
    }

    fn write_as(&self, entry: Option<(&[u8], &[u8], u32, u64)>, unheld: Option<Duration>) -> Result<(), WriteFault> {
        let (meta, key, value, tag, seq) = match entry {
            Some((key, value, tag, seq)) => {
                (Meta { key_len: key.len(), state: SlotState::Live, value_len: value.len() }, key, value, tag, seq)
            }
            None => (Meta { key_len: 0, state: SlotState::Tombstone, value_len: 0 }, &[][..], &[][..], 0, 0),
        };
        // Compose meta ‖ seq ‖ key ‖ value once: it is both what the checksum
        // covers and, from byte 16 on, the slot body. A per-thread buffer saves
        // an allocation per write.
        with_scratch(|bytes| {
            bytes.extend_from_slice(&meta.encode().to_le_bytes());
            bytes.extend_from_slice(&seq.to_le_bytes());
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(value);
            let checksum = xxhash_rust::xxh3::xxh3_64(bytes);

            let hash_version = self.hash_version();
            let (version, odd) = match unheld {
                None => {
                    // Relaxed: we hold the slot; a stale value only makes the publish fail.
                    let old = hash_version.load(Ordering::Relaxed);
                    let version = (old as u32) & !1; // an abandoned odd version is rounded down
                    let odd = (old & !0xffff_ffff) | u64::from(version.wrapping_add(1));
                    hash_version.store(odd, Ordering::Relaxed);
                    (version, odd)
                }
                Some(patience) => self.enter_unheld(patience).map_err(WriteFault::Busy)?,
            };
            fence(Ordering::Release);
            // A test's pause point after each body word (see `test_hooks`); one
            // load per write when the hooks are compiled in, nothing otherwise.
            let pause_point = crate::test_hooks::slot_body_armed();
            let stored = |words| {
                if pause_point {
                    crate::test_hooks::slot_body_word_stored(words)
                }
            };
            self.meta_word().store(meta.encode(), Ordering::Relaxed);
            stored(1);
            self.seq_word().store(seq, Ordering::Relaxed);
            stored(2);
            self.checksum_word().store(checksum, Ordering::Relaxed);
            stored(3);
            self.region.copy_in(self.offset + SLOT_OFF_BODY, &bytes[16..], |words| stored(3 + words));
            let even = u64::from(tag) << 32 | u64::from(version.wrapping_add(2));
            // Release on success: publishes the stores above. Relaxed on
            // failure: we only report it.
            hash_version
                .compare_exchange(odd, even, Ordering::Release, Ordering::Relaxed)
                .map(drop)
                .map_err(|_| WriteFault::Overtaken)
        })
    }

    /// Makes the slot odd from an even version with a compare-and-swap,
    /// waiting while it is odd; returns the even version and the odd word.
    fn enter_unheld(&self, patience: Duration) -> Result<(u32, u64), SlotFault> {
        let hash_version = self.hash_version();
        let mut waiter = Waiter::new(patience);
        loop {
            let old = hash_version.load(Ordering::Relaxed);
            if old & 1 == 0 {
                let version = old as u32;
                let odd = (old & !0xffff_ffff) | u64::from(version.wrapping_add(1));
                // Acquire: our body stores come after we own the slot.
                if hash_version.compare_exchange(old, odd, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    return Ok((version, odd));
                }
                continue;
            }
            waiter.wait()?;
        }
    }

    /// Repairs a slot a dead writer left odd: completes it if its content is whole,
    /// otherwise turns it into a tombstone. The caller must hold the slot and know
    /// that no live writer is in it. Returns `None` if the slot was not odd (or
    /// someone else finished it first).
    pub fn repair(&self, seed: u64, slot_count: u64) -> Option<Repaired> {
        let hash_version = self.hash_version();
        let old = hash_version.load(Ordering::Acquire);
        if old & 1 == 0 {
            return None;
        }
        let meta = Meta::decode(self.meta_word().load(Ordering::Relaxed), self.capacity);
        let seq = self.seq_word().load(Ordering::Relaxed);
        let stored = self.checksum_word().load(Ordering::Relaxed);
        if let Some(m) = meta {
            let mut body = Vec::new();
            self.region.copy_out(self.offset + SLOT_OFF_BODY, m.key_len + m.value_len, &mut body);
            if checksum_of(m, seq, &body) == stored {
                let tag = match m.state {
                    SlotState::Live => hash_key(seed, &body[..m.key_len], slot_count).tag,
                    _ => 0,
                };
                let even = u64::from(tag) << 32 | u64::from((old as u32).wrapping_add(1));
                // A compare-and-swap, so that a writer that was only paused
                // (and resumes) cannot publish over the finished slot.
                return hash_version
                    .compare_exchange(old, even, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
                    .then_some(Repaired::Finished);
            }
        }
        // Overtaken only if a paused writer resumed and published meanwhile:
        // then the slot is its, whole, and nothing is left to clear.
        self.write(None).ok().map(|()| Repaired::Cleared)
    }

    /// Turns the slot into a tombstone (repair of damaged or duplicated
    /// content). The caller holds the slot.
    pub fn clear(&self) {
        // Overtaken only by a writer that resumed and published a whole value.
        let _ = self.write(None);
    }
}

/// The checksum a slot with this content must carry. A never-written slot is all
/// zero, checksum included, so `Empty` checks against 0.
fn checksum_of(meta: Meta, seq: u64, body: &[u8]) -> u64 {
    if meta.state == SlotState::Empty {
        return 0;
    }
    let (key, value) = body.split_at(meta.key_len.min(body.len()));
    checksum_of_parts(meta.encode(), seq, key, value)
}

/// xxh3-64 of meta ‖ seq ‖ key ‖ value, as `Slot::write` computes it over the
/// composed bytes: one pass over a stack copy when they fit in 256 bytes (the
/// common case, cheaper than the streaming hasher), streamed otherwise.
#[inline]
fn checksum_of_parts(meta_word: u64, seq: u64, key: &[u8], value: &[u8]) -> u64 {
    let len = 16 + key.len() + value.len();
    if len <= 256 {
        let mut bytes = [0u8; 256];
        bytes[..8].copy_from_slice(&meta_word.to_le_bytes());
        bytes[8..16].copy_from_slice(&seq.to_le_bytes());
        bytes[16..16 + key.len()].copy_from_slice(key);
        bytes[16 + key.len()..len].copy_from_slice(value);
        return xxhash_rust::xxh3::xxh3_64(&bytes[..len]);
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    hasher.update(&meta_word.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
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
            slot(&region).write(Some((KEY, OLD, 7, 1))).unwrap();
            let writer = {
                let region = region.clone();
                loom::thread::spawn(move || slot(&region).write(Some((KEY, NEW, 7, 2))).unwrap())
            };
            let mut value = Vec::new();
            let seen = slot(&region).read_for(KEY, 7, Some(&mut value), true, Duration::from_secs(3600));
            assert!(matches!(seen, Ok((Seen::Match, _))), "{seen:?}");
            assert!(value == OLD || value == NEW, "torn read: {value:?}");
            writer.join().unwrap();
        });
    }

    /// A reader racing a delete sees the key whole or finds a tombstone.
    #[test]
    fn loom_reader_sees_a_delete_whole() {
        loom::model(|| {
            let region = Arc::new(SharedRegion::for_model(SLOT));
            slot(&region).write(Some((KEY, OLD, 7, 1))).unwrap();
            let writer = {
                let region = region.clone();
                loom::thread::spawn(move || slot(&region).write(None).unwrap())
            };
            let mut value = Vec::new();
            match slot(&region).read_for(KEY, 7, Some(&mut value), true, Duration::from_secs(3600)) {
                Ok((Seen::Match, _)) => assert_eq!(value, OLD),
                Ok((Seen::Tombstone, _)) => {}
                other => panic!("unexpected {other:?}"),
            }
            writer.join().unwrap();
        });
    }
}
