//! Repairing the highest fence a store has accepted.

use crate::format::OFF_HIGHEST_FENCE;
use crate::sync::Ordering;
use crate::{Error, ExclusiveGuard, LockScope, Result, Store, WriteCoordinator};

impl Store {
    /// Sets the highest fence the store has accepted to `guard`'s own fence,
    /// even if that is lower, and returns the value it replaced.
    ///
    /// This is the repair of a highest-fence word that is damaged (far above
    /// any fence its coordinator ever issued), which would otherwise make that
    /// coordinator refuse or fence off every holder. `guard` must hold the
    /// whole store, carry a fence, still be valid, and come from a coordinator
    /// this store accepts; afterwards every holder with a lower fence is
    /// refused ([`Error::StaleFence`]) as before. Fencing coordinators wrap the
    /// whole procedure: `RedisCoordinator::repair_fence` in maph-coord-redis.
    pub fn reset_highest_fence<C: WriteCoordinator + ?Sized>(&self, guard: &ExclusiveGuard<'_, C>) -> Result<u64> {
        self.check_coordinator(guard.coordinator())?;
        let (LockScope::Whole, Some(fence)) = (guard.scope(), guard.fence()) else {
            return Err(Error::InvalidConfig(
                "resetting the highest fence needs a guard over the whole store that carries a fence".into(),
            ));
        };
        guard.validate()?;
        // AcqRel, as the writers' fetch_max: a commit that raised the word
        // before this swap is seen by it, and one after it sees the new value.
        Ok(self.region.word(OFF_HIGHEST_FENCE).swap(fence, Ordering::AcqRel))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicU64;

    use crate::{Access, Config, ContentionCounters, Mode, Strategy, Ticket, Wait};

    use super::*;

    /// Hands out the fence it is told to (one holder at a time is the test's job).
    struct Fences {
        next: AtomicU64,
        counters: ContentionCounters,
    }

    impl WriteCoordinator for Fences {
        fn strategy(&self) -> Strategy {
            Strategy::new("fence-test")
        }
        fn acquire(&self, access: Access, scope: LockScope, _wait: Wait) -> Result<Option<Ticket>> {
            Ok(Some(Ticket { fence: Some(self.next.load(Ordering::Relaxed)), ..Ticket::new(access, scope) }))
        }
        unsafe fn release(&self, _ticket: Ticket) {}
        fn counters(&self) -> &ContentionCounters {
            &self.counters
        }
    }

    #[test]
    fn a_damaged_highest_fence_is_reset_to_the_guards_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fence.maph");
        Store::create(&path, Config::new(16).strategy(Strategy::new("fence-test"))).unwrap();
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        let fences = Fences { next: AtomicU64::new(7), counters: ContentionCounters::new() };
        store.set(&fences, b"k", b"v").unwrap();
        // A flipped high bit: every honest fence is now stale.
        store.region.word(OFF_HIGHEST_FENCE).fetch_or(1 << 62, Ordering::Relaxed);
        fences.next.store(8, Ordering::Relaxed);
        assert!(matches!(store.set(&fences, b"k", b"w"), Err(Error::StaleFence { presented: 8, .. })));

        let window = fences.lock_exclusive(store.scope_of(b"k")).unwrap();
        assert!(matches!(store.reset_highest_fence(&window), Err(Error::InvalidConfig(_))), "a window is not enough");
        drop(window);
        let whole = fences.lock_exclusive(LockScope::Whole).unwrap();
        assert_eq!(store.reset_highest_fence(&whole).unwrap(), (1 << 62) | 7);
        store.write_with(&whole, |tx| tx.set(b"k", b"w")).unwrap();
        drop(whole);
        assert_eq!(store.highest_fence(), 8);
        fences.next.store(7, Ordering::Relaxed);
        assert!(matches!(store.set(&fences, b"k", b"stale"), Err(Error::StaleFence { presented: 7, highest: 8 })));
        let read_only = Store::open(&path, Mode::ReadOnly).unwrap();
        fences.next.store(9, Ordering::Relaxed);
        let guard = fences.lock_exclusive(LockScope::Whole).unwrap();
        assert!(matches!(read_only.reset_highest_fence(&guard), Err(Error::ReadOnly)));
    }
}
