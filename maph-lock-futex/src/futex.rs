//! The two futex operations the lock needs, on a word of the shared mapping.
//!
//! Neither uses `FUTEX_PRIVATE_FLAG`: the lock word lives in a `MAP_SHARED`
//! file mapping that other processes map at other addresses, so the kernel must
//! key the wait queue by the file and offset (a "shared" futex), not by this
//! process's address space.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

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

/// Sleeps while `word` holds `expected`, for at most `timeout`.
///
/// The kernel compares the word and queues the caller atomically with respect to
/// [`wake_one`], so a wake that follows a change of the word is never lost.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> WaitEnd {
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
pub(crate) fn wake_one(word: &AtomicU32) {
    // A failure leaves the sleeper to its timeout: waits are always bounded.
    futex(word, libc::FUTEX_WAKE, 1, None);
}

/// The raw system call. Returns its result (`-1` with `errno` set on failure).
fn futex(word: &AtomicU32, op: libc::c_int, val: u32, timeout: Option<&libc::timespec>) -> libc::c_long {
    let timeout_ptr = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-byte-aligned atomic borrowed for the duration of
    // the call; FUTEX_WAIT only reads it atomically and FUTEX_WAKE only uses its
    // address as a key, so no Rust aliasing rule is broken. `timeout_ptr` is null
    // or points to a timespec borrowed for the call. FUTEX_WAIT and FUTEX_WAKE
    // ignore the remaining two arguments (uaddr2, val3).
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, val, timeout_ptr, std::ptr::null::<u32>(), 0u32) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_wait_on_a_changed_word_returns_at_once() {
        let word = AtomicU32::new(1);
        assert_eq!(wait(&word, 2, Duration::from_secs(5)), WaitEnd::Changed);
    }

    #[test]
    fn a_wait_times_out_not_before_its_timeout() {
        let word = AtomicU32::new(7);
        let started = Instant::now();
        assert_eq!(wait(&word, 7, Duration::from_millis(20)), WaitEnd::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wake_one_ends_a_wait() {
        let word = Arc::new(AtomicU32::new(0));
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
