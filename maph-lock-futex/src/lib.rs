//! # maph-lock-futex
//!
//! A write lock that lives inside the maph store file, like LMDB's writer mutex
//! in its shared memory: taking it uncontended is one compare-and-swap on the
//! mapped header, releasing it one swap, no system call. A contended waiter
//! sleeps on a Linux futex on the shared mapping until the holder wakes it. A
//! holder that dies, even by `SIGKILL`, is noticed and its lock taken over.
//! In striped mode the store's slots are split into `K` ranges, each with its
//! own lock word, so processes writing keys in different ranges run in parallel.
//!
//! ```
//! use std::sync::Arc;
//! use maph_core::{Config, Mode, Store};
//! use maph_lock_futex::FutexCoordinator;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("visits.maph");
//! // The strategy is recorded at create: writers with another lock are refused.
//! Store::create(&path, Config::new(4096).strategy(FutexCoordinator::STRATEGY))?;
//!
//! // In every writing process (here, one):
//! let store = Arc::new(Store::open(&path, Mode::ReadWrite)?);
//! let lock = FutexCoordinator::striped(store.clone(), 16)?;
//! store.update(&lock, b"visits", |old| {
//!     let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
//!     Some((n + 1).to_string())
//! })?;
//! assert_eq!(store.get(b"visits")?.as_deref(), Some(&b"1"[..]));
//! # Ok::<(), maph_core::Error>(())
//! ```
//!
//! ## Where the lock lives
//!
//! In the store header's coordinator region (bytes 1024..4096), laid out as
//! the [`region`] module documents: a header line (magic `FUTX`, version,
//! stripe count, pid namespace, repair-pending flag, takeover counter), then one
//! 64-byte cache line per stripe holding its 64-bit lock word. The first coordinator to attach to a fresh store fixes the
//! stripe count; every later one must ask for the same count (or
//! [`attach`](FutexCoordinator::attach) to adopt it).
//!
//! ## The lock word
//!
//! One 64-bit atomic word per stripe:
//!
//! | bits | meaning |
//! |---|---|
//! | 0..22 | pid of the holding process; `0` = free ([`PID_MASK`]) |
//! | 22 | waiters: someone may sleep on the word, the releaser must wake one ([`WAITERS`]) |
//! | 23..32 | epoch: advanced by every takeover, kept by release ([`EPOCH_MASK`]) |
//! | 32..64 | the holder's start time: low 32 bits of `/proc/<pid>/stat` field 22; `0` when free |
//!
//! The low half is the futex word. The protocol is Drepper's three-state futex
//! mutex ("Futexes Are Tricky", mutex 3) with a pid in place of the "locked"
//! constant:
//!
//! - **Acquire**: if the pid bits are zero, CAS `free → (start, free | pid)`
//!   (Acquire on success, so the previous holder's writes are visible).
//!   Uncontended, that is the whole cost.
//! - **Wait**: spin ~100 pauses; then set the waiters bit (CAS, Relaxed: it
//!   publishes nothing) and `FUTEX_WAIT` on the low half expecting exactly the
//!   value with that bit, for at most the time left to the deadline and at most
//!   [`DETECTION_PERIOD`]. The kernel compares and queues atomically, so a
//!   release between our load and our sleep makes the wait return at once: no
//!   wake is lost. A waiter that wins the word after sleeping takes it *with*
//!   the waiters bit, since others may still sleep.
//! - **Release**: swap the word to `epoch` (free, same epoch, nobody's start
//!   time) with Release, so everything written under the lock happens-before
//!   the next holder's Acquire CAS; if the old value had the waiters bit,
//!   `FUTEX_WAKE` one sleeper. Uncontended: one swap, no system call.
//!
//! The orderings are argued next to each atomic operation in `stripe.rs`, and
//! the protocol (acquire, wait, release, takeover) is model-checked with loom
//! on the same code: `RUSTFLAGS="--cfg loom" cargo test -p maph-lock-futex
//! --lib --release loom` (see `docs/RELIABILITY.md`).
//!
//! `FUTEX_PRIVATE_FLAG` is *not* used: the word is in a `MAP_SHARED` file
//! mapping that other processes map at other addresses, so the kernel must key
//! waiters by file and offset.
//!
//! Threads are kept apart by the same CAS as processes: only one thread
//! anywhere turns a free word into a held one. The pid only tells waiters
//! whether the holder lives, and a process never judges itself dead, so no
//! in-process lock is needed in front of the word. Shared access is granted as
//! exclusive access: maph readers never need the lock.
//!
//! ## Dead holders
//!
//! A holder's pid and start time enter the word in one CAS, so a held word
//! always says who holds it. A waiter that has waited a full
//! [`DETECTION_PERIOD`] without getting the word checks the holder
//! ([`identity::holder_is_dead`]): it is dead if `/proc/<pid>` is gone
//! (confirmed by `kill(pid, 0)` = `ESRCH`), if it is a zombie (killed, not yet
//! reaped: `kill` would still call it alive), or if the process now bearing the
//! pid started at another time than the word records: the pid was reused.
//! (Version 1 of the layout wrote the start time beside the word after taking
//! it, which left a few instructions in which a holder killed there could not
//! be told from a reused pid; one 64-bit word closes that window.)
//!
//! The takeover is a CAS from the exact value judged dead to
//! `(start, pid | waiters | epoch + 1)`, the taker's own start time and pid:
//! of several waiters judging the same value dead,
//! exactly one succeeds, and the new epoch makes the word differ from the dead
//! one even if the taker has the dead holder's pid. The taker then sets the
//! region's *repair-pending* flag.
//!
//! **Detection bound**: a holder killed while holding blocks the others for at
//! most [`DETECTION_PERIOD`] (10 ms) plus scheduling delay and one read of
//! `/proc/<pid>/stat`, then for one repair pass.
//!
//! **Repair**: any acquisition that finds repair pending (the taker itself, or
//! whoever takes a stripe after it) releases its stripes, takes all of them in
//! order, runs maph-core's [`Store::repair`](maph_core::Store::repair) — which,
//! now that no other writer can be inside, completes every slot left mid-write
//! whose checksum matches and clears every torn one to a tombstone — clears the
//! flag and starts over. So a dead writer's half-written slot is mended before
//! anyone else writes, and readers stop seeing it busy within the detection
//! bound plus one pass over the store (the same pass `SingleWriter::new` makes
//! at open). Independently, maph-core's commit repairs any odd slot in the scope
//! a write holds before using it, because this coordinator
//! [`excludes_writers`](maph_core::WriteCoordinator::excludes_writers).
//!
//! A `try_lock_*` (no waiting) never takes over: only acquisitions that may
//! wait check liveness.
//!
//! ## Limits
//!
//! - Linux only (futex, `/proc`). All writers must share one pid namespace:
//!   the region records the namespace of the process that set it up and refuses
//!   others.
//! - Not fair: a releasing process may take the word again before a woken
//!   waiter runs (as with any barging mutex); waits are bounded only by the
//!   holders' behaviour and the caller's deadline.
//! - Do not carry a coordinator across `fork`; make one in the child.
//! - Do not nest acquisitions in one thread (the lock is not reentrant, and a
//!   repair pass needs every stripe).

#![warn(missing_docs)]
// Under loom only the models (tests) use the lock word's code.
#![cfg_attr(loom, allow(dead_code))]

// Under loom only the lock word's protocol is compiled (and model-checked):
// the coordinator and region need a real mapped store.
#[cfg(not(loom))]
mod coordinator;
mod futex;
pub mod identity;
mod patience;
#[cfg(not(loom))]
pub mod region;
mod stripe;
mod stripe_set;
mod sync;

#[cfg(not(loom))]
pub use coordinator::{FutexCoordinator, RecoveryStats, DETECTION_PERIOD};
pub use identity::{ProcessIdentity, ProcessState};
pub use stripe::{start_of, state_of, EPOCH_MASK, PID_MASK, WAITERS};

/// The strategy tag (also [`FutexCoordinator::STRATEGY`]).
const STRATEGY: maph_core::Strategy = maph_core::Strategy::new("futex");

/// The README's example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
