//! Medians and spreads: every figure the report quotes is one of these.

use serde::{Deserialize, Serialize};

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
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            min: sorted[0],
            p25: quantile(&sorted, 0.25),
            median: quantile(&sorted, 0.5),
            p75: quantile(&sorted, 0.75),
            max: sorted[sorted.len() - 1],
        })
    }

    /// The same distribution with every value multiplied by `factor`
    /// (a positive factor keeps the order; used to turn times into rates).
    pub fn scaled(&self, factor: f64) -> Summary {
        let (a, b) = (self.min * factor, self.max * factor);
        let (c, d) = (self.p25 * factor, self.p75 * factor);
        Summary { n: self.n, min: a.min(b), p25: c.min(d), median: self.median * factor, p75: c.max(d), max: a.max(b) }
    }
}

/// Linear interpolation between closest ranks of an ascending, non-empty slice.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_nan_only_inputs_have_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }

    #[test]
    fn quartiles_interpolate() {
        let s = Summary::of(&[1.0, 2.0]).unwrap();
        assert_eq!((s.p25, s.median, s.p75), (1.25, 1.5, 1.75));
        let one = Summary::of(&[7.0]).unwrap();
        assert_eq!((one.min, one.p25, one.median, one.p75, one.max), (7.0, 7.0, 7.0, 7.0, 7.0));
    }

    #[test]
    fn scaling_by_a_reciprocal_keeps_bounds_ordered() {
        let s = Summary::of(&[1.0, 2.0, 4.0]).unwrap();
        let rate = Summary { median: 1.0 / s.median, ..s.scaled(1.0) };
        assert_eq!(rate.median, 0.5);
        let neg = s.scaled(-1.0);
        assert!(neg.min <= neg.p25 && neg.p25 <= neg.p75 && neg.p75 <= neg.max);
    }
}
