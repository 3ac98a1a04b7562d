//! The server's counters, kept once and shown two ways: as Prometheus text by
//! `GET /metrics` (see `prometheus.rs`) and as JSON by `GET /stats` and
//! `GET /stores/{name}/stats`, which the dashboard reads. Both render the same
//! snapshot, so the page and a scraper never disagree.
//!
//! Every counter is an atomic updated with Relaxed ordering: each is
//! independent, and a reader only ever sums or displays them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use maph_core::ContentionStats;
use parking_lot::Mutex;
use serde::Serialize;

/// Bucket bounds of request latencies, in nanoseconds (10 µs to 10 s).
pub(crate) const LATENCY_BOUNDS_NS: &[u64] = &[
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// Bucket bounds of the writer's lock waits, in nanoseconds (1 µs to 5 s).
pub(crate) const LOCK_WAIT_BOUNDS_NS: &[u64] = &[
    1_000,
    5_000,
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// Bucket bounds of group-commit sizes, in writes per commit.
pub(crate) const GROUP_SIZE_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16_384];

/// A histogram with fixed bucket bounds: counts per bucket, their sum, their number.
pub(crate) struct Histogram {
    bounds: &'static [u64],
    /// `buckets[i]` counts observations `<= bounds[i]` and above the bound
    /// before; the last one counts those above every bound.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            sum: self.sum.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HistogramSnapshot {
    pub bounds: &'static [u64],
    /// Per bucket, not cumulative; one more than `bounds`.
    pub buckets: Vec<u64>,
    pub sum: u64,
    pub count: u64,
}

impl HistogramSnapshot {
    /// The `q` quantile (0 to 1), estimated as Prometheus's
    /// `histogram_quantile` does: linear within the bucket it falls in. `None`
    /// without observations; the highest bound when it falls above every bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &in_bucket) in self.buckets.iter().enumerate() {
            if in_bucket > 0 && (below + in_bucket) as f64 >= rank {
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().map(|&b| b as f64);
                };
                let lower = if i == 0 { 0 } else { self.bounds[i - 1] };
                let within = (rank - below as f64) / in_bucket as f64;
                return Some(lower as f64 + (upper - lower) as f64 * within);
            }
            below += in_bucket;
        }
        self.bounds.last().map(|&b| b as f64)
    }
}

/// What one served store counts. It lives as long as the store is served,
/// across optimizes and growths.
pub(crate) struct StoreMetrics {
    /// Keys looked up (a GET, each key of an `mget`).
    pub reads: AtomicU64,
    /// Lookups that met a slot mid-write and waited on a blocking thread.
    pub read_waits: AtomicU64,
    /// Lookups waiting on a blocking thread right now.
    pub reads_waiting: AtomicU64,
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    pub largest_group: AtomicU64,
    /// Writes per commit.
    pub group_sizes: Histogram,
    /// Time the writer waited for its lock, per acquisition.
    pub lock_wait: Histogram,
    pub optimizations: AtomicU64,
    pub growths: AtomicU64,
    /// Growths that could not be done (the disk or the size limit).
    pub growth_failures: AtomicU64,
    /// Whether a rebuild (growth or optimize) is under way.
    pub rebuilding: AtomicBool,
    /// The writer's lock figures as its coordinator last reported them.
    contention: Mutex<ContentionStats>,
}

impl Default for StoreMetrics {
    fn default() -> StoreMetrics {
        StoreMetrics {
            reads: AtomicU64::new(0),
            read_waits: AtomicU64::new(0),
            reads_waiting: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            largest_group: AtomicU64::new(0),
            group_sizes: Histogram::new(GROUP_SIZE_BOUNDS),
            lock_wait: Histogram::new(LOCK_WAIT_BOUNDS_NS),
            optimizations: AtomicU64::new(0),
            growths: AtomicU64::new(0),
            growth_failures: AtomicU64::new(0),
            rebuilding: AtomicBool::new(false),
            contention: Mutex::new(ContentionStats::default()),
        }
    }
}

impl StoreMetrics {
    pub fn count_reads(&self, keys: usize) {
        self.reads.fetch_add(keys as u64, Ordering::Relaxed);
    }

    /// One commit of `writes` writes.
    pub fn record_commit(&self, writes: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
        self.largest_group.fetch_max(writes as u64, Ordering::Relaxed);
        self.group_sizes.observe(writes as u64);
    }

    /// Takes the coordinator's cumulative figures; the waits since the last
    /// call go into the lock-wait histogram, one observation per acquisition.
    pub fn publish_contention(&self, now: ContentionStats) {
        let mut last = self.contention.lock();
        let acquired = now.acquisitions.saturating_sub(last.acquisitions);
        if acquired > 0 {
            let waited = now.total_wait.saturating_sub(last.total_wait);
            let each = waited / u32::try_from(acquired).unwrap_or(u32::MAX);
            for _ in 0..acquired.min(1024) {
                self.lock_wait.observe_duration(each);
            }
        }
        *last = now;
    }

    pub fn snapshot(&self) -> StoreMetricsSnapshot {
        let contention = *self.contention.lock();
        StoreMetricsSnapshot {
            reads: self.reads.load(Ordering::Relaxed),
            read_waits: self.read_waits.load(Ordering::Relaxed),
            reads_waiting: self.reads_waiting.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
            group_sizes: self.group_sizes.snapshot(),
            lock_wait: self.lock_wait.snapshot(),
            optimizations: self.optimizations.load(Ordering::Relaxed),
            growths: self.growths.load(Ordering::Relaxed),
            growth_failures: self.growth_failures.load(Ordering::Relaxed),
            rebuilding: self.rebuilding.load(Ordering::Relaxed),
            contention,
        }
    }
}

/// A store's counters at one moment.
#[derive(Clone, Debug)]
pub(crate) struct StoreMetricsSnapshot {
    pub reads: u64,
    pub read_waits: u64,
    pub reads_waiting: u64,
    pub commits: u64,
    pub writes: u64,
    pub largest_group: u64,
    pub group_sizes: HistogramSnapshot,
    pub lock_wait: HistogramSnapshot,
    pub optimizations: u64,
    pub growths: u64,
    pub growth_failures: u64,
    pub rebuilding: bool,
    pub contention: ContentionStats,
}

impl StoreMetricsSnapshot {
    /// The writer's figures as `/stats` shows them. A quantile estimated
    /// within a bucket never exceeds the largest value actually seen (so waits
    /// that were all zero show as zero, not as half the first bucket).
    pub fn writer(&self) -> WriterStatsSnapshot {
        let longest_ns = self.contention.longest_wait.as_nanos() as f64;
        let wait_us = |q: f64| self.lock_wait.quantile(q).map(|ns| (ns.min(longest_ns) / 1000.0).round() as u64);
        let group = |q: f64| self.group_sizes.quantile(q).map(|g| g.min(self.largest_group as f64).round() as u64);
        WriterStatsSnapshot {
            commits: self.commits,
            writes: self.writes,
            largest_group: self.largest_group,
            group_p50: group(0.5),
            group_p99: group(0.99),
            optimizations: self.optimizations,
            growths: self.growths,
            lock_acquisitions: self.contention.acquisitions,
            lock_contended: self.contention.contended,
            lock_timeouts: self.contention.timeouts,
            lock_wait_total_us: self.contention.total_wait.as_micros() as u64,
            lock_wait_longest_us: self.contention.longest_wait.as_micros() as u64,
            lock_wait_p50_us: wait_us(0.5),
            lock_wait_p99_us: wait_us(0.99),
        }
    }
}

/// The writer's figures as the stats endpoint shows them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct WriterStatsSnapshot {
    /// Commits made (a group commit counts once).
    pub commits: u64,
    /// Writes committed.
    pub writes: u64,
    /// Most writes committed together.
    pub largest_group: u64,
    /// Median writes per commit (estimated from the histogram; `null` before the first commit).
    pub group_p50: Option<u64>,
    /// 99th percentile of writes per commit.
    pub group_p99: Option<u64>,
    /// Optimizes completed.
    pub optimizations: u64,
    /// Growths completed (the store rebuilt larger).
    pub growths: u64,
    /// Acquisitions of the writer's lock.
    pub lock_acquisitions: u64,
    /// Acquisitions that waited (0 for a single-writer store: only the writer thread writes).
    pub lock_contended: u64,
    /// Acquisitions that gave up at their deadline.
    pub lock_timeouts: u64,
    /// Time spent waiting for the lock, summed, in microseconds.
    pub lock_wait_total_us: u64,
    /// The longest wait for the lock, in microseconds.
    pub lock_wait_longest_us: u64,
    /// Median wait per acquisition, in microseconds (estimated from the histogram).
    pub lock_wait_p50_us: Option<u64>,
    /// 99th percentile wait per acquisition, in microseconds.
    pub lock_wait_p99_us: Option<u64>,
}

/// Requests by method, route and status, and latencies by route.
pub(crate) struct HttpMetrics {
    started: Instant,
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
}

impl HttpMetrics {
    pub fn new() -> HttpMetrics {
        HttpMetrics {
            started: Instant::now(),
            requests: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(BTreeMap::new()),
        }
    }

    /// One answered request. `route` is the matched route pattern (never the
    /// raw path, so the label set stays small).
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        *self.requests.lock().entry((method.to_string(), route.to_string(), status)).or_insert(0) += 1;
        let histogram = self
            .latency
            .lock()
            .entry(route.to_string())
            .or_insert_with(|| std::sync::Arc::new(Histogram::new(LATENCY_BOUNDS_NS)))
            .clone();
        histogram.observe_duration(elapsed);
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn requests(&self) -> Vec<((String, String, u16), u64)> {
        self.requests.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn latencies(&self) -> Vec<(String, HistogramSnapshot)> {
        self.latency.lock().iter().map(|(route, h)| (route.clone(), h.snapshot())).collect()
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.lock().values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let h = Histogram::new(&[10, 100]);
        for v in [0, 10, 11, 100, 101, 5000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![2, 2, 2]);
        assert_eq!((s.count, s.sum), (6, 5222));
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let h = Histogram::new(&[10, 20, 40]);
        assert_eq!(h.snapshot().quantile(0.5), None);
        for _ in 0..50 {
            h.observe(5);
        }
        for _ in 0..50 {
            h.observe(15);
        }
        let s = h.snapshot();
        assert_eq!(s.quantile(0.5), Some(10.0));
        assert_eq!(s.quantile(0.75), Some(15.0));
        assert_eq!(s.quantile(1.0), Some(20.0));
        h.observe(1000);
        assert_eq!(h.snapshot().quantile(1.0), Some(40.0), "above every bound: the highest bound");
    }

    #[test]
    fn contention_deltas_feed_the_wait_histogram() {
        let m = StoreMetrics::default();
        let at = |acquisitions, wait_us| ContentionStats {
            acquisitions,
            total_wait: Duration::from_micros(wait_us),
            ..ContentionStats::default()
        };
        m.publish_contention(at(2, 0));
        m.publish_contention(at(3, 700));
        let s = m.snapshot();
        assert_eq!(s.lock_wait.count, 3);
        assert_eq!(s.lock_wait.buckets[0], 2, "two waits of 0");
        assert_eq!(s.writer().lock_acquisitions, 3);
        assert_eq!(s.writer().lock_wait_total_us, 700);
        assert_eq!(s.writer().lock_wait_p50_us, Some(0), "at most the longest wait (none recorded here)");
    }
}
