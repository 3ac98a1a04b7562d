//! Which shard a key belongs to: xxh3-64 of the key with the manifest's seed,
//! then jump consistent hash onto `0..shard_count`.
//!
//! # Why jump consistent hash
//!
//! Resharding copies every key whose shard changes, so the routing function
//! should change as few as possible when the shard count does. Jump consistent
//! hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm",
//! 2014) moves exactly the keys that the new shards take over: going from `n` to
//! `m > n` shards, a key either stays where it was or moves to one of the new
//! shards `n..m`, so a fraction `1 − n/m` of the keys moves (3/7 ≈ 43 % for
//! 4 → 7). Routing by `hash % n` would move most of them instead (6/7 for
//! 4 → 7; the unit tests measure both). It needs no table (a ring with virtual
//! nodes does), spreads keys
//! evenly, and costs about `ln n` multiply-adds. Its one restriction, that
//! shards are numbered `0..n` and only the last ones can be removed, fits a
//! layout whose shard files are numbered anyway.
//!
//! # Why a routing hash of its own
//!
//! Each shard is a maph store that hashes keys again (with its own seed) to find
//! their slots. If the shard and the slot came from the same hash bits, the keys
//! of one shard would share bits and cluster in some slots. The routing hash uses
//! the manifest's `routing_seed`, independent of every shard's store seed.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The routing algorithm this build implements, as named in the manifest.
pub const ROUTING_XXH3_JUMP: &str = "xxh3-64+jump";

/// Jump consistent hash: maps `key` onto `0..buckets`. `buckets` must be at least 1
/// (0 buckets is treated as 1).
///
/// This is the algorithm of Lamping & Veach (2014), bit for bit, so its known
/// answers (for example key 256 into 1024 buckets is bucket 520) hold here too.
///
/// ```
/// use maph_shard::jump_hash;
/// assert_eq!(jump_hash(256, 1024), 520);
/// // Growing the bucket count only ever moves a key into a new bucket.
/// for key in 0..1000u64 {
///     let before = jump_hash(key, 4);
///     let after = jump_hash(key, 7);
///     assert!(after == before || after >= 4);
/// }
/// ```
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets {
        b = j;
        // The paper's 64-bit linear congruential step; wrapping is intended.
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // j = (b + 1) * 2^31 / ((key >> 33) + 1), in floating point as in the paper.
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // b is in 0..buckets, which fits u32 because buckets did.
    b as u32
}

/// Routes keys to shards exactly as every other process using the same manifest does.
///
/// ```
/// use maph_shard::Router;
/// let router = Router::new(4, 0x5eed);
/// let shard = router.route(b"user:1");
/// assert!(shard < 4);
/// assert_eq!(shard, Router::new(4, 0x5eed).route(b"user:1")); // stable
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Router {
    shard_count: u32,
    seed: u64,
}

impl Router {
    /// A router onto `shard_count` shards (at least 1) with the routing hash seeded by `seed`.
    pub fn new(shard_count: u32, seed: u64) -> Router {
        Router { shard_count: shard_count.max(1), seed }
    }

    /// The shard `key` belongs to.
    #[inline]
    pub fn route(&self, key: &[u8]) -> u32 {
        jump_hash(xxh3_64_with_seed(key, self.seed), self.shard_count)
    }

    /// Number of shards routed onto.
    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// Seed of the routing hash.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_of_the_reference_algorithm() {
        // Vectors published with the Go, Python and Elixir ports of the paper's
        // C++ code; any deviation would route keys differently from the paper.
        let vectors: [(u64, u32, u32); 11] = [
            (1, 1, 0),
            (42, 57, 43),
            (0xDEAD_10CC, 1, 0),
            (0xDEAD_10CC, 666, 361),
            (256, 1024, 520),
            (1, 128, 55),
            (129, 128, 120),
            (u64::MAX, 128, 92),
            (0, 2, 0),
            (4, 2, 1),
            (7, 2, 0),
        ];
        for (key, buckets, expected) in vectors {
            assert_eq!(jump_hash(key, buckets), expected, "jump_hash({key:#x}, {buckets})");
        }
    }

    #[test]
    fn routing_hash_is_stable_across_builds() {
        // xxh3-64 known answer (as in maph-core): if this changes, every existing
        // sharded store would route its keys to other shards.
        assert_eq!(xxh3_64_with_seed(b"hello", 0), 0x9555_e855_5c62_dcfd);
        assert_eq!(Router::new(1024, 0).route(b"hello"), jump_hash(0x9555_e855_5c62_dcfd, 1024));
    }

    #[test]
    fn growing_moves_keys_only_to_new_shards_and_about_the_expected_share() {
        for (from, to) in [(1u32, 2u32), (4, 5), (4, 7), (16, 17), (7, 4)] {
            let keys = 20_000u64;
            let mut moved = 0u64;
            for i in 0..keys {
                let h = xxh3_64_with_seed(&i.to_le_bytes(), 9);
                let (a, b) = (jump_hash(h, from), jump_hash(h, to));
                if a != b {
                    moved += 1;
                    // Monotonicity: growing only moves keys into the added shards,
                    // shrinking only moves keys out of the removed ones.
                    assert!(b >= from.min(to) || a >= from.min(to), "{i}: {a} -> {b} for {from} -> {to}");
                }
            }
            let expected = 1.0 - f64::from(from.min(to)) / f64::from(from.max(to));
            let share = moved as f64 / keys as f64;
            // 20 000 keys: the share's standard deviation is below 0.0036.
            assert!((share - expected).abs() < 0.02, "{from} -> {to}: moved {share:.4}, expected {expected:.4}");
        }
    }

    #[test]
    fn modulo_routing_would_move_most_keys() {
        // The alternative jump hashing is chosen over, measured on the same keys.
        let keys = 20_000u64;
        let (mut jump_moved, mut modulo_moved) = (0, 0);
        for i in 0..keys {
            let h = xxh3_64_with_seed(&i.to_le_bytes(), 9);
            jump_moved += u64::from(jump_hash(h, 4) != jump_hash(h, 7));
            modulo_moved += u64::from(h % 4 != h % 7);
        }
        let (jump, modulo) = (jump_moved as f64 / keys as f64, modulo_moved as f64 / keys as f64);
        assert!((jump - 3.0 / 7.0).abs() < 0.02, "jump moved {jump:.3}");
        assert!((modulo - 6.0 / 7.0).abs() < 0.02, "modulo moved {modulo:.3}");
    }

    #[test]
    fn keys_spread_evenly() {
        let router = Router::new(8, 77);
        let mut per_shard = [0u32; 8];
        for i in 0..80_000u32 {
            per_shard[router.route(format!("key:{i}").as_bytes()) as usize] += 1;
        }
        // Mean 10 000, standard deviation about 94: ±500 is over 5 sigma.
        assert!(per_shard.iter().all(|&n| (9_500..10_500).contains(&n)), "{per_shard:?}");
    }

    #[test]
    fn zero_buckets_is_one() {
        assert_eq!(jump_hash(12345, 0), 0);
        assert_eq!(Router::new(0, 1).shard_count(), 1);
    }
}
