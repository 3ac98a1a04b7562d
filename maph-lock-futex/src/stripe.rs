//! One stripe's lock word: the cross-process half of the lock.
//!
//! The word is a three-state futex mutex in the manner of Drepper's "Futexes
//! Are Tricky" (free / held / held with waiters), with the holder's pid in
//! place of the "held" constant so that a waiter can tell whether the holder
//! still lives, and an epoch so that a takeover changes the word even when the
//! new holder happens to have the dead one's pid.
//!
//! Threads of one process compete for the word like processes do; a word
//! holding our own pid may be held by another of our threads, which a waiter
//! treats like any live holder (our process is alive).

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::futex::{self, WaitEnd};
use crate::identity::holder_is_dead;
use crate::region::StripeWords;

/// Bits 0..22 of a lock word: the holder's pid (`0` = free). Linux pids are
/// below `PID_MAX_LIMIT` = 2²².
pub const PID_MASK: u32 = (1 << 22) - 1;
/// Bit 22: someone may be sleeping on the word; the releaser must wake one.
pub const WAITERS: u32 = 1 << 22;
/// Bits 23..32: the epoch, advanced by every takeover and kept by release.
pub const EPOCH_MASK: u32 = !(PID_MASK | WAITERS);
const EPOCH_ONE: u32 = 1 << 23;

/// Spins (with a CPU pause) before sleeping: a write holds the lock for about a
/// microsecond, often less than the two system calls sleeping would cost.
const SPINS: u32 = 100;

/// How an acquisition succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The word was free.
    Free,
    /// The holder was dead and we took the word over from it.
    TookOver,
}

/// Who is acquiring: our pid and start tag, and how often to suspect the holder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Me {
    pub pid: u32,
    pub start_tag: u32,
    pub detection_period: Duration,
}

impl StripeWords<'_> {
    /// One attempt: takes the word if it is free. The uncontended path is one
    /// load and one compare-and-swap, then four plain stores to a cache line
    /// the swap has just brought in.
    #[inline]
    pub fn try_lock(&self, me: &Me) -> bool {
        // Relaxed: only a guess at the epoch for the CAS below; the CAS checks it.
        let seen = self.lock.load(Ordering::Relaxed);
        if seen & PID_MASK == 0
            // Acquire on success: pairs with the previous holder's Release in
            // `unlock`, so its slot writes (and its record invalidation) are
            // visible before we touch anything the lock covers.
            && self.lock.compare_exchange(seen, seen | me.pid, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            self.publish(seen | me.pid, me.start_tag);
            return true;
        }
        false
    }

    /// Takes the word, waiting until `deadline` (`None`: as long as it takes).
    /// A holder found dead is taken over. Returns `None` at the deadline.
    pub fn lock(&self, me: &Me, deadline: Option<Instant>) -> Option<Taken> {
        if self.try_lock(me) {
            return Some(Taken::Free);
        }
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if self.lock.load(Ordering::Relaxed) & PID_MASK == 0 && self.try_lock(me) {
                return Some(Taken::Free);
            }
        }
        let mut last_check = Instant::now();
        // The holder (pid and epoch) we first saw, and when: it lived then.
        let mut held: Option<(u32, Option<u64>)> = None;
        loop {
            let seen = self.lock.load(Ordering::Relaxed);
            if held.is_none_or(|(value, _)| value != seen & !WAITERS) {
                held = Some((seen & !WAITERS, crate::identity::boot_ticks_now()));
            }
            if seen & PID_MASK == 0 {
                // We may have been woken while others still sleep: take the word
                // *with* the waiters bit, so that our release wakes the next one
                // (the price is one spurious wake when nobody is left).
                let mine = seen | me.pid | WAITERS;
                if self.lock.compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    self.publish(mine, me.start_tag);
                    return Some(Taken::Free);
                }
                continue;
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if now >= d => return None,
                Some(d) => d - now,
                None => Duration::MAX,
            };
            // The holder has kept the word for a whole detection period while we
            // waited: make sure it still lives.
            let since_check = now - last_check;
            if since_check >= me.detection_period {
                last_check = now;
                if self.holder_died(seen, held.and_then(|(_, since)| since)) {
                    // The new value differs from `seen` in epoch (and usually
                    // pid), so of all the waiters that judged `seen` dead exactly
                    // one CAS succeeds. Acquire: what the dead holder wrote
                    // (whatever it got to) is visible to us and our repair.
                    let mine = (seen & EPOCH_MASK).wrapping_add(EPOCH_ONE) | me.pid | WAITERS;
                    if self.lock.compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                        self.publish(mine, me.start_tag);
                        return Some(Taken::TookOver);
                    }
                }
                continue;
            }
            // Announce that we will sleep. Relaxed: the bit publishes no data;
            // the futex syscall re-checks the word atomically.
            if seen & WAITERS == 0
                && self.lock.compare_exchange(seen, seen | WAITERS, Ordering::Relaxed, Ordering::Relaxed).is_err()
            {
                continue;
            }
            let nap = left.min(me.detection_period - since_check);
            if futex::wait(self.lock, seen | WAITERS, nap) == WaitEnd::Failed {
                // No futex (a seccomp filter, say): degrade to polling, not spinning.
                std::thread::sleep(nap.min(Duration::from_millis(1)));
            }
        }
    }

    /// Releases the word (held by us) and wakes one sleeper if any announced itself.
    #[inline]
    pub fn unlock(&self) {
        self.invalidate_record();
        // Relaxed: we hold the word, so only the waiters bit can change under us;
        // the epoch we read is ours.
        let epoch = self.lock.load(Ordering::Relaxed) & EPOCH_MASK;
        // Release: everything we wrote under the lock (slots, record
        // invalidation, repair-pending flag) happens-before the next holder's
        // Acquire CAS. A swap, not a store, so we learn of waiters atomically.
        let old = self.lock.swap(epoch, Ordering::Release);
        debug_assert_eq!(old & EPOCH_MASK, epoch, "the epoch changed under a live holder");
        if old & WAITERS != 0 {
            futex::wake_one(self.lock);
        }
    }

    /// Publishes who holds the word (`value`, less the waiters bit) and since
    /// when, under the record's sequence counter: a small seqlock whose only
    /// writer is the holder.
    #[inline]
    fn publish(&self, value: u32, start_tag: u32) {
        // Relaxed: we are the record's only writer (we hold the word).
        let mut seq = self.seq.load(Ordering::Relaxed);
        if seq & 1 == 0 {
            // Only after a takeover: the dead holder's record is still valid.
            // Make it odd first; the Release fence orders that before the
            // new contents, so a reader never pairs an even sequence with them.
            seq = seq.wrapping_add(1);
            self.seq.store(seq, Ordering::Relaxed);
            fence(Ordering::Release);
        }
        self.tag.store(value & !WAITERS, Ordering::Relaxed);
        self.start.store(start_tag, Ordering::Relaxed);
        // Release: a reader that sees the even sequence (Acquire) sees the record.
        self.seq.store(seq.wrapping_add(1), Ordering::Release);
    }

    /// Marks the record as describing nobody, before the word is released: a
    /// later holder with our pid and epoch (a reused pid) must never be judged
    /// by our start time.
    #[inline]
    fn invalidate_record(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        if seq & 1 == 0 {
            // Relaxed: ordered before the word's release by its Release swap.
            self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// The start tag recorded for the holder of `seen`, if the record is valid
    /// and is that holder's.
    pub fn recorded_start(&self, seen: u32) -> Option<u32> {
        // Acquire: pairs with the Release store that made the sequence even.
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let tag = self.tag.load(Ordering::Relaxed);
        let start = self.start.load(Ordering::Relaxed);
        // Acquire fence: the loads above happen before the re-check below, so a
        // record rewritten meanwhile shows as a changed sequence.
        fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        (before == after && tag == seen & !WAITERS).then_some(start)
    }

    /// Whether the holder named by `seen` is dead (see [`holder_is_dead`]).
    fn holder_died(&self, seen: u32, held_since: Option<u64>) -> bool {
        holder_is_dead(seen & PID_MASK, self.recorded_start(seen), held_since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn words(buf: &[AtomicU32; 4]) -> StripeWords<'_> {
        StripeWords { lock: &buf[0], seq: &buf[1], tag: &buf[2], start: &buf[3] }
    }

    fn me() -> Me {
        let id = crate::ProcessIdentity::current().unwrap();
        Me { pid: id.pid(), start_tag: id.start_tag(), detection_period: Duration::from_millis(5) }
    }

    #[test]
    fn lock_records_the_holder_and_unlock_keeps_the_epoch() {
        let buf = Default::default();
        let w = words(&buf);
        let me = me();
        w.lock.store(3 * EPOCH_ONE, Ordering::Relaxed);
        assert!(w.try_lock(&me));
        assert_eq!(w.lock.load(Ordering::Relaxed), (3 * EPOCH_ONE) | me.pid);
        assert_eq!(w.recorded_start((3 * EPOCH_ONE) | me.pid), Some(me.start_tag));
        assert!(!w.try_lock(&me), "the word is held");
        w.unlock();
        assert_eq!(w.lock.load(Ordering::Relaxed), 3 * EPOCH_ONE);
        assert_eq!(w.recorded_start((3 * EPOCH_ONE) | me.pid), None, "a released record describes nobody");
    }

    #[test]
    fn a_record_of_another_holder_is_not_used() {
        let buf = Default::default();
        let w = words(&buf);
        let me = me();
        assert!(w.try_lock(&me));
        let other = EPOCH_ONE | me.pid; // same pid, another epoch: after a takeover
        assert_eq!(w.recorded_start(other), None);
    }

    #[test]
    fn a_dead_holder_is_taken_over_with_a_new_epoch() {
        let buf = Default::default();
        let w = words(&buf);
        let me = me();
        // A holder with our pid but another start time: a reused pid.
        let dead = (5 * EPOCH_ONE) | me.pid;
        w.lock.store(dead, Ordering::Relaxed);
        w.seq.store(2, Ordering::Relaxed);
        w.tag.store(dead, Ordering::Relaxed);
        w.start.store(me.start_tag.wrapping_add(7), Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(w.lock(&me, Some(deadline)), Some(Taken::TookOver));
        let now = w.lock.load(Ordering::Relaxed);
        assert_eq!(now, (6 * EPOCH_ONE) | WAITERS | me.pid);
        assert_eq!(w.recorded_start(now), Some(me.start_tag));
        assert_eq!(w.seq.load(Ordering::Relaxed) & 1, 0);
    }

    #[test]
    fn a_live_holder_is_waited_for_until_the_deadline() {
        let buf = Default::default();
        let w = words(&buf);
        let me = me();
        // Held by us (alive, right start time), as another thread's acquisition would be.
        assert!(w.try_lock(&me));
        let started = Instant::now();
        let deadline = started + Duration::from_millis(40);
        assert_eq!(w.lock(&me, Some(deadline)), None);
        assert!(Instant::now() >= deadline);
        assert_ne!(w.lock.load(Ordering::Relaxed) & WAITERS, 0, "the waiter announced itself");
    }
}
