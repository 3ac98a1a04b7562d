//! Lease mode as a coordinator: hold the inner coordinator's whole-store lock
//! across many writes, giving it back every `per_lease` writes.
//!
//! This is how a lease is used (one acquisition, many `Store::write_with`
//! commits), expressed as a [`WriteCoordinator`] so the lease row runs through
//! exactly the same workload code as every other row. Giving the lock back
//! every `per_lease` writes lets other processes in during contention runs; a
//! lease held for a whole run would just serialise the runs' processes.

use std::sync::Mutex;

use maph_core::{
    Access, ContentionCounters, Error, LocalGate, LockScope, Result, StoreId, Strategy, Ticket, Wait, WriteCoordinator,
};

/// `inner`'s whole-store lock, held across `per_lease` writes at a time.
///
/// ```
/// use maph_bench::Leased;
/// use maph_core::{Config, Mode, Store, Strategy, Uncoordinated, WriteCoordinator};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("lease.maph");
/// Store::create(&path, Config::new(64).strategy(Strategy::UNCOORDINATED))?;
/// let store = Store::open(&path, Mode::ReadWrite)?;
/// let lease = Leased::new(Uncoordinated::new(), 10);
/// for i in 0..25u8 {
///     store.set(&lease, &[i], b"v")?;
/// }
/// // 25 writes took the inner lock 3 times (10 + 10 + 5).
/// assert_eq!(lease.inner().contention().acquisitions, 3);
/// # Ok::<(), maph_core::Error>(())
/// ```
pub struct Leased<C: WriteCoordinator> {
    inner: C,
    per_lease: u64,
    /// This process's writers take turns on the one lease.
    gate: LocalGate,
    lease: Mutex<Lease>,
    counters: ContentionCounters,
}

#[derive(Default)]
struct Lease {
    held: Option<Ticket>,
    uses: u64,
}

impl<C: WriteCoordinator> Leased<C> {
    /// Leases `inner`'s whole-store lock for `per_lease` writes at a time (at least 1).
    pub fn new(inner: C, per_lease: u64) -> Leased<C> {
        Leased {
            inner,
            per_lease: per_lease.max(1),
            gate: LocalGate::new(),
            lease: Mutex::new(Lease::default()),
            counters: ContentionCounters::new(),
        }
    }

    /// The coordinator whose lock is leased.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Gives the lock back now if the lease holds it (before this process
    /// waits for something else, so it does not keep others out meanwhile).
    pub fn give_back(&self) {
        // Taking the gate first: no write of this process is between acquire and release.
        self.gate.acquire(Access::Exclusive, Wait::Forever);
        if let Some(held) = self.lease().held.take() {
            // SAFETY: `held` came from `inner.acquire`, and is released once: it
            // was just taken out of `held`.
            unsafe { self.inner.release(held) }
        }
        // SAFETY: taken above.
        unsafe { self.gate.release(Access::Exclusive) }
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, Lease> {
        // Nothing panics while holding it; if something did, the state is still valid.
        self.lease.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<C: WriteCoordinator> Drop for Leased<C> {
    fn drop(&mut self) {
        if let Some(ticket) = self.lease().held.take() {
            // SAFETY: `ticket` came from `inner.acquire` and was not released
            // (it is taken out of `held` exactly when it is released).
            unsafe { self.inner.release(ticket) }
        }
    }
}

impl<C: WriteCoordinator> WriteCoordinator for Leased<C> {
    fn strategy(&self) -> Strategy {
        self.inner.strategy()
    }

    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
        // One writer of this process at a time holds the lease (shared access
        // too: the lease is an exclusive lock).
        if !self.gate.acquire(Access::Exclusive, wait) {
            return Ok(None);
        }
        let mut lease = self.lease();
        if lease.held.is_none() {
            // Through the inner guard methods, so the inner coordinator's own
            // contention figures count the lease acquisitions.
            let got = match wait {
                Wait::Never => self.inner.try_lock_exclusive(LockScope::Whole),
                Wait::Forever => self.inner.lock_exclusive(LockScope::Whole).map(Some),
                Wait::Until(deadline) => match self.inner.lock_exclusive_until(LockScope::Whole, deadline) {
                    Err(Error::LockTimeout { .. }) => Ok(None),
                    other => other.map(Some),
                },
            };
            match got {
                Ok(Some(guard)) => {
                    let ticket = *guard.ticket();
                    // The lease outlives this call: keep the lock, drop only the
                    // guard's borrow. `release` or `drop` gives the ticket back.
                    std::mem::forget(guard);
                    *lease = Lease { held: Some(ticket), uses: 0 };
                }
                other => {
                    drop(lease);
                    // SAFETY: taken above by this call, not released since.
                    unsafe { self.gate.release(Access::Exclusive) };
                    return other.map(|_| None);
                }
            }
        }
        let fence = lease.held.and_then(|t| t.fence);
        Ok(Some(Ticket { access, scope, fence, private: 0 }))
    }

    unsafe fn release(&self, _ticket: Ticket) {
        let mut lease = self.lease();
        lease.uses += 1;
        if lease.uses >= self.per_lease {
            if let Some(held) = lease.held.take() {
                // SAFETY: `held` came from `inner.acquire` and is released once:
                // it was just taken out of `held`.
                unsafe { self.inner.release(held) }
            }
        }
        drop(lease);
        // SAFETY: the caller holds a ticket from `acquire`, which took the gate.
        unsafe { self.gate.release(Access::Exclusive) }
    }

    fn validate(&self, _ticket: &Ticket) -> Result<()> {
        match self.lease().held {
            Some(held) => self.inner.validate(&held),
            None => Err(Error::InvalidConfig("the lease was given back before this write committed".into())),
        }
    }

    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }

    fn excludes_writers(&self) -> bool {
        self.inner.excludes_writers()
    }

    fn bound_store(&self) -> Option<StoreId> {
        self.inner.bound_store()
    }
}
