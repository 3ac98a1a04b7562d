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
    fn intervals_are_reproducible_from_their_seed() {
        let g = vec![vec![1.0, 2.0, 4.0], vec![3.0, 5.0]];
        assert_eq!(center_interval(&g, 9), center_interval(&g, 9));
        assert_eq!(singletons([1.0, 2.0]), vec![vec![1.0], vec![2.0]]);
    }
}
