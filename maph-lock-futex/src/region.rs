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
//! | 1 | version | layout version, `3` |
//! | 2 | stripes | number of stripes `K`, `1..=47`, fixed by the first coordinator to attach |
//! | 3 | pid namespace | low 32 bits of the inode of `/proc/self/ns/pid` of the processes attached now: pids in lock words are pids of this namespace. Changed only by a process attaching while no other is attached |
//! | 4 | repair pending | non-zero from a takeover until the whole-store repair that follows it |
//! | 5 | takeovers | number of times a waiter took a stripe over from a dead holder (wrapping) |
//! | 6..16 | reserved | zero |
//! | `16·(1+s)`, `16·(1+s) + 1` | lock word of stripe `s` | one 64-bit word: see [`lock word`](crate#the-lock-word) |
//! | `16·(1+s) + 2 .. 16·(2+s)` | reserved | zero |
//!
//! Besides these words, every attached coordinator holds a byte-range lock on
//! the store file far past its end (see the `attachment` module and
//! `docs/FORMAT.md`).
//!
//! Version 1 of this layout kept the holder's start time in a separate record
//! beside a 32-bit lock word; version 2 keeps both in one 64-bit word, so a
//! holder is never named without being described. Version 3 has the same
//! words, and adds the attachment locks, by which waiters tell live holders
//! from dead ones (version 2 asked `/proc` alone) and a new pid namespace
//! takes the region over once no process of the old one is attached (version
//! 2 refused every namespace but the first one forever). Processes of version
//! 2 do not mark themselves attached, so they and this version must not share
//! a store: a region of another version is refused with an error that says
//! what to do.

use std::sync::atomic::{AtomicU32, Ordering};

use maph_core::{Error, Result, Store};

use crate::attachment::{Attachment, Gate};
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
pub const VERSION: u32 = 3;

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
    /// stripe count (against `want` and the store's slot count), and the pid
    /// namespace: the region is this process's namespace's if it records it,
    /// or if no other coordinator is attached (then the namespace recorded is
    /// one whose processes are all gone, and it is replaced by ours). Another
    /// namespace with processes attached is refused.
    ///
    /// Called with the attachment gate held (`_gate`), so no other coordinator
    /// attaches meanwhile. Setting up is idempotent all the same: the stripe
    /// count is claimed with compare-and-swap from zero (the first claim wins,
    /// later ones read it), version and magic are constants, and the magic is
    /// stored last with Release so whoever sees it (Acquire) sees the rest.
    pub fn attach(store: &'r Store, want: Want, attachment: &Attachment, _gate: &Gate<'_>) -> Result<LockRegion<'r>> {
        let word = |i: usize| -> Result<&'r AtomicU32> {
            store.coordinator_word(i)?.ok_or_else(|| coordination(format!("the coordinator region has no word {i}")))
        };
        if let Want::Exactly(k) = want {
            check_stripe_count(store, k)?;
        }
        let my_namespace = pid_namespace()?;

        let magic = word(WORD_MAGIC)?.load(Ordering::Acquire);
        if magic == 0 {
            let k = match want {
                Want::Exactly(k) => k,
                Want::AsRecorded => 1,
            };
            // AcqRel/Acquire: a losing claim reads the winner's value.
            let _ = word(WORD_STRIPES)?.compare_exchange(0, k, Ordering::AcqRel, Ordering::Acquire);
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
            let why = if version < VERSION {
                " (written by an older maph-lock-futex, whose processes do not mark themselves attached, so this \
                 build could not tell them from dead ones)"
            } else {
                ""
            };
            return Err(coordination(format!(
                "the store's futex lock region has layout version {version}, this build knows version {VERSION}{why}; \
                 use a matching maph-lock-futex, or stop every writer, recreate the store and copy its keys over"
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
        // Relaxed: written only under the gate, which we hold (the gate's lock
        // and unlock order it for us).
        let namespace = word(WORD_PID_NAMESPACE)?;
        let their_namespace = namespace.load(Ordering::Relaxed);
        if their_namespace != my_namespace {
            if attachment.others_attached()? {
                return Err(coordination(format!(
                    "the store's futex lock is in use by processes of another pid namespace (inode {their_namespace}, this \
                     process is in {my_namespace}): another container, or one from before a restart that is still \
                     running. Lock words name holders by pid, which means nothing across namespaces, so one store \
                     takes writers of one pid namespace at a time: stop the other namespace's writers (this one may \
                     then attach), run all writers in one pid namespace, or use a file-lock strategy"
                )));
            }
            // No process is attached: the namespace recorded has no writer left
            // (a container that restarted), and the words its processes held
            // are freed by the caller.
            namespace.store(my_namespace, Ordering::Relaxed);
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

/// Low 32 bits of the inode of this process's pid namespace.
pub(crate) fn pid_namespace() -> Result<u32> {
    // The link reads `pid:[4026531836]`.
    let link = std::fs::read_link("/proc/self/ns/pid").map_err(|e| {
        Error::io(
            "maph-lock-futex reads /proc/self/ns/pid to learn its pid namespace (lock words name holders by pid, \
             which only means something within one namespace); mount /proc",
            e,
        )
    })?;
    link.to_str()
        .and_then(|text| text.strip_prefix("pid:[")?.strip_suffix(']')?.parse::<u64>().ok())
        .map(|inode| inode as u32)
        .ok_or_else(|| coordination(format!("/proc/self/ns/pid reads {link:?}, not pid:[<inode>]; is /proc a procfs?")))
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
        assert_ne!(pid_namespace().unwrap(), 0);
    }
}
