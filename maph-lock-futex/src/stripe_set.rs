//! A store's stripes, taken and given back as bit masks (bit `s` = stripe `s`).
//!
//! A write takes every stripe its scope overlaps. Taking them in ascending
//! order makes waiting acyclic: a writer only ever waits for a stripe above
//! every stripe it holds, so no two writers wait for each other, and nobody
//! deadlocks.

use std::ops::Deref;
use std::time::Instant;

use maph_core::{Result, Wait};

use crate::stripe::{Liveness, Me, StripeLock, Taken};

/// The lock words of every stripe of one store.
#[derive(Debug)]
pub(crate) struct StripeSet<'r> {
    stripes: Box<[StripeLock<'r>]>,
}

impl<'r> StripeSet<'r> {
    pub fn new(stripes: Box<[StripeLock<'r>]>) -> StripeSet<'r> {
        StripeSet { stripes }
    }

    /// Takes the word of every stripe in `mask`, in ascending order, waiting as
    /// `wait` allows and asking `liveness` about holders that keep a stripe for
    /// long. `took_over(s)` is called, while stripe `s` is held, for each stripe
    /// taken over from a dead holder. If one cannot be taken in time (or its
    /// holder cannot be judged), gives back those already taken and returns
    /// `Ok(false)` (or the error).
    pub fn take(
        &self,
        mask: u64,
        me: &Me,
        liveness: &impl Liveness,
        wait: Wait,
        mut took_over: impl FnMut(usize),
    ) -> Result<bool> {
        let deadline: Option<Instant> = match wait {
            Wait::Until(d) => Some(d),
            Wait::Never | Wait::Forever => None,
        };
        let mut held = 0u64;
        let mut rest = mask;
        while rest != 0 {
            let s = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let stripe = &self.stripes[s];
            let taken = match wait {
                Wait::Never => Ok(stripe.try_lock(me).then_some(Taken::Free)),
                Wait::Until(_) | Wait::Forever => stripe.lock(me, liveness, deadline),
            };
            match taken {
                Ok(Some(Taken::Free)) => {}
                Ok(Some(Taken::TookOver)) => took_over(s),
                Ok(None) => {
                    self.give_back(held);
                    return Ok(false);
                }
                Err(e) => {
                    self.give_back(held);
                    return Err(e);
                }
            }
            held |= 1 << s;
        }
        Ok(true)
    }

    /// Releases the word of every stripe in `mask` (all held by the caller),
    /// in descending order.
    #[inline]
    pub fn give_back(&self, mask: u64) {
        let mut rest = mask;
        while rest != 0 {
            let s = 63 - rest.leading_zeros();
            rest &= !(1 << s);
            self.stripes[s as usize].unlock();
        }
    }
}

/// One stripe's lock by index, for the single-stripe fast path.
impl<'r> Deref for StripeSet<'r> {
    type Target = [StripeLock<'r>];

    fn deref(&self) -> &[StripeLock<'r>] {
        &self.stripes
    }
}

/// Model checking of multi-stripe acquisition with loom (see `stripe.rs` for
/// how processes, the futex and dead holders are modelled). Run with
/// `RUSTFLAGS="--cfg loom" cargo test -p maph-lock-futex --lib --release loom`.
#[cfg(all(test, loom))]
mod model {
    use super::*;
    use crate::stripe::model::{explore, Oracle, FIRST_DEAD_PID};
    use crate::stripe::{state_of, PID_MASK};
    use crate::sync::{AtomicU64, Ordering};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use std::time::Duration;

    /// Two stripe words and the data each guards.
    struct Two {
        words: [AtomicU64; 2],
        data: [UnsafeCell<u64>; 2],
    }

    impl Two {
        fn new(word0: u64, word1: u64) -> Two {
            Two {
                words: [AtomicU64::new(word0), AtomicU64::new(word1)],
                data: [UnsafeCell::new(0), UnsafeCell::new(0)],
            }
        }

        fn set(&self) -> StripeSet<'_> {
            StripeSet::new(self.words.iter().map(|word| StripeLock { word }).collect())
        }
    }

    /// Takes `mask`, increments the cell of every stripe in it (loom reports
    /// two threads in one cell at once), gives `mask` back. Returns the
    /// stripes taken over.
    fn write(two: &Two, pid: u32, mask: u64) -> u64 {
        let me = Me { pid, start_tag: 100 + pid, detection_period: Duration::ZERO };
        let set = two.set();
        let mut took_over = 0;
        assert!(set.take(mask, &me, &Oracle, Wait::Forever, |s| took_over |= 1 << s).unwrap());
        for s in 0..2 {
            if mask & (1 << s) != 0 {
                // SAFETY: loom checks that no other thread accesses the cell
                // concurrently; that is what the model verifies.
                two.data[s].with_mut(|p| unsafe { *p += 1 });
            }
        }
        set.give_back(mask);
        took_over
    }

    fn check(name: &str, initial: [u64; 2], writers: &'static [(u32, u64)], expect_takeovers: [u32; 2]) {
        explore(name, move || {
            let two = Arc::new(Two::new(initial[0], initial[1]));
            let handles: Vec<_> = writers
                .iter()
                .map(|&(pid, mask)| {
                    let two = two.clone();
                    loom::thread::spawn(move || write(&two, pid, mask))
                })
                .collect();
            let took: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            for (s, &expected_takeovers) in expect_takeovers.iter().enumerate() {
                let writes = writers.iter().filter(|&&(_, mask)| mask & (1 << s) != 0).count() as u64;
                // SAFETY: every writer has been joined.
                assert_eq!(two.data[s].with(|p| unsafe { *p }), writes, "stripe {s}: a write was lost");
                let takeovers = took.iter().filter(|&&t| t & (1 << s) != 0).count() as u32;
                assert_eq!(takeovers, expected_takeovers, "stripe {s}");
                assert_eq!(state_of(two.words[s].load(Ordering::Relaxed)) & PID_MASK, 0, "stripe {s} left held");
            }
        });
    }

    /// A writer of both stripes (a window across a boundary) and a writer of
    /// the upper one: never two holders of a stripe, and both finish. (Taking
    /// only the lowest stripe of a mask makes loom report the race at once.)
    #[test]
    fn loom_overlapping_windows_exclude_each_other() {
        check("overlapping windows", [0, 0], &[(1, 0b11), (2, 0b10)], [0, 0]);
    }

    /// The upper stripe's holder died: of two writers that both need it, one
    /// takes it over, once.
    #[test]
    fn loom_a_dead_holder_of_one_stripe_is_taken_over_once() {
        let dead = (7 << 32) | u64::from(FIRST_DEAD_PID);
        check("a dead holder of one stripe", [0, dead], &[(1, 0b11), (2, 0b10)], [0, 1]);
    }
}
