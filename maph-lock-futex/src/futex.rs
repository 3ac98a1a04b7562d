//! The two futex operations the lock needs, on a word of the shared mapping.
//!
//! Neither uses `FUTEX_PRIVATE_FLAG`: the lock word lives in a `MAP_SHARED`
//! file mapping that other processes map at other addresses, so the kernel must
//! key the wait queue by the file and offset (a "shared" futex), not by this
//! process's address space.
//!
//! A futex is 32 bits; the lock word is 64 (its high half names the holder's
//! start time). The kernel is handed the word's low half, the half with the
//! pid, waiters bit and epoch. Its 4-byte read of half of an 8-byte atomic word
//! happens outside Rust's memory model; on the machines Linux runs on, an
//! aligned 4-byte load is single-copy atomic, so it sees the low half of some
//! value the word held, which is all the sleep/wake protocol needs (and what
//! it then decides, sleep or not, is re-checked by the waiter on waking).
//!
//! Under loom the two operations are modelled: a wait returns at once, as
//! `FUTEX_WAIT` is allowed to (a spurious wake-up), after letting other threads
//! run; a wake does nothing. Every waiter re-reads the word after a wait, so
//! this covers every schedule of the real calls as far as mutual exclusion is
//! concerned (lost wake-ups are bounded by the detection period, not modelled).

use std::time::Duration;

use crate::sync::AtomicU64;

// (The model's wait never times out.)
#[cfg_attr(loom, allow(dead_code))]
/// How a wait ended. Every outcome sends the caller back to re-read the word,
/// so the distinction only matters for diagnostics and for not spinning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// Woken by `FUTEX_WAKE`, by a signal, or spuriously.
    Woken,
    /// The word no longer held `expected` when the kernel looked.
    Changed,
    /// The timeout passed.
    TimedOut,
    /// The call failed for another reason (futex unavailable, say); the
    /// caller must not spin on it.
    Failed,
}

/// Sleeps while the low half of `word` holds `expected`, for at most `timeout`.
///
/// The kernel compares the word and queues the caller atomically with respect to
/// [`wake_one`], so a wake that follows a change of the word is never lost.
#[cfg(not(loom))]
pub(crate) fn wait(word: &AtomicU64, expected: u32, timeout: Duration) -> WaitEnd {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    match futex(word, libc::FUTEX_WAIT, expected, Some(&ts)) {
        0 => WaitEnd::Woken,
        _ => match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => WaitEnd::Changed,
            Some(libc::ETIMEDOUT) => WaitEnd::TimedOut,
            Some(libc::EINTR) => WaitEnd::Woken,
            _ => WaitEnd::Failed,
        },
    }
}

/// Wakes one process (or thread) sleeping in [`wait`] on `word`, if any.
#[cfg(not(loom))]
pub(crate) fn wake_one(word: &AtomicU64) {
    // A failure leaves the sleeper to its timeout: waits are always bounded.
    futex(word, libc::FUTEX_WAKE, 1, None);
}

/// The model's wait: a spurious wake-up, after a yield (see the module docs).
#[cfg(loom)]
pub(crate) fn wait(word: &AtomicU64, expected: u32, _timeout: Duration) -> WaitEnd {
    if word.load(crate::sync::Ordering::Relaxed) as u32 != expected {
        return WaitEnd::Changed;
    }
    loom::thread::yield_now();
    WaitEnd::Woken
}

/// The model's wake: nothing to do, as the model's waits never sleep.
#[cfg(loom)]
pub(crate) fn wake_one(_word: &AtomicU64) {}

/// The raw system call on the low half of `word`. Returns its result (`-1`
/// with `errno` set on failure).
#[cfg(not(loom))]
fn futex(word: &AtomicU64, op: libc::c_int, val: u32, timeout: Option<&libc::timespec>) -> libc::c_long {
    let timeout_ptr = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // The low half: the first four bytes on a little-endian machine.
    let low_half = word.as_ptr().cast::<u32>().wrapping_add(usize::from(cfg!(target_endian = "big")));
    // SAFETY: `low_half` points into `word`, a live, 8-byte-aligned atomic
    // borrowed for the duration of the call, so it is 4-byte aligned and valid.
    // FUTEX_WAIT only reads it (atomically, see the module docs) and FUTEX_WAKE
    // only uses its address as a key; neither writes it. `timeout_ptr` is null
    // or points to a timespec borrowed for the call. FUTEX_WAIT and FUTEX_WAKE
    // ignore the remaining two arguments (uaddr2, val3).
    unsafe { libc::syscall(libc::SYS_futex, low_half, op, val, timeout_ptr, std::ptr::null::<u32>(), 0u32) }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_wait_on_a_changed_word_returns_at_once() {
        let word = AtomicU64::new(1);
        assert_eq!(wait(&word, 2, Duration::from_secs(5)), WaitEnd::Changed);
    }

    #[test]
    fn only_the_low_half_is_compared() {
        // High half 5, low half 7: a wait for 7 sleeps (until its timeout).
        let word = AtomicU64::new((5 << 32) | 7);
        assert_eq!(wait(&word, 5, Duration::from_secs(5)), WaitEnd::Changed);
        assert_eq!(wait(&word, 7, Duration::from_millis(1)), WaitEnd::TimedOut);
    }

    #[test]
    fn a_wait_times_out_not_before_its_timeout() {
        let word = AtomicU64::new(7);
        let started = Instant::now();
        assert_eq!(wait(&word, 7, Duration::from_millis(20)), WaitEnd::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wake_one_ends_a_wait() {
        let word = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let sleeper = {
            let word = word.clone();
            std::thread::spawn(move || {
                // Loop like a lock would: until the word changes. Each wait lasts
                // up to 60 s unless woken.
                while word.load(std::sync::atomic::Ordering::Acquire) == 0 {
                    wait(&word, 0, Duration::from_secs(60));
                }
            })
        };
        word.store(1, std::sync::atomic::Ordering::Release);
        wake_one(&word);
        sleeper.join().unwrap();
        // Without the wake the sleeper would have slept its full 60 s.
        assert!(started.elapsed() < Duration::from_secs(30), "the wake was lost");
    }
}
