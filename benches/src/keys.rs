//! Which keys a workload touches, and in what order: seeded random sequences,
//! uniform or Zipf-distributed, so every row sees the same keys in the same
//! order and no two processes walk the keys in lockstep.

use serde::{Deserialize, Serialize};

/// SplitMix64: a small, fast, seedable generator (Steele, Lea and Flood 2014).
/// Statistical quality is ample for choosing keys; it is not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for any `n` used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Shuffles `items` (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// A seed derived from a base seed and the parts that name one stream (a row,
/// a worker, a run), so streams differ and every run is reproducible.
pub fn derive_seed(base: u64, parts: &[u64]) -> u64 {
    let mut rng = Rng::new(base);
    let mut seed = rng.next_u64();
    for &p in parts {
        rng = Rng::new(seed ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        seed = rng.next_u64();
    }
    seed
}

/// How often each key is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Popularity {
    /// Every key equally often.
    Uniform,
    /// Key of rank `r` (from 1) chosen with probability proportional to `1 / r^s`.
    /// Ranks are assigned to keys in a random order, so popular keys are not
    /// neighbours in a B-tree.
    Zipf {
        /// The skew `s` (0 is uniform; 0.99 is YCSB's default).
        s: f64,
    },
}

impl Popularity {
    /// `Uniform` for a skew of 0, else `Zipf`.
    pub fn from_skew(s: f64) -> Popularity {
        if s <= 0.0 {
            Popularity::Uniform
        } else {
            Popularity::Zipf { s }
        }
    }

    /// The skew (0 for uniform).
    pub fn skew(self) -> f64 {
        match self {
            Popularity::Uniform => 0.0,
            Popularity::Zipf { s } => s,
        }
    }

    /// How a report names it.
    pub fn describe(self) -> String {
        match self {
            Popularity::Uniform => "uniform".into(),
            Popularity::Zipf { s } => format!("Zipf, s = {s}"),
        }
    }
}

/// Length of a precomputed sequence of key choices: long enough that its
/// repetition does not matter, short enough to stay in a core's L2 cache (256 KiB).
pub const SEQUENCE_LEN: usize = 1 << 16;

/// A precomputed, repeating sequence of indices into a list of `n` keys,
/// drawn from a popularity distribution. Computing the choices before the
/// timed loop keeps sampling (a binary search for Zipf) out of the measurement.
#[derive(Clone, Debug)]
pub struct Sequence {
    indices: Vec<u32>,
    next: usize,
}

impl Sequence {
    /// [`SEQUENCE_LEN`] choices among `n` keys (`n > 0`) under `popularity`, fixed by `seed`.
    pub fn new(n: usize, popularity: Popularity, seed: u64) -> Sequence {
        assert!(n > 0 && n <= u32::MAX as usize, "a sequence needs 1..=u32::MAX keys, not {n}");
        let mut rng = Rng::new(seed);
        let indices = match popularity {
            Popularity::Uniform => (0..SEQUENCE_LEN).map(|_| rng.below(n) as u32).collect(),
            Popularity::Zipf { s } => {
                let cdf = zipf_cdf(n, s);
                // Rank r is key rank_to_key[r]: popular keys spread over the keyspace.
                let mut rank_to_key: Vec<u32> = (0..n as u32).collect();
                rng.shuffle(&mut rank_to_key);
                (0..SEQUENCE_LEN)
                    .map(|_| {
                        let u = rng.unit();
                        let rank = cdf.partition_point(|&c| c <= u).min(n - 1);
                        rank_to_key[rank]
                    })
                    .collect()
            }
        };
        Sequence { indices, next: 0 }
    }

    /// The next key index.
    #[inline]
    pub fn next_index(&mut self) -> usize {
        let i = self.indices[self.next];
        self.next = (self.next + 1) % self.indices.len();
        i as usize
    }

    /// All choices, in order.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }
}

/// The cumulative distribution of Zipf(`s`) over ranks `1..=n`, normalised to end at 1.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for rank in 1..=n {
        total += 1.0 / (rank as f64).powf(s);
        cdf.push(total);
    }
    for c in &mut cdf {
        *c /= total;
    }
    cdf
}

/// A random order of `0..n`, fixed by `seed`: how the single-process table
/// walks its keys (a sorted walk would let a B-tree read neighbours from one leaf).
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    Rng::new(seed).shuffle(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_fix_the_sequence_and_differ_between_streams() {
        let a = Sequence::new(1000, Popularity::Uniform, 7);
        let b = Sequence::new(1000, Popularity::Uniform, 7);
        assert_eq!(a.indices(), b.indices());
        assert_ne!(derive_seed(1, &[0, 1]), derive_seed(1, &[1, 0]));
        assert_ne!(derive_seed(1, &[2]), derive_seed(2, &[2]));
    }

    #[test]
    fn uniform_choices_cover_every_key_evenly() {
        let seq = Sequence::new(16, Popularity::Uniform, 3);
        let mut counts = [0usize; 16];
        for &i in seq.indices() {
            counts[i as usize] += 1;
        }
        let expected = SEQUENCE_LEN / 16;
        for c in counts {
            // 4096 expected per key; a binomial spread of about 62, so 15 % is far outside chance.
            assert!(c.abs_diff(expected) < expected * 15 / 100, "{counts:?}");
        }
    }

    #[test]
    fn zipf_favours_its_top_ranks_by_the_right_ratio() {
        let n = 1000;
        let seq = Sequence::new(n, Popularity::Zipf { s: 1.0 }, 11);
        let mut counts = vec![0usize; n];
        for &i in seq.indices() {
            counts[i as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // Harmonic number H(1000) ≈ 7.485: rank 1 gets 13.4 %, rank 2 half as much.
        let top = counts[0] as f64 / SEQUENCE_LEN as f64;
        assert!((top - 0.1336).abs() < 0.01, "top share {top}");
        let ratio = counts[0] as f64 / counts[1] as f64;
        assert!((1.6..2.5).contains(&ratio), "rank 1 / rank 2 = {ratio}");
        assert_eq!(Popularity::from_skew(0.0), Popularity::Uniform);
    }

    #[test]
    fn permutations_are_permutations() {
        let mut p = permutation(500, 9);
        assert_ne!(p, (0..500).collect::<Vec<u32>>(), "shuffled");
        p.sort_unstable();
        assert_eq!(p, (0..500).collect::<Vec<u32>>());
    }
}
