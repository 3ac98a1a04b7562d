//! # maph-core
//!
//! A key-value store in one memory-mapped file, shared by many processes:
//! lock-free reads in tens of nanoseconds, and writes coordinated by a
//! [`WriteCoordinator`] of your choice.
//!
//! - [`Store`]: create, open, read, and write through a coordinator.
//! - [`WriteCoordinator`]: the trait every strategy implements (this crate has
//!   [`SingleWriter`] and [`Uncoordinated`]; `maph-lock-flock`, `maph-lock-fcntl`,
//!   `maph-coord-redis` and `maph-shard` add the others).
//! - The file format is documented byte by byte in `docs/FORMAT.md` and in [`format`](mod@format).
//!
//! Every strategy coordinates the processes of **one host**: a store on a
//! network or FUSE filesystem is refused for writing (see
//! [`OpenOptions::allow_network_filesystem`]); writers on other hosts go through
//! `maph-server`. Every lock is on the store file itself, so processes that reach
//! it by different paths (symlinks, hard links, bind mounts) coordinate as one.
//!
//! ```
//! use maph_core::{Config, Mode, SingleWriter, Store};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("quick.maph");
//! Store::create(&path, Config::new(10_000))?;
//! let store = Store::open(&path, Mode::ReadWrite)?;
//! let writer = SingleWriter::new(&store)?;
//! store.set(&writer, b"user:1", b"ada")?;
//! assert_eq!(store.get(b"user:1")?, Some(b"ada".to_vec()));
//! # Ok::<(), maph_core::Error>(())
//! ```
//!
//! ## Choosing a strategy
//! | strategy | crate | choose it when |
//! |---|---|---|
//! | [`SingleWriter`] | maph-core | one process can own all writes (a server); cheapest |
//! | flock | maph-lock-flock | several local processes write, whole-store lock |
//! | fcntl | maph-lock-fcntl | as flock, plus byte ranges (parallel writers of different keys) |
//! | Redis token | maph-coord-redis | writers already coordinate through Redis; fencing against stalls |
//! | partitioning | maph-shard | keys split naturally by owner; writers never wait |
//! | [`Uncoordinated`] | maph-core | never in production: the baseline that shows the race |

#![warn(missing_docs)]

mod coordinator;
mod error;
mod fence;
mod files;
mod filesystem;
pub mod format;
mod hash;
mod intent;
mod iter;
mod lock_file;
mod migrate;
mod repair;
mod shared_memory;
mod slot;
mod store;
mod strategy;
mod sync;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
/// Without the `test-hooks` feature the pause points are empty and vanish.
#[cfg(not(feature = "test-hooks"))]
mod test_hooks {
    #[inline(always)]
    pub(crate) fn slot_body_armed() -> bool {
        false
    }
    #[inline(always)]
    pub(crate) fn slot_body_word_stored(_words: u32) {}
    #[inline(always)]
    pub(crate) fn slots_written(_slots: u32) {}
}
mod write;

pub use coordinator::{
    poll_until, Access, Backoff, ContentionCounters, ContentionStats, ExclusiveGuard, LocalGate, LockScope,
    SharedGuard, SingleWriter, SlowWaitHook, Ticket, Uncoordinated, Wait, WriteCoordinator,
};
pub use error::{Error, Result};
pub use files::create_new_atomically;
pub use format::{Layout, StoreUuid};
pub use iter::{Iter, StoreStats};
pub use lock_file::{open_lock_file, reopen_description};
pub use migrate::{migrate_v1, MigrateReport};
pub use repair::{RepairReport, VerifyReport};
pub use store::{Config, Mode, OpenOptions, Store, StoreId, DEFAULT_READ_PATIENCE};
pub use strategy::Strategy;
pub use sync::spin_hint;
pub use write::WriteTxn;
