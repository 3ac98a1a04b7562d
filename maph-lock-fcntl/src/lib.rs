//! # maph-lock-fcntl
//!
//! [`FcntlCoordinator`]: writers of a [maph](maph_core) store take turns through
//! POSIX record locks (`fcntl(2)`) on the store file itself (every path that
//! reaches it is one lock), on the whole file or, in [`Granularity::ByteRange`] mode,
//! only on the bytes standing for a key's probe window, so writers of different
//! keys proceed in parallel. It uses Linux open-file-description locks, which
//! avoid the two classic fcntl traps (threads of one process not excluded, and
//! any `close()` of the file dropping the process's locks), and falls back to
//! classic locks only where those are missing ([`LockKind`]).
//!
//! ```
//! use maph_core::{Config, Mode, Store};
//! use maph_lock_fcntl::FcntlCoordinator;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("users.maph");
//! // The strategy is recorded at create: a writer with another one is refused.
//! Store::create(&path, Config::new(10_000).strategy(FcntlCoordinator::STRATEGY))?;
//!
//! // In every writing process; whole-file and byte-range writers may be mixed.
//! let store = Store::open(&path, Mode::ReadWrite)?;
//! let lock = FcntlCoordinator::byte_range(&store)?;
//! store.set(&lock, b"user:1", b"ada")?;
//! assert_eq!(store.get(b"user:1")?.as_deref(), Some(&b"ada"[..]));
//! # Ok::<(), maph_core::Error>(())
//! ```
//!
//! See [`FcntlCoordinator`] for when to choose it, what it costs and how it fails.

#![warn(missing_docs)]

mod classic;
mod coordinator;
mod descriptions;
mod options;
mod record_lock;

pub use coordinator::{classic_lock_path, FcntlCoordinator};
pub use options::{FcntlOptions, Granularity, LockKind};

// The README's example, compiled and run as a doc test so it cannot go stale.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
