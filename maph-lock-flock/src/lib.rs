//! # maph-lock-flock
//!
//! [`FlockCoordinator`]: writers of a [maph](maph_core) store, in any number of
//! processes and threads on one machine, take turns through an exclusive
//! `flock(2)` on the store file itself (every path that reaches it is one lock). This is
//! strategy 2 of the reference design, with its pitfalls fixed: the lock is
//! released by RAII guards (a `?` or a panic cannot leak it), threads of one
//! process are kept apart too, and deadlines poll with backoff instead of
//! arming `alarm()`.
//!
//! ```
//! use maph_core::{Config, Mode, Store};
//! use maph_lock_flock::FlockCoordinator;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("users.maph");
//! // The strategy is recorded at create: a writer with another one is refused.
//! Store::create(&path, Config::new(10_000).strategy(FlockCoordinator::STRATEGY))?;
//!
//! // In every writing process:
//! let store = Store::open(&path, Mode::ReadWrite)?;
//! let lock = FlockCoordinator::new(&store)?;
//! store.set(&lock, b"user:1", b"ada")?;
//! assert_eq!(store.get(b"user:1")?.as_deref(), Some(&b"ada"[..]));
//! # Ok::<(), maph_core::Error>(())
//! ```
//!
//! See [`FlockCoordinator`] for when to choose it, what it costs and how it fails.

#![warn(missing_docs)]

mod coordinator;
mod kernel;

pub use coordinator::FlockCoordinator;

// The README's example, compiled and run as a doc test so it cannot go stale.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
