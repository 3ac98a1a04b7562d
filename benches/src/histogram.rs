//! A latency histogram small enough to send from a worker process in one line.
//!
//! Log-linear buckets: exact below 64 ns, then 32 buckets per power of two, so
//! a reported percentile is within 1/64 (1.6%) of the true value. Workers
//! record every operation; the parent merges their histograms, so percentiles
//! are over all operations of a run, not averages of per-process percentiles.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sub-buckets per power of two (as a bit count).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any `u64` nanosecond count.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of operation times in nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0 }
    }
}

fn index(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros(); // >= SUB_BITS
    let mantissa = ns >> (exp - SUB_BITS); // in SUB..2*SUB
    ((exp - SUB_BITS) as u64 * SUB + mantissa) as usize
}

/// The smallest and largest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 2 * SUB {
        return (i, i);
    }
    let shift = i / SUB - 1; // exp - SUB_BITS
    let mantissa = i % SUB + SUB;
    let low = mantissa << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Records one operation that took `d`.
    #[inline]
    pub fn record(&mut self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one operation that took `ns` nanoseconds.
    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        self.counts[index(ns)] += 1;
        self.total += 1;
    }

    /// Operations recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds `other`'s counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The `q` quantile (0..=1) in nanoseconds: the middle of the bucket
    /// holding the operation of that rank. `None` when empty.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut h = maph_bench::Histogram::new();
    /// for ns in 1..=100 { h.record(Duration::from_nanos(ns * 1000)); }
    /// let p50 = h.quantile(0.5).unwrap();
    /// assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.02);
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bounds(i);
                return Some((low as f64 + high as f64) / 2.0);
            }
        }
        unreachable!("rank is at most the total")
    }

    /// A compact text form: `index:count` pairs of the non-empty buckets.
    pub fn encode(&self) -> String {
        let pairs: Vec<String> =
            self.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, c)| format!("{i}:{c}")).collect();
        pairs.join(",")
    }

    /// Reads [`encode`](Self::encode)'s form back.
    pub fn decode(text: &str) -> anyhow::Result<Histogram> {
        let mut h = Histogram::new();
        for pair in text.split(',').filter(|p| !p.is_empty()) {
            let (i, c) = pair.split_once(':').ok_or_else(|| anyhow::anyhow!("bad histogram pair {pair:?}"))?;
            let (i, c): (usize, u64) = (i.parse()?, c.parse()?);
            anyhow::ensure!(i < BUCKETS, "histogram bucket {i} out of range");
            h.counts[i] += c;
            h.total += c;
        }
        Ok(h)
    }
}

/// In JSON a histogram is its [`encode`](Histogram::encode)d text: compact, and
/// every bucket kept, so any percentile can be computed again from the file.
impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Histogram, D::Error> {
        let text = String::deserialize(deserializer)?;
        Histogram::decode(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut expected_low = 0;
        for i in 0..BUCKETS {
            let (low, high) = bounds(i);
            assert_eq!(low, expected_low, "bucket {i}");
            assert!(high >= low);
            assert!((high - low) as f64 <= low as f64 / SUB as f64, "bucket {i} too wide");
            assert_eq!(index(low), i);
            assert_eq!(index(high), i);
            expected_low = high.wrapping_add(1);
        }
        assert_eq!(bounds(BUCKETS - 1).1, u64::MAX);
    }

    #[test]
    fn round_trips_and_merges() {
        let mut a = Histogram::new();
        a.record(Duration::from_nanos(5));
        a.record(Duration::from_micros(7));
        let b = Histogram::decode(&a.encode()).unwrap();
        assert_eq!(a, b);
        a.merge(&b);
        assert_eq!(a.count(), 4);
        assert_eq!(a.quantile(0.0), Some(5.0));
        assert!(Histogram::decode("99999:1").is_err());
        assert!(Histogram::decode("x").is_err());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), a);
        assert_eq!(Histogram::new().quantile(0.5), None);
    }
}
