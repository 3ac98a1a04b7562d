//! Waiting for a lock that can only be tried: bounded exponential backoff with
//! jitter, up to a deadline.
//!
//! This replaces the reference design's `alarm()` timeouts (a process-wide signal
//! that one thread's lock wait would steal from every other) and its fixed 10 ms
//! polling loop (slow to notice a free lock, and a thundering herd when many wait).

use std::time::{Duration, Instant};

use super::Wait;
use crate::Result;

/// Delays between attempts: a few yields, then sleeps that double from
/// `first_sleep` to `max_sleep`, each shortened or lengthened by up to half at
/// random so that waiters started together do not retry together.
#[derive(Clone, Debug)]
pub struct Backoff {
    attempt: u32,
    sleep: Duration,
    max_sleep: Duration,
    rng: u64,
}

impl Backoff {
    /// Yields this many times before the first sleep.
    const YIELDS: u32 = 4;

    /// A backoff sleeping from 20 µs up to 2 ms: right for kernel locks held for
    /// microseconds.
    pub fn new() -> Backoff {
        Backoff::with_limits(Duration::from_micros(20), Duration::from_millis(2))
    }

    /// A backoff with the given first and largest sleep (a network lock wants
    /// milliseconds, not microseconds).
    pub fn with_limits(first_sleep: Duration, max_sleep: Duration) -> Backoff {
        // The jitter seed is made at the first sleep: building a Backoff must cost
        // nothing, since uncontended acquisitions build one and never wait.
        Backoff { attempt: 0, sleep: first_sleep, max_sleep, rng: 0 }
    }

    fn seed() -> u64 {
        let clock =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        // Time, process and stack address differ between waiters started together.
        let seed = clock ^ (u64::from(std::process::id()) << 32) ^ (&local as *const u8 as u64);
        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
    }

    /// Waits once, never past `deadline` (if any).
    pub fn pause(&mut self, deadline: Option<Instant>) {
        self.attempt += 1;
        if self.attempt <= Self::YIELDS {
            std::thread::yield_now();
            return;
        }
        if self.rng == 0 {
            self.rng = Self::seed();
        }
        // xorshift64: cheap randomness for jitter; quality does not matter here.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let base = self.sleep.as_nanos() as u64;
        let jittered = Duration::from_nanos(base / 2 + self.rng % base.max(1));
        let nap = match deadline {
            Some(d) => jittered.min(d.saturating_duration_since(Instant::now())),
            None => jittered,
        };
        std::thread::sleep(nap);
        self.sleep = (self.sleep * 2).min(self.max_sleep);
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// Calls `attempt` until it returns `Some`, or `wait` says to stop trying, and
/// backs off between calls. `attempt` must not block. Returns `Ok(None)` when the
/// deadline passed (after one last attempt at the deadline), or at once for
/// [`Wait::Never`] if the first attempt failed.
pub fn poll_until<T>(
    wait: Wait,
    mut backoff: Backoff,
    mut attempt: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    loop {
        if let Some(got) = attempt()? {
            return Ok(Some(got));
        }
        match wait {
            Wait::Never => return Ok(None),
            Wait::Forever => backoff.pause(None),
            Wait::Until(deadline) => {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                backoff.pause(Some(deadline));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_at_the_deadline_and_not_before() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(30);
        let mut tries = 0;
        let got: Option<()> = poll_until(Wait::Until(deadline), Backoff::new(), || {
            tries += 1;
            Ok(None)
        })
        .unwrap();
        assert!(got.is_none());
        assert!(Instant::now() >= deadline);
        // The first try and at least one more (how many depends on the load).
        assert!(tries >= 2, "backoff never retried");
    }

    #[test]
    fn returns_as_soon_as_the_attempt_succeeds() {
        let mut tries = 0;
        let got = poll_until(Wait::Forever, Backoff::new(), || {
            tries += 1;
            Ok((tries == 10).then_some(tries))
        })
        .unwrap();
        assert_eq!(got, Some(10));
    }

    #[test]
    fn never_means_one_attempt() {
        let mut tries = 0;
        let got: Option<()> = poll_until(Wait::Never, Backoff::new(), || {
            tries += 1;
            Ok(None)
        })
        .unwrap();
        assert_eq!((got, tries), (None, 1));
    }
}
