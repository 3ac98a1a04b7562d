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
//! naming our own process may be held by another of our threads, which a
//! waiter treats like any live holder (our process is alive).
//!
//! Whether a holder still lives is not this module's business: a waiter asks
//! a [`Liveness`] (the coordinator's `Attachment`, or the models' oracle).

use std::time::{Duration, Instant};

use maph_core::Result;

use crate::futex::{self, WaitEnd};
use crate::patience::{Patience, Turn};
use crate::sync::{spin_hint, AtomicU64, Ordering};

/// Tells a waiter whether the holder a lock word names can still release it.
pub(crate) trait Liveness {
    /// Whether the process `pid` with start tag `start_tag` can no longer
    /// release a word it holds. `Err` if that cannot be told: the waiter then
    /// gives up with the error rather than wait on a guess. Never asked about
    /// the waiter's own process (see [`StripeLock::lock`]).
    fn holder_is_dead(&self, pid: u32, start_tag: u32) -> Result<bool>;
}

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
    /// A holder that `liveness` finds dead is taken over; one named by our own
    /// pid and start tag is never suspected (our process is alive: another of
    /// our threads holds it). Returns `Ok(None)` at the deadline, and the
    /// liveness check's error if it could not tell.
    pub fn lock(&self, me: &Me, liveness: &impl Liveness, deadline: Option<Instant>) -> Result<Option<Taken>> {
        if self.try_lock(me) {
            return Ok(Some(Taken::Free));
        }
        let spins = if cfg!(loom) { 0 } else { SPINS };
        for _ in 0..spins {
            spin_hint();
            if state_of(self.word.load(Ordering::Relaxed)) & PID_MASK == 0 && self.try_lock(me) {
                return Ok(Some(Taken::Free));
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
                    return Ok(Some(Taken::Free));
                }
                continue;
            }
            let nap = match patience.next_turn() {
                Turn::GiveUp => return Ok(None),
                Turn::Sleep(nap) => nap,
                // The holder has kept the word for a whole detection period
                // while we waited: make sure it still lives.
                Turn::CheckHolder => {
                    let ours = state & PID_MASK == me.pid && start_of(seen) == me.start_tag;
                    if !ours && liveness.holder_is_dead(state & PID_MASK, start_of(seen))? && self.take_over(seen, me) {
                        return Ok(Some(Taken::TookOver));
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

    /// The takeover: one CAS from `seen`, a value whose holder was judged dead,
    /// to a value naming us, with the waiters bit (others may sleep on the word)
    /// and the next epoch. The new value differs from `seen` in epoch (and
    /// usually pid), so of all the processes that judged `seen` dead exactly one
    /// CAS succeeds. Acquire: what the dead holder wrote (whatever it got to) is
    /// visible to us and to the repair that follows.
    fn take_over(&self, seen: u64, me: &Me) -> bool {
        let mine = me.holding((state_of(seen) & EPOCH_MASK).wrapping_add(EPOCH_ONE) | me.pid | WAITERS);
        self.word.compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Frees the word if its holder is dead, without waiting: the takeover a
    /// waiter would make, followed at once by a release that wakes a sleeper.
    /// Returns whether it took the word over; the caller then owes the store a
    /// repair. Unlike [`lock`](Self::lock) it also asks `liveness` about words
    /// naming our own pid and start tag: a coordinator attaching uses it, when a
    /// word naming us can only be left by an earlier program of our process
    /// (one that `exec`ed while holding) or by a coordinator of ours that is
    /// gone, and `liveness` sees every other coordinator of ours.
    pub fn free_if_dead(&self, me: &Me, liveness: &impl Liveness, mark_repair: impl FnOnce()) -> Result<bool> {
        // Relaxed: the CAS below re-checks the exact value.
        let seen = self.word.load(Ordering::Relaxed);
        let state = state_of(seen);
        if state & PID_MASK == 0 || !liveness.holder_is_dead(state & PID_MASK, start_of(seen))? {
            return Ok(false);
        }
        if !self.take_over(seen, me) {
            return Ok(false); // someone else took it over, or it changed
        }
        // While we hold the word: the next holder sees the mark through our
        // release (Release) and its acquiring CAS (Acquire).
        mark_repair();
        self.unlock();
        Ok(true)
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

    /// Pids from 1000 up are dead; a pid of 999 cannot be told about.
    struct Oracle;

    impl Liveness for Oracle {
        fn holder_is_dead(&self, pid: u32, _start_tag: u32) -> Result<bool> {
            match pid {
                999 => Err(maph_core::Error::Coordination { strategy: crate::STRATEGY, detail: "cannot tell".into() }),
                pid => Ok(pid >= 1000),
            }
        }
    }

    fn me() -> Me {
        Me { pid: 7, start_tag: 70, detection_period: Duration::from_millis(5) }
    }

    fn held_by(pid: u32, start: u32, epoch: u32) -> u64 {
        (u64::from(start) << 32) | u64::from((epoch * EPOCH_ONE) | pid)
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
        let word = AtomicU64::new(held_by(1234, 99, 5));
        let w = StripeLock { word: &word };
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(w.lock(&me, &Oracle, Some(deadline)).unwrap(), Some(Taken::TookOver));
        let now = word.load(Ordering::Relaxed);
        assert_eq!(state_of(now), (6 * EPOCH_ONE) | WAITERS | me.pid);
        assert_eq!(start_of(now), me.start_tag);
    }

    #[test]
    fn a_live_holder_is_waited_for_until_the_deadline() {
        let word = AtomicU64::new(held_by(12, 120, 0));
        let w = StripeLock { word: &word };
        let deadline = Instant::now() + Duration::from_millis(40);
        assert_eq!(w.lock(&me(), &Oracle, Some(deadline)).unwrap(), None);
        assert!(Instant::now() >= deadline);
        assert_ne!(state_of(word.load(Ordering::Relaxed)) & WAITERS, 0, "the waiter announced itself");
    }

    #[test]
    fn our_own_process_is_never_suspected_by_a_waiter() {
        let me = me();
        // Dead by the oracle's rule, yet ours: another of our threads holds it.
        let mine = Me { pid: 1001, ..me };
        let word = AtomicU64::new(held_by(1001, mine.start_tag, 0));
        let w = StripeLock { word: &word };
        assert_eq!(w.lock(&mine, &Oracle, Some(Instant::now() + Duration::from_millis(30))).unwrap(), None);
        assert_eq!(state_of(word.load(Ordering::Relaxed)) & EPOCH_MASK, 0, "not taken over");
    }

    #[test]
    fn a_holder_that_cannot_be_judged_ends_the_wait_with_the_error() {
        let word = AtomicU64::new(held_by(999, 1, 0));
        let w = StripeLock { word: &word };
        let err = w.lock(&me(), &Oracle, None).unwrap_err();
        assert!(err.to_string().contains("cannot tell"), "{err}");
        assert_eq!(state_of(word.load(Ordering::Relaxed)) & PID_MASK, 999, "the holder keeps its word");
    }

    #[test]
    fn free_if_dead_frees_a_dead_word_only() {
        let me = me();
        let word = AtomicU64::new(held_by(1234, 99, 5));
        let w = StripeLock { word: &word };
        let mut marked = 0;
        assert!(w.free_if_dead(&me, &Oracle, || marked += 1).unwrap());
        assert_eq!((word.load(Ordering::Relaxed), marked), (u64::from(6 * EPOCH_ONE), 1), "free, next epoch");
        assert!(!w.free_if_dead(&me, &Oracle, || marked += 1).unwrap(), "a free word stays as it is");
        word.store(held_by(12, 120, 0), Ordering::Relaxed);
        assert!(!w.free_if_dead(&me, &Oracle, || marked += 1).unwrap(), "a live holder keeps its word");
        assert_eq!(marked, 1);
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

    /// The model's liveness check: pids from [`FIRST_DEAD_PID`] up are dead.
    pub(crate) struct Oracle;

    impl super::Liveness for Oracle {
        fn holder_is_dead(&self, pid: u32, _start_tag: u32) -> maph_core::Result<bool> {
            Ok(pid >= FIRST_DEAD_PID)
        }
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
        use super::{explore, Oracle, FIRST_DEAD_PID};
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
                            let taken = lock.lock(&process(pid), &Oracle, None).unwrap().expect("no deadline");
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

        /// Process 1 holds the word, writes and releases it, while process 2
        /// runs `waiter` on it (which releases whatever it takes, and returns
        /// how many writes it made). Returns the word's last value, after
        /// checking that the cell counts every write.
        fn beside_a_live_holder(waiter: impl FnOnce(&Guarded, StripeLock<'_>) -> u64 + Send + 'static) -> u64 {
            let g = Arc::new(Guarded { word: AtomicU64::new(0), data: UnsafeCell::new(0) });
            let holder = StripeLock { word: &g.word };
            assert!(holder.try_lock(&process(1)));
            let waiting = {
                let g = g.clone();
                loom::thread::spawn(move || waiter(&g, StripeLock { word: &g.word }))
            };
            increment(&g);
            holder.unlock();
            let waiter_wrote = waiting.join().unwrap();
            assert_eq!(g.data.with(|p| unsafe { *p }), 1 + waiter_wrote);
            g.word.load(Ordering::Relaxed)
        }

        /// A live holder is never taken over: the waiter's liveness checks all
        /// say alive, and it gets the word only after the release.
        #[test]
        fn loom_a_live_holder_is_waited_for() {
            explore("a live holder", || {
                let last = beside_a_live_holder(|g, lock| {
                    let taken = lock.lock(&process(2), &Oracle, None).unwrap().unwrap();
                    assert_eq!(taken, Taken::Free, "a live holder was taken over");
                    increment(g);
                    lock.unlock();
                    1
                });
                assert_eq!(state_of(last) & EPOCH_MASK, 0, "no takeover, no new epoch");
            });
        }

        /// A process attaching frees a dead holder's word (`free_if_dead`)
        /// while another waits on it: exactly one of them takes it over, the
        /// repair is marked whenever the attaching one did, and the two still
        /// exclude each other afterwards.
        #[test]
        fn loom_a_dead_word_is_freed_at_attach_or_taken_over_once() {
            explore("freed at attach", || {
                let dead = (u64::from(7u32) << 32) | u64::from(EPOCH_ONE | FIRST_DEAD_PID);
                let g = Arc::new(Guarded { word: AtomicU64::new(dead), data: UnsafeCell::new(0) });
                let marked = Arc::new(loom::sync::atomic::AtomicBool::new(false));
                let attacher = {
                    let (g, marked) = (g.clone(), marked.clone());
                    loom::thread::spawn(move || {
                        let lock = StripeLock { word: &g.word };
                        let me = process(1);
                        let freed = lock.free_if_dead(&me, &Oracle, || marked.store(true, Ordering::Relaxed)).unwrap();
                        let taken = lock.lock(&me, &Oracle, None).unwrap().unwrap();
                        increment(&g);
                        lock.unlock();
                        usize::from(freed) + usize::from(taken == Taken::TookOver)
                    })
                };
                let lock = StripeLock { word: &g.word };
                let taken = lock.lock(&process(2), &Oracle, None).unwrap().unwrap();
                increment(&g);
                lock.unlock();
                let by_attacher = attacher.join().unwrap();
                assert_eq!(by_attacher + usize::from(taken == Taken::TookOver), 1, "exactly one takeover");
                assert_eq!(g.data.with(|p| unsafe { *p }), 2);
                assert_eq!(state_of(g.word.load(Ordering::Relaxed)) & PID_MASK, 0, "the word is left free");
            });
        }

        /// A waiter whose liveness check fails gives up with the error and
        /// leaves the live holder's word alone.
        #[test]
        fn loom_a_failed_liveness_check_ends_the_wait_and_takes_nothing() {
            struct CannotTell;
            impl super::super::Liveness for CannotTell {
                fn holder_is_dead(&self, _pid: u32, _start_tag: u32) -> maph_core::Result<bool> {
                    Err(maph_core::Error::Coordination { strategy: crate::STRATEGY, detail: "no /proc".into() })
                }
            }
            explore("a failed liveness check", || {
                let last = beside_a_live_holder(|g, lock| match lock.lock(&process(2), &CannotTell, None) {
                    // The holder released before the check: a free word.
                    Ok(Some(taken)) => {
                        assert_eq!(taken, Taken::Free);
                        increment(g);
                        lock.unlock();
                        1
                    }
                    Ok(None) => unreachable!("no deadline"),
                    Err(_) => 0,
                });
                assert_eq!(state_of(last) & (PID_MASK | EPOCH_MASK), 0, "free, no takeover");
            });
        }
    }
}
