//! Medians, spreads and intervals: every figure the report quotes is one of these.
//!
//! A measured figure comes in *groups*: one group per freshly started process
//! (or per run), each holding that process's samples. Processes differ in
//! ways samples within one process cannot show (where the store's pages and the
//! code landed), so a figure is the median of the group medians, its spread is
//! the range of the group medians, and an interval resamples both levels.

use serde::{Deserialize, Serialize};

use crate::keys::Rng;

/// The distribution of a set of measurements: its median, quartiles and range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many measurements.
    pub n: usize,
    /// The smallest.
    pub min: f64,
    /// 25th percentile.
    pub p25: f64,
    /// The median.
    pub median: f64,
    /// 75th percentile.
    pub p75: f64,
    /// The largest.
    pub max: f64,
}

impl Summary {
    /// Summarises `values` (NaNs ignored); `None` if there are none.
    ///
    /// ```
    /// let s = maph_bench::Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
    /// assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
    /// assert_eq!((s.p25, s.p75), (2.0, 4.0));
    /// ```
    pub fn of(values: &[f64]) -> Option<Summary> {
        let sorted = sorted(values);
        if sorted.is_empty() {
            return None;
        }
        Some(Summary {
            n: sorted.len(),
            min: sorted[0],
            p25: quantile_sorted(&sorted, 0.25),
            median: quantile_sorted(&sorted, 0.5),
            p75: quantile_sorted(&sorted, 0.75),
            max: sorted[sorted.len() - 1],
        })
    }

    /// The range relative to the median: (max − min) / median.
    pub fn relative_range(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / self.median
        } else {
            0.0
        }
    }
}

/// A point estimate with a 95 % interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate.
    pub estimate: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// Whether the interval contains `x`.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// Linear interpolation between closest ranks of an ascending, non-empty slice.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

/// The median of `values` (NaNs ignored); `None` if there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let sorted = sorted(values);
    (!sorted.is_empty()).then(|| quantile_sorted(&sorted, 0.5))
}

/// The median of each group, in order (empty groups left out).
pub fn group_medians(groups: &[Vec<f64>]) -> Vec<f64> {
    groups.iter().filter_map(|g| median(g)).collect()
}

/// The figure of a grouped measurement: the median of its group medians.
pub fn center(groups: &[Vec<f64>]) -> Option<f64> {
    median(&group_medians(groups))
}

/// Bootstrap resamples behind every interval.
pub const RESAMPLES: usize = 2000;

/// One bootstrap replicate of [`center`]: groups drawn with replacement, and
/// within each drawn group its samples drawn with replacement.
fn resampled_center(groups: &[&Vec<f64>], rng: &mut Rng, scratch: &mut Vec<f64>) -> f64 {
    let mut medians = Vec::with_capacity(groups.len());
    for _ in 0..groups.len() {
        let g = groups[rng.below(groups.len())];
        scratch.clear();
        scratch.extend((0..g.len()).map(|_| g[rng.below(g.len())]));
        scratch.sort_by(f64::total_cmp);
        medians.push(quantile_sorted(scratch, 0.5));
    }
    medians.sort_by(f64::total_cmp);
    quantile_sorted(&medians, 0.5)
}

/// The 95 % interval of [`center`]`(groups)` by a two-level bootstrap.
pub fn center_interval(groups: &[Vec<f64>], seed: u64) -> Option<Interval> {
    let estimate = center(groups)?;
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    let mut rng = Rng::new(seed);
    let mut scratch = Vec::new();
    let mut replicates: Vec<f64> = (0..RESAMPLES).map(|_| resampled_center(&groups, &mut rng, &mut scratch)).collect();
    replicates.sort_by(f64::total_cmp);
    Some(Interval { estimate, low: quantile_sorted(&replicates, 0.025), high: quantile_sorted(&replicates, 0.975) })
}

/// The ratio `center(num) / center(den)` with its 95 % interval, by a
/// two-level bootstrap of both sides independently (the two were measured in
/// different processes). `None` if either side has fewer than two values (no
/// spread to resample) or the denominator is 0.
///
/// ```
/// use maph_bench::stats::ratio_interval;
/// let fast = vec![vec![100.0, 101.0, 99.0], vec![102.0, 100.0, 98.0]];
/// let slow = vec![vec![200.0, 202.0, 198.0], vec![204.0, 200.0, 196.0]];
/// let r = ratio_interval(&slow, &fast, 1).unwrap();
/// assert!((r.estimate - 2.0).abs() < 0.02);
/// assert!(r.low <= r.estimate && r.estimate <= r.high && r.low > 1.9);
/// ```
pub fn ratio_interval(num: &[Vec<f64>], den: &[Vec<f64>], seed: u64) -> Option<Interval> {
    let (n, d) = (center(num)?, center(den)?);
    let values = |g: &[Vec<f64>]| g.iter().map(Vec::len).sum::<usize>();
    if d == 0.0 || values(num) < 2 || values(den) < 2 {
        return None;
    }
    let num: Vec<&Vec<f64>> = num.iter().filter(|g| !g.is_empty()).collect();
    let den: Vec<&Vec<f64>> = den.iter().filter(|g| !g.is_empty()).collect();
    let mut rng = Rng::new(seed);
    let mut scratch = Vec::new();
    let mut replicates: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let a = resampled_center(&num, &mut rng, &mut scratch);
            let b = resampled_center(&den, &mut rng, &mut scratch);
            (b != 0.0).then(|| a / b)
        })
        .collect();
    replicates.sort_by(f64::total_cmp);
    Some(Interval {
        estimate: n / d,
        low: quantile_sorted(&replicates, 0.025),
        high: quantile_sorted(&replicates, 0.975),
    })
}

/// The two-sided p-value of an exact rank test (Mann–Whitney) that `a` and
/// `b` come from one distribution, by enumerating every way to split their
/// pooled values: how likely a difference at least this large in rank sums
/// is when the labels do not matter. `None` when the samples are too small for
/// any split to reach p ≤ 0.05 (then no test can tell them apart), or too
/// large to enumerate (more than 200,000 splits).
///
/// ```
/// use maph_bench::stats::rank_test;
/// // Every value of b above every value of a: the most extreme of 70 splits, both tails.
/// assert!((rank_test(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]).unwrap() - 2.0 / 70.0).abs() < 1e-12);
/// assert_eq!(rank_test(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), None, "20 splits: p ≥ 0.1 at best");
/// ```
pub fn rank_test(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n, m) = (a.len(), b.len());
    let splits = binomial(n + m, n)?;
    if n == 0 || m == 0 || 2.0 / splits > 0.05 || splits > 200_000.0 {
        return None;
    }
    // Ranks of the pooled values (ties share their mean rank).
    let mut pooled: Vec<(f64, usize)> = a.iter().chain(b).copied().zip(0..).collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut ranks = vec![0.0; n + m];
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i;
        while j + 1 < pooled.len() && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        for k in i..=j {
            ranks[pooled[k].1] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    let observed: f64 = ranks[..n].iter().sum();
    let mean = n as f64 * (n + m + 1) as f64 / 2.0;
    let extreme = (observed - mean).abs() - 1e-9;
    // Every choice of n of the n + m ranks as "a".
    let (mut count, mut total) = (0u64, 0u64);
    let mut chosen: Vec<usize> = (0..n).collect();
    loop {
        total += 1;
        let sum: f64 = chosen.iter().map(|&k| ranks[k]).sum();
        count += u64::from((sum - mean).abs() >= extreme);
        // The next combination in lexicographic order.
        let mut k = n;
        while k > 0 && chosen[k - 1] == k - 1 + m {
            k -= 1;
        }
        if k == 0 {
            break;
        }
        chosen[k - 1] += 1;
        for l in k..n {
            chosen[l] = chosen[l - 1] + 1;
        }
    }
    Some(count as f64 / total as f64)
}

fn binomial(n: usize, k: usize) -> Option<f64> {
    let k = k.min(n.saturating_sub(k));
    let mut c = 1.0f64;
    for i in 0..k {
        c = c * (n - i) as f64 / (i + 1) as f64;
    }
    c.is_finite().then_some(c)
}

/// Groups of one value each: how a figure measured once per run (a run's
/// throughput, a run's p99) enters [`center`] and [`ratio_interval`].
pub fn singletons(values: impl IntoIterator<Item = f64>) -> Vec<Vec<f64>> {
    values.into_iter().map(|v| vec![v]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_nan_only_inputs_have_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
        assert_eq!(center(&[vec![], vec![]]), None);
        assert!(ratio_interval(&[vec![1.0]], &[vec![]], 0).is_none());
        assert!(ratio_interval(&[vec![1.0, 2.0]], &[vec![0.0, 0.0]], 0).is_none());
        assert!(ratio_interval(&[vec![1.0, 2.0]], &[vec![3.0]], 0).is_none(), "one value has no spread");
    }

    #[test]
    fn quartiles_interpolate() {
        let s = Summary::of(&[1.0, 2.0]).unwrap();
        assert_eq!((s.p25, s.median, s.p75), (1.25, 1.5, 1.75));
        let one = Summary::of(&[7.0]).unwrap();
        assert_eq!((one.min, one.p25, one.median, one.p75, one.max), (7.0, 7.0, 7.0, 7.0, 7.0));
    }

    #[test]
    fn the_center_is_the_median_of_group_medians() {
        let groups = vec![vec![1.0, 2.0, 3.0], vec![10.0, 11.0, 12.0, 13.0], vec![5.0]];
        assert_eq!(group_medians(&groups), vec![2.0, 11.5, 5.0]);
        assert_eq!(center(&groups), Some(5.0));
    }

    #[test]
    fn an_interval_widens_with_the_spread_between_groups() {
        // The same samples within each group; only the groups' offsets differ.
        let within: Vec<f64> = (0..20).map(|i| 100.0 + f64::from(i % 5)).collect();
        let tight: Vec<Vec<f64>> = (0..5).map(|_| within.clone()).collect();
        let spread: Vec<Vec<f64>> =
            (0..5).map(|g| within.iter().map(|v| v * (1.0 + 0.05 * f64::from(g))).collect()).collect();
        let a = center_interval(&tight, 3).unwrap();
        let b = center_interval(&spread, 3).unwrap();
        assert!(a.contains(a.estimate) && b.contains(b.estimate));
        assert!((b.high - b.low) > 4.0 * (a.high - a.low), "{a:?} vs {b:?}");
    }

    #[test]
    fn identical_sides_give_a_ratio_interval_around_one() {
        let groups: Vec<Vec<f64>> = (0..4).map(|g| (0..15).map(|i| 50.0 + f64::from(i + g)).collect()).collect();
        let r = ratio_interval(&groups, &groups, 5).unwrap();
        assert_eq!(r.estimate, 1.0);
        assert!(r.contains(1.0) && r.low < 1.0 && r.high > 1.0, "{r:?}");
    }

    #[test]
    fn the_rank_test_finds_shifts_and_not_shuffles() {
        let a = [10.0, 11.0, 12.0, 13.0, 14.0];
        let shifted = [20.0, 21.0, 22.0, 23.0, 24.0];
        let mixed = [10.5, 11.5, 12.5, 13.5, 14.5];
        assert!(rank_test(&a, &shifted).unwrap() < 0.01);
        assert!(rank_test(&a, &mixed).unwrap() > 0.5);
        assert_eq!(rank_test(&a, &a), Some(1.0), "ties everywhere: nothing is extreme");
        assert_eq!(rank_test(&[1.0, 2.0], &[3.0, 4.0]), None, "6 splits can never reach 0.05");
        assert_eq!(rank_test(&[], &[1.0]), None);
        assert_eq!(binomial(12, 6), Some(924.0));
    }

    #[test]
    fn intervals_are_reproducible_from_their_seed() {
        let g = vec![vec![1.0, 2.0, 4.0], vec![3.0, 5.0]];
        assert_eq!(center_interval(&g, 9), center_interval(&g, 9));
        assert_eq!(singletons([1.0, 2.0]), vec![vec![1.0], vec![2.0]]);
    }
}
