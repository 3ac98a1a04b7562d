//! One stripe's lock word: the cross-process half of the lock.
//!
//! The word is 64 bits. Its low half is a three-state futex mutex in the
//! manner of Drepper's "Futexes Are Tricky" (free / held / held with waiters),
//! with the holder's pid in place of the "held" constant so that a waiter can
//! tell whether the holder still lives, and an epoch so that a takeover
//! changes the word even when the new holder happens to have the dead one's
//! pid. Its high half is the holder's start time (low 32 bits of
//! `/proc/<pid>/stat` field 22), written by the same compare-and-swap that
//! takes the word: a holder is never named without being described, so a
//! reused pid can always be told from the holder.
//!
//! Threads of one process compete for the word like processes do; a word
//! holding our own pid may be held by another of our threads, which a waiter
//! treats like any live holder (our process is alive).

use std::time::{Duration, Instant};

use crate::futex::{self, WaitEnd};
use crate::patience::{Patience, Turn};
use crate::sync::{spin_hint, AtomicU64, Ordering};

#[cfg(not(loom))]
use crate::identity::holder_is_dead;
#[cfg(loom)]
use model::holder_is_dead;

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
/// (Not under loom: there a spin is a yield, after which loom runs the holder
/// to its release, so a waiter that spun would never check a live holder.)
const SPINS: u32 = 100;

/// The low half of a lock word (pid, waiters bit, epoch): the futex word.
#[inline]
pub fn state_of(word: u64) -> u32 {
    word as u32
}

/// The high half of a lock word: the holder's start tag (`0` when free).
#[inline]
pub fn start_of(word: u64) -> u32 {
    (word >> 32) as u32
}

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

impl Me {
    /// The lock word naming us as holder, with low half `state`.
    #[inline]
    fn holding(&self, state: u32) -> u64 {
        (u64::from(self.start_tag) << 32) | u64::from(state)
    }
}

/// The lock word of one stripe, in the shared mapping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StripeLock<'r> {
    pub word: &'r AtomicU64,
}

impl StripeLock<'_> {
    /// One attempt: takes the word if it is free. One load and one
    /// compare-and-swap.
    #[inline]
    pub fn try_lock(&self, me: &Me) -> bool {
        // Relaxed: only a guess at the epoch for the CAS below; the CAS checks it.
        let seen = self.word.load(Ordering::Relaxed);
        let state = state_of(seen);
        state & PID_MASK == 0
            // Acquire on success: pairs with the previous holder's Release in
            // `unlock`, so its slot writes are visible before we touch anything
            // the lock covers.
            && self
                .word
                .compare_exchange(seen, me.holding(state | me.pid), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes the word, waiting until `deadline` (`None`: as long as it takes).
    /// A holder found dead is taken over. Returns `None` at the deadline.
    pub fn lock(&self, me: &Me, deadline: Option<Instant>) -> Option<Taken> {
        if self.try_lock(me) {
            return Some(Taken::Free);
        }
        let spins = if cfg!(loom) { 0 } else { SPINS };
        for _ in 0..spins {
            spin_hint();
            if state_of(self.word.load(Ordering::Relaxed)) & PID_MASK == 0 && self.try_lock(me) {
                return Some(Taken::Free);
            }
        }
        let mut patience = Patience::new(deadline, me.detection_period);
        loop {
            let seen = self.word.load(Ordering::Relaxed);
            let state = state_of(seen);
            if state & PID_MASK == 0 {
                // We may have been woken while others still sleep: take the word
                // *with* the waiters bit, so that our release wakes the next one
                // (the price is one spurious wake when nobody is left).
                let mine = me.holding(state | me.pid | WAITERS);
                if self.word.compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    return Some(Taken::Free);
                }
                continue;
            }
            let nap = match patience.next_turn() {
                Turn::GiveUp => return None,
                Turn::Sleep(nap) => nap,
                // The holder has kept the word for a whole detection period
                // while we waited: make sure it still lives.
                Turn::CheckHolder => {
                    if holder_is_dead(state & PID_MASK, start_of(seen)) {
                        // The new value differs from `seen` in epoch (and usually
                        // pid), so of all the waiters that judged `seen` dead
                        // exactly one CAS succeeds. Acquire: what the dead holder
                        // wrote (whatever it got to) is visible to us and our repair.
                        let mine = me.holding((state & EPOCH_MASK).wrapping_add(EPOCH_ONE) | me.pid | WAITERS);
                        if self.word.compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                            return Some(Taken::TookOver);
                        }
                    }
                    continue;
                }
            };
            // Announce that we will sleep. Relaxed: the bit publishes no data;
            // the futex call re-checks the word atomically.
            if state & WAITERS == 0
                && self
                    .word
                    .compare_exchange(seen, seen | u64::from(WAITERS), Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            if futex::wait(self.word, state | WAITERS, nap) == WaitEnd::Failed {
                // No futex (a seccomp filter, say): degrade to polling, not spinning.
                std::thread::sleep(nap.min(Duration::from_millis(1)));
            }
        }
    }

    /// Releases the word (held by us) and wakes one sleeper if any announced
    /// itself. Uncontended: one load and one swap, no system call.
    #[inline]
    pub fn unlock(&self) {
        // Relaxed: we hold the word, so only the waiters bit can change under
        // us; the epoch we read is ours.
        let epoch = state_of(self.word.load(Ordering::Relaxed)) & EPOCH_MASK;
        // Release: everything we wrote under the lock (slots, the repair-pending
        // flag) happens-before the next holder's Acquire CAS. A swap, not a
        // store, so that we learn of waiters atomically. The start tag goes
        // with the pid: a free word describes nobody.
        let old = self.word.swap(u64::from(epoch), Ordering::Release);
        debug_assert_eq!(state_of(old) & EPOCH_MASK, epoch, "the epoch changed under a live holder");
        if state_of(old) & WAITERS != 0 {
            futex::wake_one(self.word);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn me() -> Me {
        let id = crate::ProcessIdentity::current().unwrap();
        Me { pid: id.pid(), start_tag: id.start_tag(), detection_period: Duration::from_millis(5) }
    }

    #[test]
    fn lock_names_and_describes_the_holder_and_unlock_keeps_the_epoch() {
        let word = AtomicU64::new(u64::from(3 * EPOCH_ONE));
        let w = StripeLock { word: &word };
        let me = me();
        assert!(w.try_lock(&me));
        let held = word.load(Ordering::Relaxed);
        assert_eq!(state_of(held), (3 * EPOCH_ONE) | me.pid);
        assert_eq!(start_of(held), me.start_tag);
        assert!(!w.try_lock(&me), "the word is held");
        w.unlock();
        assert_eq!(word.load(Ordering::Relaxed), u64::from(3 * EPOCH_ONE), "free, same epoch, nobody described");
    }

    #[test]
    fn a_dead_holder_is_taken_over_with_a_new_epoch() {
        let me = me();
        // A holder with our pid but another start time: a reused pid.
        let dead = (u64::from(me.start_tag.wrapping_add(7)) << 32) | u64::from((5 * EPOCH_ONE) | me.pid);
        let word = AtomicU64::new(dead);
        let w = StripeLock { word: &word };
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(w.lock(&me, Some(deadline)), Some(Taken::TookOver));
        let now = word.load(Ordering::Relaxed);
        assert_eq!(state_of(now), (6 * EPOCH_ONE) | WAITERS | me.pid);
        assert_eq!(start_of(now), me.start_tag);
    }

    #[test]
    fn a_live_holder_is_waited_for_until_the_deadline() {
        let word = AtomicU64::new(0);
        let w = StripeLock { word: &word };
        let me = me();
        // Held by us (alive, right start time), as another thread's acquisition would be.
        assert!(w.try_lock(&me));
        let started = Instant::now();
        let deadline = started + Duration::from_millis(40);
        assert_eq!(w.lock(&me, Some(deadline)), None);
        assert!(Instant::now() >= deadline);
        assert_ne!(state_of(word.load(Ordering::Relaxed)) & WAITERS, 0, "the waiter announced itself");
    }
}

/// Model checking of the lock word with loom: threads stand for processes
/// (each with its own pid), the futex is modelled as in `futex.rs`, and a
/// dead holder is a pid the model declares dead. Run with
/// `RUSTFLAGS="--cfg loom" cargo test -p maph-lock-futex --lib --release loom`.
#[cfg(loom)]
pub(crate) mod model {
    /// In the models, pids from here up name processes that have died (they
    /// appear only in words planted as a killed holder would leave them).
    pub(crate) const FIRST_DEAD_PID: u32 = 1000;

    /// The model's liveness check: what `/proc` would say.
    pub(crate) fn holder_is_dead(pid: u32, _recorded_start: u32) -> bool {
        pid >= FIRST_DEAD_PID
    }

    /// Runs `model` under loom, every interleaving, and prints how many there
    /// were (the figure `docs/RELIABILITY.md` quotes).
    #[cfg(test)]
    pub(crate) fn explore(name: &str, model: impl Fn() + Sync + Send + 'static) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        loom::model(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            model();
        });
        println!("{name}: {} interleavings explored", runs.load(Ordering::Relaxed));
    }

    #[cfg(test)]
    mod tests {
        use super::super::*;
        use super::{explore, FIRST_DEAD_PID};
        use loom::cell::UnsafeCell;
        use loom::sync::Arc;

        /// A word and the data it guards: a plain cell that loom reports if
        /// two threads ever access it at once (two holders).
        struct Guarded {
            word: AtomicU64,
            data: UnsafeCell<u64>,
        }

        fn process(pid: u32) -> Me {
            Me { pid, start_tag: 100 + pid, detection_period: Duration::ZERO }
        }

        /// One critical section: read-modify-write of the guarded cell.
        fn increment(g: &Guarded) {
            g.data.with_mut(|p| {
                // SAFETY: loom checks that no other thread accesses the cell
                // concurrently; that is exactly what the model verifies.
                unsafe { *p += 1 }
            });
        }

        fn run_writers(name: &str, initial: u64, pids: &'static [u32], expect_takeovers: usize) {
            explore(name, move || {
                let g = Arc::new(Guarded { word: AtomicU64::new(initial), data: UnsafeCell::new(0) });
                let handles: Vec<_> = pids
                    .iter()
                    .map(|&pid| {
                        let g = g.clone();
                        loom::thread::spawn(move || {
                            let lock = StripeLock { word: &g.word };
                            let taken = lock.lock(&process(pid), None).expect("no deadline");
                            increment(&g);
                            lock.unlock();
                            taken
                        })
                    })
                    .collect();
                let taken: Vec<Taken> = handles.into_iter().map(|h| h.join().unwrap()).collect();
                assert_eq!(taken.iter().filter(|&&t| t == Taken::TookOver).count(), expect_takeovers);
                // Every critical section ran, one at a time, and the word is free.
                assert_eq!(g.data.with(|p| unsafe { *p }), pids.len() as u64);
                let last = g.word.load(Ordering::Relaxed);
                assert_eq!(state_of(last) & PID_MASK, 0, "the word is left free");
                assert_eq!(start_of(last), 0, "a free word describes nobody");
            });
        }

        /// Two processes, a free word: never two holders (the cell would race),
        /// both get in, the word ends free.
        #[test]
        fn loom_two_processes_exclude_each_other() {
            run_writers("two processes", 0, &[1, 2], 0);
        }

        /// A holder died holding the word: two waiters judge it dead, exactly
        /// one takes it over (with a new epoch), and the two still exclude each
        /// other.
        #[test]
        fn loom_a_dead_holder_is_taken_over_exactly_once() {
            let dead = (u64::from(7u32) << 32) | u64::from(EPOCH_ONE | FIRST_DEAD_PID);
            run_writers("a dead holder", dead, &[1, 2], 1);
        }

        /// A live holder is never taken over: the waiter's liveness checks all
        /// say alive, and it gets the word only after the release.
        #[test]
        fn loom_a_live_holder_is_waited_for() {
            explore("a live holder", || {
                let g = Arc::new(Guarded { word: AtomicU64::new(0), data: UnsafeCell::new(0) });
                let holder = StripeLock { word: &g.word };
                assert!(holder.try_lock(&process(1)));
                let waiter = {
                    let g = g.clone();
                    loom::thread::spawn(move || {
                        let lock = StripeLock { word: &g.word };
                        let taken = lock.lock(&process(2), None).unwrap();
                        increment(&g);
                        lock.unlock();
                        taken
                    })
                };
                increment(&g);
                holder.unlock();
                assert_eq!(waiter.join().unwrap(), Taken::Free, "a live holder was taken over");
                assert_eq!(g.data.with(|p| unsafe { *p }), 2);
                assert_eq!(state_of(g.word.load(Ordering::Relaxed)) & EPOCH_MASK, 0, "no takeover, no new epoch");
            });
        }
    }
}
