//! Contention figures every coordinator reports, kept in one place.
//!
//! The guard methods of [`WriteCoordinator`](super::WriteCoordinator) try the
//! lock once without waiting; only when that fails do they read the clock. So an
//! uncontended acquisition costs one relaxed counter increment here, and waits
//! are measured exactly where they happen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

/// A snapshot of a coordinator's contention counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContentionStats {
    /// Successful acquisitions (exclusive and shared).
    pub acquisitions: u64,
    /// Acquisitions that had to wait because the lock was held.
    pub contended: u64,
    /// Attempts that gave up at their deadline (or at once, for `try_`).
    pub timeouts: u64,
    /// Time spent waiting, summed over all acquisitions.
    pub total_wait: Duration,
    /// The longest single wait.
    pub longest_wait: Duration,
}

/// Called with the length of a wait that exceeded the configured threshold.
pub type SlowWaitHook = Arc<dyn Fn(Duration) + Send + Sync>;

/// Lock-free counters behind [`ContentionStats`]. Relaxed ordering throughout:
/// each counter is independent and only ever summed for display.
#[derive(Default)]
pub struct ContentionCounters {
    acquisitions: AtomicU64,
    contended: AtomicU64,
    timeouts: AtomicU64,
    total_wait_ns: AtomicU64,
    longest_wait_ns: AtomicU64,
    slow_wait: RwLock<Option<(Duration, SlowWaitHook)>>,
}

impl std::fmt::Debug for ContentionCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl ContentionCounters {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an acquisition that did not wait.
    #[inline]
    pub fn record_immediate(&self) {
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an acquisition that waited `waited`.
    pub fn record_waited(&self, waited: Duration) {
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
        self.contended.fetch_add(1, Ordering::Relaxed);
        self.add_wait(waited);
        if let Some((threshold, hook)) = self.slow_wait.read().as_ref() {
            if waited >= *threshold {
                hook(waited);
            }
        }
    }

    /// Records an attempt that gave up after `waited`.
    pub fn record_timeout(&self, waited: Duration) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        self.add_wait(waited);
    }

    fn add_wait(&self, waited: Duration) {
        let ns = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.total_wait_ns.fetch_add(ns, Ordering::Relaxed);
        self.longest_wait_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Calls `hook` whenever one wait lasts `threshold` or longer (the reference
    /// design's "monitor lock contention"). Replaces any earlier hook.
    pub fn warn_on_slow_wait(&self, threshold: Duration, hook: impl Fn(Duration) + Send + Sync + 'static) {
        *self.slow_wait.write() = Some((threshold, Arc::new(hook)));
    }

    /// The figures so far.
    pub fn snapshot(&self) -> ContentionStats {
        ContentionStats {
            acquisitions: self.acquisitions.load(Ordering::Relaxed),
            contended: self.contended.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            total_wait: Duration::from_nanos(self.total_wait_ns.load(Ordering::Relaxed)),
            longest_wait: Duration::from_nanos(self.longest_wait_ns.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn counts_and_warns() {
        let c = ContentionCounters::new();
        let warned = Arc::new(AtomicUsize::new(0));
        let w = warned.clone();
        c.warn_on_slow_wait(Duration::from_millis(5), move |_| {
            w.fetch_add(1, Ordering::Relaxed);
        });
        c.record_immediate();
        c.record_waited(Duration::from_millis(1));
        c.record_waited(Duration::from_millis(9));
        c.record_timeout(Duration::from_millis(3));
        let s = c.snapshot();
        assert_eq!((s.acquisitions, s.contended, s.timeouts), (3, 2, 1));
        assert_eq!(s.total_wait, Duration::from_millis(13));
        assert_eq!(s.longest_wait, Duration::from_millis(9));
        assert_eq!(warned.load(Ordering::Relaxed), 1);
    }
}
