//! The clock a lease is measured with.
//!
//! A lease is a promise from Redis that the token stays ours for `ttl` after the
//! command that set or renewed it. The holder measures the same span locally
//! from the moment it *sent* that command (so Redis's timer cannot have started
//! earlier), and stops writing before it runs out.
//!
//! `std::time::Instant` is `CLOCK_MONOTONIC` on Linux, which stands still while
//! the machine is suspended: a laptop that sleeps for an hour would wake up
//! believing its five-second lease still had seconds left. `CLOCK_BOOTTIME`
//! counts suspended time too, so it is what leases are measured with here.
//! Like `CLOCK_MONOTONIC`, it never jumps when the wall clock is set.

use std::time::Duration;

/// Time since boot, including time suspended; never goes backwards.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn now() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    // clock_gettime on a clock id the kernel has supported since Linux 2.6.39
    // cannot fail; if it somehow did, the monotonic fallback is still a
    // non-decreasing clock, only blind to suspend.
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32),
        Err(_) => fallback(),
    }
}

/// Elsewhere the monotonic clock is the best portable choice.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn now() -> Duration {
    fallback()
}

fn fallback() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_and_follows_real_time() {
        let a = now();
        std::thread::sleep(Duration::from_millis(20));
        let b = now();
        assert!(b >= a + Duration::from_millis(20), "{a:?} then {b:?}");
    }
}
