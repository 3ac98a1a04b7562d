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
//! 64-byte cache line per stripe holding its 64-bit lock word. The first
//! coordinator to attach to a fresh store fixes the stripe count; every later
//! one must ask for the same count (or [`attach`](FutexCoordinator::attach) to
//! adopt it).
//!
//! Beside the words, each coordinator holds a byte-range lock on the store file
//! itself, far past its end, that marks its process as *attached* for as long
//! as the process can act on the mapping (see [Dead holders](#dead-holders);
//! the offsets are in `docs/FORMAT.md`).
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
//! always says who holds it. Every coordinator opens the store file once more
//! and holds a shared open-file-description lock (`F_OFD_SETLK`) on the byte
//! `2⁶² + (pid << 32 | start tag)`, named by its process. The kernel drops that
//! lock when the process dies (before it is a zombie) and when it `exec`s (the
//! descriptor is close-on-exec), and keeps it while any of its threads runs,
//! even after the main thread has exited. A waiter that has waited a full
//! [`DETECTION_PERIOD`] without getting the word asks the kernel whether
//! anyone holds the holder's byte (`F_OFD_GETLK`, one system call): nobody
//! means the holder can never release, and it is taken over. This works in
//! any pid namespace, for any user who may open the store, and without `/proc`.
//!
//! A child forked without `exec` shares its parent's descriptor, and so keeps
//! the byte locked after its parent dies. So where `/proc` shows our own pid
//! namespace, a holder whose pid `/proc/<pid>/stat` no longer shows (confirmed
//! by `kill(pid, 0)` = `ESRCH`), or shows with another start time (the pid was
//! reused), is dead whatever its byte says. A `/proc` that cannot be read costs
//! only this refinement: dead holders are still found by their byte. If the
//! kernel cannot answer at all, the acquisition fails with
//! [`Error::Coordination`](maph_core::Error::Coordination) saying why, rather
//! than wait on a guess.
//!
//! A coordinator that *attaches* also frees, at once, every word whose holder
//! is dead (the same takeover, followed by a release), so a process started
//! after a crash does not wait a detection period for it. A word naming the
//! attaching process itself is freed when no other coordinator of the process
//! holds its byte: it was left by the program the process ran before an `exec`.
//!
//! The takeover is a CAS from the exact value judged dead to
//! `(start, pid | waiters | epoch + 1)`, the taker's own start time and pid:
//! of several waiters judging the same value dead,
//! exactly one succeeds, and the new epoch makes the word differ from the dead
//! one even if the taker has the dead holder's pid. The taker then sets the
//! region's *repair-pending* flag.
//!
//! **Detection bound**: a holder killed while holding blocks the others for at
//! most [`DETECTION_PERIOD`] (10 ms) plus scheduling delay and one
//! `F_OFD_GETLK`, then for one repair pass.
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
//! ## Pid namespaces (containers)
//!
//! Pids mean something only within one pid namespace, so a store takes writers
//! of one namespace at a time. The region records the namespace of the
//! processes attached; a process of another namespace may attach only when no
//! coordinator of any process is attached (it then records its own namespace,
//! and the dead holders' words are freed as above). So a container restarted
//! with a new pid namespace writes again as soon as its old processes are
//! gone, and a writer of a second live namespace (another container sharing
//! the store, or the old container still running) is refused with an
//! [`Error::Coordination`](maph_core::Error::Coordination) that says so.
//! Tests: `tests/namespaces.rs`, with real namespaces made by
//! `unshare --pid --fork`.
//!
//! ## Limits
//!
//! - Linux only (futex, open-file-description locks since Linux 3.15, `/proc`
//!   when attaching). Writers of one store must share one pid namespace at a
//!   time (see above); the store must be on a filesystem with byte-range locks.
//! - Not fair: a releasing process may take the word again before a woken
//!   waiter runs (as with any barging mutex); waits are bounded only by the
//!   holders' behaviour and the caller's deadline.
//! - Do not carry a coordinator across `fork`; make one in the child (a forked
//!   child that keeps running also keeps its parent marked attached, see above).
//! - Do not nest acquisitions in one thread (the lock is not reentrant, and a
//!   repair pass needs every stripe).

#![warn(missing_docs)]
// Under loom only the models (tests) use the lock word's code.
#![cfg_attr(loom, allow(dead_code))]

// Under loom only the lock word's protocol is compiled (and model-checked):
// the coordinator and region need a real mapped store.
#[cfg(not(loom))]
mod attachment;
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
