//! The lock region: how this crate lays out the store header's coordinator
//! region (bytes 1024..4096, 768 little-endian 32-bit words; see
//! `docs/FORMAT.md`).
//!
//! The region is cut into 48 cache lines of 16 words. Line 0 is the region
//! header; line `1 + s` belongs to stripe `s`, so two processes locking
//! different stripes never write the same cache line.
//!
//! | word | name | meaning |
//! |---:|---|---|
//! | 0 | magic | `FUTX` (`0x5854_5546`) once the region is set up; `0` on a fresh store; anything else is refused |
//! | 1 | version | layout version, `2` |
//! | 2 | stripes | number of stripes `K`, `1..=47`, fixed by the first coordinator to attach |
//! | 3 | pid namespace | low 32 bits of the inode of `/proc/self/ns/pid` of the process that set the region up (`0` = unknown); pids only mean something inside one namespace |
//! | 4 | repair pending | non-zero from a takeover until the whole-store repair that follows it |
//! | 5 | takeovers | number of times a waiter took a stripe over from a dead holder (wrapping) |
//! | 6..16 | reserved | zero |
//! | `16·(1+s)`, `16·(1+s) + 1` | lock word of stripe `s` | one 64-bit word: see [`lock word`](crate#the-lock-word) |
//! | `16·(1+s) + 2 .. 16·(2+s)` | reserved | zero |
//!
//! Version 1 of this layout kept the holder's start time in a separate record
//! beside a 32-bit lock word; version 2 keeps both in one 64-bit word, so a
//! holder is never named without being described. A version-1 region is
//! refused with an error that says to recreate the store.

use std::sync::atomic::{AtomicU32, Ordering};

use maph_core::{Error, Result, Store};

use crate::identity::coordination;
use crate::stripe::StripeLock;
use crate::stripe_set::StripeSet;

/// Words in the coordinator region of a maph header.
pub const REGION_WORDS: usize = 768;
/// Words per 64-byte cache line.
pub const WORDS_PER_LINE: usize = 16;
/// The most stripes the region holds: one cache line each, after the header line.
pub const MAX_STRIPES: u32 = (REGION_WORDS / WORDS_PER_LINE - 1) as u32;
/// Word 0 of a set-up region: the bytes `FUTX`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FUTX");
/// Layout version in word 1.
pub const VERSION: u32 = 2;

/// Index of the magic word.
pub const WORD_MAGIC: usize = 0;
/// Index of the version word.
pub const WORD_VERSION: usize = 1;
/// Index of the stripe-count word.
pub const WORD_STRIPES: usize = 2;
/// Index of the pid-namespace word.
pub const WORD_PID_NAMESPACE: usize = 3;
/// Index of the repair-pending word.
pub const WORD_REPAIR_PENDING: usize = 4;
/// Index of the takeover counter.
pub const WORD_TAKEOVERS: usize = 5;

/// Index (in 32-bit words) of the lock word of stripe `s`: its low half, the
/// futex word. The whole 64-bit word is [`lock_word64_index`]`(s)`.
pub const fn lock_word_index(stripe: u32) -> usize {
    WORDS_PER_LINE * (1 + stripe as usize)
}
/// Index (in 64-bit words, as `Store::coordinator_word64` counts) of the lock
/// word of stripe `s`.
pub const fn lock_word64_index(stripe: u32) -> usize {
    lock_word_index(stripe) / 2
}

/// The region of one store, attached and checked.
#[derive(Debug)]
pub(crate) struct LockRegion<'r> {
    pub stripes: StripeSet<'r>,
    pub repair_pending: &'r AtomicU32,
    pub takeovers: &'r AtomicU32,
}

/// How many stripes the caller wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Exactly this many (set it up so if the region is fresh).
    Exactly(u32),
    /// Whatever the region records (one if it is fresh).
    AsRecorded,
}

impl<'r> LockRegion<'r> {
    /// Sets the region up if it is fresh, then checks it: magic, version,
    /// stripe count (against `want` and the store's slot count), and that this
    /// process is in the pid namespace the region was set up in.
    ///
    /// Setting up is idempotent and race-free without a lock: the stripe count
    /// and namespace are claimed with compare-and-swap from zero (the first
    /// claim wins, later ones read it), version and magic are constants, and the
    /// magic is stored last with Release so whoever sees it (Acquire) sees the rest.
    pub fn attach(store: &'r Store, want: Want) -> Result<LockRegion<'r>> {
        let word = |i: usize| -> Result<&'r AtomicU32> {
            store.coordinator_word(i)?.ok_or_else(|| coordination(format!("the coordinator region has no word {i}")))
        };
        if let Want::Exactly(k) = want {
            check_stripe_count(store, k)?;
        }
        let my_namespace = pid_namespace();

        let magic = word(WORD_MAGIC)?.load(Ordering::Acquire);
        if magic == 0 {
            let k = match want {
                Want::Exactly(k) => k,
                Want::AsRecorded => 1,
            };
            // AcqRel/Acquire: a losing claim reads the winner's value.
            let _ = word(WORD_STRIPES)?.compare_exchange(0, k, Ordering::AcqRel, Ordering::Acquire);
            let _ = word(WORD_PID_NAMESPACE)?.compare_exchange(0, my_namespace, Ordering::AcqRel, Ordering::Acquire);
            word(WORD_VERSION)?.store(VERSION, Ordering::Relaxed);
            word(WORD_MAGIC)?.store(MAGIC, Ordering::Release);
        } else if magic != MAGIC {
            return Err(Error::Corrupt {
                path: store.path().to_path_buf(),
                detail: format!(
                    "its coordinator region starts with {magic:#010x}, not a futex lock region (magic {MAGIC:#010x}); \
                     was it written by another in-file lock?"
                ),
            });
        }
        // Acquire (the magic load above, or our own stores): the words below are set.
        let version = word(WORD_VERSION)?.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(coordination(format!(
                "the store's futex lock region has layout version {version}, this build knows version {VERSION}; \
                 use a matching maph-lock-futex, or recreate the store and copy its keys over"
            )));
        }
        let recorded = word(WORD_STRIPES)?.load(Ordering::Relaxed);
        check_recorded_stripes(store, recorded)?;
        if let Want::Exactly(k) = want {
            if k != recorded {
                return Err(Error::InvalidConfig(format!(
                    "this store's futex lock has {recorded} stripe(s), not {k}; every process must use the same \
                     count: use FutexCoordinator::striped(store, {recorded}), or FutexCoordinator::attach to adopt it"
                )));
            }
        }
        let namespace = word(WORD_PID_NAMESPACE)?.load(Ordering::Relaxed);
        if namespace != 0 && my_namespace != 0 && namespace != my_namespace {
            return Err(coordination(
                "the store's futex lock was set up by a process in another pid namespace (another container?); \
                 lock words name holders by pid, which would be meaningless here: run all writers in one pid \
                 namespace, or use a file-lock strategy",
            ));
        }

        let stripes = (0..recorded)
            .map(|s| {
                let i = lock_word64_index(s);
                let word = store.coordinator_word64(i)?.ok_or_else(|| coordination(format!("no 64-bit word {i}")))?;
                Ok(StripeLock { word })
            })
            .collect::<Result<Box<[_]>>>()?;
        Ok(LockRegion {
            stripes: StripeSet::new(stripes),
            repair_pending: word(WORD_REPAIR_PENDING)?,
            takeovers: word(WORD_TAKEOVERS)?,
        })
    }
}

fn check_stripe_count(store: &Store, k: u32) -> Result<()> {
    if k == 0 || k > MAX_STRIPES {
        return Err(Error::InvalidConfig(format!(
            "a futex lock has 1 to {MAX_STRIPES} stripes (one cache line each in the header), not {k}"
        )));
    }
    if u64::from(k) > store.slot_count() {
        return Err(Error::InvalidConfig(format!(
            "{k} stripes for a store of {} slots: a stripe covers at least one slot; use at most {} stripes",
            store.slot_count(),
            store.slot_count()
        )));
    }
    Ok(())
}

fn check_recorded_stripes(store: &Store, k: u32) -> Result<()> {
    if k == 0 || k > MAX_STRIPES || u64::from(k) > store.slot_count() {
        return Err(Error::Corrupt {
            path: store.path().to_path_buf(),
            detail: format!("its futex lock region records {k} stripes, which cannot be"),
        });
    }
    Ok(())
}

/// Low 32 bits of the inode of this process's pid namespace, `0` if unknown.
fn pid_namespace() -> u32 {
    // The link reads `pid:[4026531836]`.
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|target| {
            let text = target.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?.to_owned();
            text.parse::<u64>().ok()
        })
        .map_or(0, |inode| inode as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_fill_the_region_one_cache_line_each() {
        assert_eq!(MAX_STRIPES, 47);
        assert_eq!(lock_word_index(0), 16);
        assert_eq!(lock_word64_index(0) * 2, lock_word_index(0));
        assert_eq!(lock_word_index(MAX_STRIPES - 1) / WORDS_PER_LINE, REGION_WORDS / WORDS_PER_LINE - 1);
        assert_eq!(MAGIC.to_le_bytes(), *b"FUTX");
    }

    #[test]
    fn this_process_has_a_pid_namespace() {
        assert_ne!(pid_namespace(), 0);
    }
}
