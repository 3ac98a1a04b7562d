//! How a sharded store is created: shard count, routing seed, and the slot
//! configuration every shard shares.

use std::path::Path;

use maph_core::{Layout, Strategy};

use crate::manifest::manifest_path;
use crate::{Error, Result};

/// Most shards a store may have. Every process maps every shard, and each is a
/// file with its own lease; thousands of shards mean thousands of mappings and
/// descriptors per process for no gain on one machine.
pub const MAX_SHARDS: u32 = 4096;

/// How a sharded store is created; everything here is recorded in its manifest.
///
/// ```
/// use maph_core::Strategy;
/// use maph_shard::ShardConfig;
/// let config = ShardConfig::new(4, 100_000).slot_size(256).max_probes(16).routing_seed(42);
/// assert_eq!((config.shard_count, config.slots_per_shard), (4, 100_000));
/// assert_eq!(config.strategy, Strategy::SINGLE_WRITER); // one owner per shard
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    /// Number of shards (files), 1 ..= [`MAX_SHARDS`].
    pub shard_count: u32,
    /// Slots in each shard (the most keys one shard holds).
    pub slots_per_shard: u64,
    /// Bytes per slot, a multiple of 64 (maph-core's default 512).
    pub slot_size: u32,
    /// Probe window of each shard (maph-core's default: 64, or the slot count if smaller).
    pub max_probes: u32,
    /// Seed of the routing hash; `None` picks a random one at create.
    pub routing_seed: Option<u64>,
    /// Coordination strategy of every shard: [`Strategy::SINGLE_WRITER`] (one
    /// owner process per shard) by default, or the tag of any other coordinator
    /// ("partition, and lock within a partition").
    pub strategy: Strategy,
}

impl ShardConfig {
    /// `shard_count` shards of `slots_per_shard` slots each, everything else at its default.
    pub fn new(shard_count: u32, slots_per_shard: u64) -> ShardConfig {
        let defaults = maph_core::Config::new(slots_per_shard);
        ShardConfig {
            shard_count,
            slots_per_shard,
            slot_size: defaults.slot_size,
            max_probes: defaults.max_probes,
            routing_seed: None,
            strategy: Strategy::SINGLE_WRITER,
        }
    }

    /// Sets the slot size of every shard.
    pub fn slot_size(mut self, bytes: u32) -> ShardConfig {
        self.slot_size = bytes;
        self
    }

    /// Sets the probe window of every shard.
    pub fn max_probes(mut self, probes: u32) -> ShardConfig {
        self.max_probes = probes;
        self
    }

    /// Fixes the routing seed (for layouts reproducible across machines).
    pub fn routing_seed(mut self, seed: u64) -> ShardConfig {
        self.routing_seed = Some(seed);
        self
    }

    /// Sets the coordination strategy of every shard.
    pub fn strategy(mut self, strategy: Strategy) -> ShardConfig {
        self.strategy = strategy;
        self
    }

    /// Checks every value without touching the file system; `dir` is only named in errors.
    pub(crate) fn validate(&self, dir: &Path) -> Result<()> {
        if self.shard_count == 0 {
            return Err(Error::ZeroShards { path: manifest_path(dir) });
        }
        if self.shard_count > MAX_SHARDS {
            return Err(Error::InvalidConfig(format!(
                "{} shards requested, at most {MAX_SHARDS} are supported",
                self.shard_count
            )));
        }
        self.shard_layout(0).validate().map_err(|e| Error::InvalidConfig(format!("every shard: {e}")))
    }

    /// The layout of a shard of this configuration (seed aside).
    pub(crate) fn shard_layout(&self, hash_seed: u64) -> Layout {
        Layout {
            slot_count: self.slots_per_shard,
            slot_size: self.slot_size,
            max_probes: self.max_probes,
            hash_seed,
            strategy: self.strategy,
        }
    }
}
