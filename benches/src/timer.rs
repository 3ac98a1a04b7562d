//! The clock, and what reading it costs.
//!
//! Every timed region includes part of the cost of the clock reads around it.
//! At tens of nanoseconds per read that is a large share of a cheap operation,
//! so the harness reads the clock as rarely as it can (operations are counted
//! in batches; single operations are timed only for a sample of them), measures
//! what an empty timed region reads on this machine, subtracts that from every
//! single-operation latency, and reports it.

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the machine,
/// so instants can be sent between processes (a shared start, a shared end).
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, owned `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0, "CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until the monotonic clock reads `instant_ns` (returns at once if it has).
pub fn sleep_until(instant_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (instant_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (instant_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: clock_nanosleep reads the owned `ts`; the remainder pointer may be
    // null with TIMER_ABSTIME. EINTR is retried: the target is absolute.
    while unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) }
        == libc::EINTR
    {}
}

/// Asks the kernel to wake this thread from a sleep within 1 ns of its
/// deadline rather than the default 50 µs of timer slack, so workers sleeping
/// until a shared start instant all wake at it.
pub fn tighten_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and touches no memory.
    unsafe {
        libc::prctl(
            libc::PR_SET_TIMERSLACK,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
}

/// What the clock costs on this machine, measured by [`calibrate`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimerCost {
    /// Mean cost of one clock read, back to back (ns).
    pub read_ns: f64,
    /// Median reading of an empty timed region (two reads with nothing
    /// between): what the harness subtracts from every single-operation latency.
    pub empty_region_ns: f64,
    /// 99th percentile of an empty timed region (ns).
    pub empty_region_p99_ns: f64,
}

impl TimerCost {
    /// A single operation's latency from a raw timed region, with the empty
    /// region's reading taken away (never below zero).
    #[inline]
    pub fn correct(&self, raw_ns: u64) -> u64 {
        raw_ns.saturating_sub(self.empty_region_ns as u64)
    }
}

/// Measures [`TimerCost`]: `reads` back-to-back clock reads, and as many empty regions.
pub fn calibrate(reads: usize) -> TimerCost {
    let reads = reads.max(1000);
    // Warm the vDSO page and the loop.
    let mut sink = 0u64;
    for _ in 0..1000 {
        sink = sink.wrapping_add(monotonic_ns());
    }
    let t0 = monotonic_ns();
    for _ in 0..reads {
        sink = sink.wrapping_add(monotonic_ns());
    }
    let t1 = monotonic_ns();
    let mut empty = Histogram::new();
    for _ in 0..reads {
        let a = monotonic_ns();
        let b = monotonic_ns();
        empty.record_ns(b.saturating_sub(a));
    }
    std::hint::black_box(sink);
    TimerCost {
        read_ns: (t1 - t0) as f64 / reads as f64,
        empty_region_ns: empty.quantile(0.5).unwrap_or(0.0),
        empty_region_p99_ns: empty.quantile(0.99).unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_gives_plausible_figures_and_corrects_without_underflow() {
        let cost = calibrate(1000);
        assert!(cost.read_ns > 0.0 && cost.empty_region_ns >= 0.0);
        assert!(cost.empty_region_p99_ns >= cost.empty_region_ns);
        let fixed = TimerCost { read_ns: 20.0, empty_region_ns: 30.0, empty_region_p99_ns: 40.0 };
        assert_eq!(fixed.correct(100), 70);
        assert_eq!(fixed.correct(10), 0);
    }

    #[test]
    fn sleeping_until_a_past_instant_returns() {
        let now = monotonic_ns();
        sleep_until(now.saturating_sub(1_000_000));
        sleep_until(now + 1000);
        assert!(monotonic_ns() >= now + 1000);
    }
}
