//! Keys and writes per shard, and how unevenly they are spread: the figures that
//! show when partitioning stops paying (one hot shard means one busy owner
//! while the others idle).

use std::fmt;
use std::path::PathBuf;

use maph_core::{ContentionStats, WriteCoordinator};

use crate::ShardedStore;

/// How unevenly a quantity is spread over the shards.
///
/// ```
/// use maph_shard::Skew;
/// let even = Skew::of(&[100, 100, 100, 100]);
/// assert_eq!((even.max_over_mean, even.coefficient_of_variation), (1.0, 0.0));
/// let hot = Skew::of(&[400, 0, 0, 0]); // one shard does everything
/// assert_eq!(hot.max_over_mean, 4.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Skew {
    /// The largest shard's share relative to an even split: 1.0 is perfectly
    /// even, `n` means one of `n` shards has everything. The busiest owner works
    /// this many times as hard as it would with even keys, so the speed-up of
    /// `n` owners is at most `n / max_over_mean`.
    pub max_over_mean: f64,
    /// Standard deviation over mean (population): 0.0 is perfectly even.
    /// Uniformly hashed keys give about `sqrt(n / total)`.
    pub coefficient_of_variation: f64,
}

impl Skew {
    /// The skew of `values`, one per shard. Nothing at all (an empty store) counts as even.
    pub fn of(values: &[u64]) -> Skew {
        let total: u64 = values.iter().sum();
        if values.is_empty() || total == 0 {
            return Skew { max_over_mean: 1.0, coefficient_of_variation: 0.0 };
        }
        let n = values.len() as f64;
        let mean = total as f64 / n;
        let max = values.iter().copied().max().unwrap_or(0) as f64;
        let variance = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        Skew { max_over_mean: max / mean, coefficient_of_variation: variance.sqrt() / mean }
    }
}

/// The figures of one shard.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardStats {
    /// Shard index.
    pub shard: u32,
    /// Its file.
    pub path: PathBuf,
    /// Live keys.
    pub keys: u64,
    /// Slots (the most keys it holds).
    pub slots: u64,
    /// Keys divided by slots.
    pub load_factor: f64,
    /// Committed writes since the shard was created (its generation counter: a
    /// multi-key [`write`](ShardedStore::write) counts once).
    pub writes: u64,
    /// Whether this handle has claimed it.
    pub claimed: bool,
    /// The live process recorded as its writer (see [`ShardedStore::owner_pid`]).
    pub owner_pid: Option<u32>,
    /// This handle's lock figures for the shard, if it claimed it.
    pub contention: Option<ContentionStats>,
}

/// Keys, writes and skew of every shard; see [`ShardedStore::stats`].
#[derive(Clone, Debug, PartialEq)]
pub struct ShardedStats {
    /// One entry per shard, in order.
    pub shards: Vec<ShardStats>,
    /// Live keys over all shards.
    pub keys: u64,
    /// How unevenly the keys are spread (capacity: the fullest shard fills first).
    pub key_skew: Skew,
    /// How unevenly the writes are spread (work: the busiest owner limits throughput).
    pub write_skew: Skew,
}

impl<C: WriteCoordinator> ShardedStore<C> {
    /// Keys, load and writes of every shard, and their skew. Reads each shard's
    /// header counters; cheap, lock-free, from any handle.
    ///
    /// ```
    /// # use maph_core::Mode;
    /// # use maph_shard::{ShardConfig, ShardedStore};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # ShardedStore::create(dir.path(), &ShardConfig::new(4, 1024))?;
    /// let mut store = ShardedStore::open(dir.path(), Mode::ReadWrite)?;
    /// store.claim_all()?;
    /// for i in 0..400 {
    ///     store.set(format!("key:{i}").as_bytes(), b"v")?;
    /// }
    /// let stats = store.stats();
    /// assert_eq!(stats.keys, 400);
    /// assert!(stats.key_skew.max_over_mean < 1.5, "{stats}"); // hashing spreads distinct keys
    /// println!("{stats}");
    /// # Ok::<(), maph_shard::Error>(())
    /// ```
    pub fn stats(&self) -> ShardedStats {
        let shards: Vec<ShardStats> = self
            .shards_with_writers()
            .map(|(shard, path, store, writer)| ShardStats {
                shard,
                path: path.to_path_buf(),
                keys: store.len(),
                slots: store.slot_count(),
                load_factor: store.load_factor(),
                writes: store.generation(),
                claimed: writer.is_some(),
                owner_pid: self.owner_pid(shard),
                contention: writer.map(|w| w.contention()),
            })
            .collect();
        let keys: Vec<u64> = shards.iter().map(|s| s.keys).collect();
        let writes: Vec<u64> = shards.iter().map(|s| s.writes).collect();
        ShardedStats { keys: keys.iter().sum(), key_skew: Skew::of(&keys), write_skew: Skew::of(&writes), shards }
    }
}

impl fmt::Display for ShardedStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>5} {:>10} {:>6} {:>10} {:>8}", "shard", "keys", "load", "writes", "owner")?;
        for s in &self.shards {
            let owner = match (s.claimed, s.owner_pid) {
                (true, _) => "this".to_string(),
                (false, Some(pid)) => pid.to_string(),
                (false, None) => "-".to_string(),
            };
            writeln!(f, "{:>5} {:>10} {:>6.3} {:>10} {:>8}", s.shard, s.keys, s.load_factor, s.writes, owner)?;
        }
        write!(
            f,
            "{} keys; key skew max/mean {:.2}, cv {:.3}; write skew max/mean {:.2}, cv {:.3}",
            self.keys,
            self.key_skew.max_over_mean,
            self.key_skew.coefficient_of_variation,
            self.write_skew.max_over_mean,
            self.write_skew.coefficient_of_variation
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_figures() {
        let s = Skew::of(&[1, 2, 3, 6]);
        assert_eq!(s.max_over_mean, 2.0);
        // mean 3, deviations -2 -1 0 3, variance 14/4.
        assert!((s.coefficient_of_variation - (3.5f64).sqrt() / 3.0).abs() < 1e-12);
        assert_eq!(Skew::of(&[]), Skew::of(&[0, 0]));
    }
}
