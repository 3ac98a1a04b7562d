//! # maph-shard
//!
//! Hash partitioning of a maph store across files: strategy 4 of the reference
//! design, "different processes own different keys". A [`ShardedStore`] is a
//! directory of `N` maph stores (shards) and a manifest. Every process routes a
//! key to the same shard; each shard is written only by the process that
//! claimed it, so writers of different shards never wait for one another, and
//! every process reads every shard lock-free.
//!
//! ```
//! use maph_core::Mode;
//! use maph_shard::{ShardConfig, ShardedStore};
//! # let dir = tempfile::tempdir().unwrap();
//! # let dir = dir.path();
//! ShardedStore::create(dir, &ShardConfig::new(4, 100_000))?;   // 4 shards of 100 000 slots
//!
//! // Writer process k of 4 claims shard k and writes the keys that route there.
//! let mut writer = ShardedStore::open(dir, Mode::ReadWrite)?;
//! writer.claim(2)?;
//! for i in 0..100 {
//!     let key = format!("user:{i}");
//!     if writer.shard_for(key.as_bytes()) == 2 {
//!         writer.set(key.as_bytes(), b"data")?;
//!     }
//! }
//!
//! // Any process reads any key.
//! let reader = ShardedStore::open(dir, Mode::ReadOnly)?;
//! let key = (0..100).map(|i| format!("user:{i}")).find(|k| reader.shard_for(k.as_bytes()) == 2).unwrap();
//! assert_eq!(reader.get(key.as_bytes())?, Some(b"data".to_vec()));
//! # Ok::<(), maph_shard::Error>(())
//! ```
//!
//! ## When partitioning is the right choice
//!
//! - **Writes split naturally by key across processes**: ingest workers each
//!   fed one slice of the key space, one process per tenant or per queue
//!   partition. Each owner writes at single-writer cost (an uncontended
//!   in-process lock word, no system call), and `P` owners write in parallel:
//!   no process ever waits for another, which a file lock cannot offer.
//! - **Writers on one machine that must not block one another**, where one
//!   single-writer process would be the bottleneck.
//!
//! ## When it is not
//!
//! - **Skewed keys.** Hashing spreads *distinct* keys evenly, not *hot* ones:
//!   every write of one popular key goes to one shard, so its owner does the
//!   work while the others idle, and `P` owners are no faster than one.
//!   [`ShardedStore::stats`] reports the key and write skew (max/mean and
//!   coefficient of variation); a write skew far above 1 means partitioning has
//!   stopped paying (speed-up is at most `N / max_over_mean`).
//! - **Atomic writes across keys of different shards.** Impossible: each shard
//!   has its own writer and nothing locks two of them. A multi-key
//!   [`ShardedStore::write`] holds one shard and refuses keys of any other
//!   ([`Error::WrongShard`]). If several keys must change together, they need
//!   one writer (use a single store) or a lock that spans them.
//! - **Writers that cannot know their keys' owner.** A write to a shard this
//!   process has not claimed is refused with [`Error::NotOwner`] naming the
//!   owner's pid; forwarding the write there is the application's job. If any
//!   process may need to write any key, lock instead (or lock within each
//!   partition, below).
//! - **Availability of a dead owner's keys.** Until someone claims a dead
//!   owner's shard, its keys cannot be written (they stay readable). A
//!   [`maph_core::SingleWriter`] lease is a `flock` that the kernel releases when
//!   the process dies, even by SIGKILL, so another process (a supervisor, or the
//!   restarted worker) can [`claim`](ShardedStore::claim) the shard at once, and
//!   any slot the dead owner left half-written is repaired by that claim. But
//!   something must do it: there is no automatic failover.
//! - **Changing the shard count.** Resharding is offline ([`reshard`]): stop
//!   the writers, copy into a new directory, switch to it.
//!
//! ## Partition, and lock within a partition
//!
//! `ShardedStore<C>` takes any [`maph_core::WriteCoordinator`] per shard. With
//! the default [`maph_core::SingleWriter`] a claim is exclusive (one owner per
//! shard). With a lock coordinator (flock, fcntl, Redis, …) every process may
//! claim every shard, and writers take turns within one shard only, so writers
//! of different shards still never meet. The coordinator's constructor is the
//! one line that changes:
//!
//! ```
//! use std::path::Path;
//! use maph_core::{Mode, Store, WriteCoordinator};
//! use maph_shard::ShardedStore;
//!
//! /// Opens a store whose shards are each guarded by `lock` (for example a flock
//! /// or fcntl coordinator's `new`), and claims all of them: with a lock per
//! /// shard, every process may.
//! fn open_locked<C: WriteCoordinator + 'static>(
//!     dir: &Path,
//!     lock: fn(&Store) -> maph_core::Result<C>,
//! ) -> maph_shard::Result<ShardedStore<C>> {
//!     let mut store = ShardedStore::open_with(dir, Mode::ReadWrite, lock)?;
//!     store.claim_all()?;
//!     Ok(store)
//! }
//! ```
//!
//! Create such a store with [`ShardConfig::strategy`] set to that coordinator's
//! tag: each shard records its strategy, and maph-core refuses writers of another.
//!
//! ## Routing
//!
//! A key's shard is jump consistent hash (Lamping & Veach) of the key's xxh3-64
//! hash seeded with the manifest's routing seed: see [`Router`] and
//! [`jump_hash`] for why. Growing from `n` to `m` shards moves only the fraction
//! `1 − n/m` of the keys, all into the new shards; `hash % n` would move almost
//! all of them.
//!
//! ## The directory
//!
//! ```text
//! dir/shards.manifest         routing and slot configuration, checksummed (see `manifest`)
//! dir/shard-0000.maph         shard 0: a maph store (docs/FORMAT.md)
//! dir/shard-0000.maph.lock    its lease file (made by the first claim; holds the owner's pid)
//! …
//! ```
//!
//! The manifest format is specified in the [`manifest`] module. Opening checks
//! the manifest (missing, damaged, another version, zero shards, or not what the
//! caller expected) and every shard file (missing, not a store, another store's
//! shard, another index's shard), each with an error naming the file. Nothing is
//! written by a failed open or create.

#![warn(missing_docs)]

mod config;
mod error;
pub mod manifest;
mod owner;
mod reshard;
mod routing;
mod stats;
mod store;
mod txn;

pub use config::{ShardConfig, MAX_SHARDS};
pub use error::{Error, Result};
pub use manifest::{shard_path, Manifest, MANIFEST_FILE};
pub use reshard::{reshard, Reshard, ReshardReport};
pub use routing::{jump_hash, Router};
pub use stats::{ShardStats, ShardedStats, Skew};
pub use store::{CoordinatorFactory, ShardedStore};
pub use txn::ShardTxn;

/// The README's example, compiled and run as a doc test so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
