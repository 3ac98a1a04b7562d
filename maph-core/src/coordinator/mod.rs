//! The [`WriteCoordinator`] trait: how every strategy lets writers take turns.
//!
//! The shape follows `lock_api`: a coordinator implements a small raw interface
//! ([`acquire`](WriteCoordinator::acquire) / [`release`](WriteCoordinator::release)),
//! and gets guard-returning methods for free: blocking, `try_`, and with a
//! deadline, for exclusive (writers) and shared (readers that want it) access.
//! Guards release on drop, so a `?` or a panic inside a write cannot leave the
//! lock held (the reference design's pitfall 2).

mod backoff;
mod contention;
mod guard;
mod local_gate;
mod scope;
mod single_writer;
mod uncoordinated;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use backoff::{poll_until, Backoff};
pub use contention::{ContentionCounters, ContentionStats, SlowWaitHook};
pub use guard::{ExclusiveGuard, SharedGuard};
pub use local_gate::LocalGate;
pub use scope::LockScope;
pub use single_writer::SingleWriter;
pub use uncoordinated::Uncoordinated;

use crate::{Error, Result, StoreId, Strategy};

/// Exclusive (a writer) or shared (a reader that wants writers kept out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Keeps everyone else out of the scope.
    Exclusive,
    /// Keeps exclusive holders out; other shared holders may enter.
    Shared,
}

/// How long an acquisition may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Try once; do not wait.
    Never,
    /// Wait until this instant at the latest.
    Until(Instant),
    /// Wait as long as it takes.
    Forever,
}

/// Proof of one acquisition, handed back to [`WriteCoordinator::release`].
///
/// It carries the scope and access that were granted, the fencing token if the
/// strategy issues one, and a word the coordinator may use for its own purposes
/// (for example which lock stripes it took).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// What was acquired.
    pub access: Access,
    /// Which slots it covers.
    pub scope: LockScope,
    /// Fencing token: increases with every acquisition of the strategy's lock;
    /// the store refuses a write whose token is lower than one it has seen.
    pub fence: Option<u64>,
    /// Private to the coordinator that issued the ticket.
    pub private: u64,
}

impl Ticket {
    /// A ticket without fence or private data.
    pub fn new(access: Access, scope: LockScope) -> Ticket {
        Ticket { access, scope, fence: None, private: 0 }
    }
}

/// A way for writers (processes and threads) to take turns on one store.
///
/// Implementors provide the raw methods; callers use the provided guard methods
/// ([`lock_exclusive`](Self::lock_exclusive) and friends) or let
/// [`Store::write`](crate::Store::write) and [`Store::update`](crate::Store::update)
/// take the lock for them.
///
/// # Contract
/// - Two exclusive tickets whose scopes share a slot are never outstanding at
///   once, across processes *and* across threads of one process sharing the
///   coordinator; an exclusive and a shared ticket likewise. (Only
///   [`Uncoordinated`] breaks this, and says so through
///   [`excludes_writers`](Self::excludes_writers).)
/// - A `Whole` scope conflicts with every scope.
/// - Acquisitions that need several locks take them in ascending slot order.
/// - A holder that dies (even by SIGKILL) stops blocking others within a bound
///   the implementation documents.
///
/// ```
/// use maph_core::{Config, LockScope, Mode, SingleWriter, Store, WriteCoordinator};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("doc.maph");
/// Store::create(&path, Config::new(64))?;
/// let store = Store::open(&path, Mode::ReadWrite)?;
/// let writer = SingleWriter::new(&store)?;
///
/// // Hold the lock across several writes; it is released when `guard` drops.
/// let guard = writer.lock_exclusive(LockScope::Whole)?;
/// store.write_with(&guard, |tx| tx.set(b"a", b"1"))?;
/// store.write_with(&guard, |tx| tx.set(b"b", b"2"))?;
/// drop(guard);
/// assert_eq!(writer.contention().acquisitions, 1);
/// # Ok::<(), maph_core::Error>(())
/// ```
pub trait WriteCoordinator: Send + Sync {
    /// The strategy tag this coordinator writes under; must equal the store's.
    fn strategy(&self) -> Strategy;

    /// Acquires `access` to `scope`, waiting as `wait` allows. Returns `Ok(None)`
    /// if the lock was not free in time (never for [`Wait::Forever`]), and an error
    /// if acquiring failed for another reason (I/O, unreachable service, …).
    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>>;

    /// Releases what `ticket` holds. Failures (a lost connection, say) are not
    /// reported: the lock then ends by the strategy's own expiry.
    ///
    /// # Safety
    /// `ticket` must have been returned by `acquire` on this coordinator and not
    /// released since. (Releasing a lock one does not hold would let two holders
    /// in, and some implementations keep in-process lock state that this corrupts.)
    unsafe fn release(&self, ticket: Ticket);

    /// Checks that `ticket` still confers the right to write (a lease may have
    /// expired). The store calls it before every commit. Default: always valid.
    fn validate(&self, ticket: &Ticket) -> Result<()> {
        let _ = ticket;
        Ok(())
    }

    /// The contention counters of this coordinator.
    fn counters(&self) -> &ContentionCounters;

    /// False only for coordinators that do not actually exclude writers
    /// ([`Uncoordinated`]). The store then never assumes an odd slot inside a
    /// locked scope was abandoned.
    fn excludes_writers(&self) -> bool {
        true
    }

    /// Whether every exclusive ticket excludes every other writer of the store,
    /// whatever scope it names (a whole-store lock such as a lease, `flock`, or
    /// a whole-file `fcntl` lock). Then a commit knows that any other
    /// write-intent lane still claimed was left by a writer that died, repairs
    /// it before it writes, and claims its own lane with plain stores instead
    /// of a compare-and-swap (`docs/FORMAT.md`, write-intent lanes). Default:
    /// false, which is always safe.
    fn locks_whole_store(&self) -> bool {
        false
    }

    /// The store this coordinator was made for, if it is bound to one (a lease or
    /// lock file belongs to one store). The store refuses writes through a
    /// coordinator bound to another store. Default: not bound.
    fn bound_store(&self) -> Option<StoreId> {
        None
    }

    /// A snapshot of the contention figures: acquisitions, waits, timeouts.
    fn contention(&self) -> ContentionStats {
        self.counters().snapshot()
    }

    /// Acquires exclusive access to `scope`, waiting as long as it takes.
    // Always inlined, like `timed_acquire`: it is the path every write takes.
    #[inline(always)]
    fn lock_exclusive(&self, scope: LockScope) -> Result<ExclusiveGuard<'_, Self>>
    where
        Self: Sized,
    {
        let ticket =
            timed_acquire(self, Access::Exclusive, scope, Wait::Forever)?.expect("Wait::Forever always acquires");
        Ok(ExclusiveGuard::new(self, ticket))
    }

    /// Acquires exclusive access to `scope` if it is free now.
    #[inline]
    fn try_lock_exclusive(&self, scope: LockScope) -> Result<Option<ExclusiveGuard<'_, Self>>>
    where
        Self: Sized,
    {
        let ticket = timed_acquire(self, Access::Exclusive, scope, Wait::Never)?;
        Ok(ticket.map(|t| ExclusiveGuard::new(self, t)))
    }

    /// Acquires exclusive access to `scope`, or fails with
    /// [`Error::LockTimeout`] at `deadline`.
    fn lock_exclusive_until(&self, scope: LockScope, deadline: Instant) -> Result<ExclusiveGuard<'_, Self>>
    where
        Self: Sized,
    {
        let ticket = acquire_or_time_out(self, Access::Exclusive, scope, deadline)?;
        Ok(ExclusiveGuard::new(self, ticket))
    }

    /// Acquires exclusive access to `scope`, or fails with
    /// [`Error::LockTimeout`] after `timeout`.
    fn lock_exclusive_for(&self, scope: LockScope, timeout: Duration) -> Result<ExclusiveGuard<'_, Self>>
    where
        Self: Sized,
    {
        self.lock_exclusive_until(scope, Instant::now() + timeout)
    }

    /// Acquires shared access to `scope`, waiting as long as it takes.
    #[inline]
    fn lock_shared(&self, scope: LockScope) -> Result<SharedGuard<'_, Self>>
    where
        Self: Sized,
    {
        let ticket = timed_acquire(self, Access::Shared, scope, Wait::Forever)?.expect("Wait::Forever always acquires");
        Ok(SharedGuard::new(self, ticket))
    }

    /// Acquires shared access to `scope` if no exclusive holder is in it now.
    #[inline]
    fn try_lock_shared(&self, scope: LockScope) -> Result<Option<SharedGuard<'_, Self>>>
    where
        Self: Sized,
    {
        let ticket = timed_acquire(self, Access::Shared, scope, Wait::Never)?;
        Ok(ticket.map(|t| SharedGuard::new(self, t)))
    }

    /// Acquires shared access to `scope`, or fails with [`Error::LockTimeout`]
    /// at `deadline`.
    fn lock_shared_until(&self, scope: LockScope, deadline: Instant) -> Result<SharedGuard<'_, Self>>
    where
        Self: Sized,
    {
        let ticket = acquire_or_time_out(self, Access::Shared, scope, deadline)?;
        Ok(SharedGuard::new(self, ticket))
    }

    /// Acquires shared access to `scope`, or fails with [`Error::LockTimeout`]
    /// after `timeout`.
    fn lock_shared_for(&self, scope: LockScope, timeout: Duration) -> Result<SharedGuard<'_, Self>>
    where
        Self: Sized,
    {
        self.lock_shared_until(scope, Instant::now() + timeout)
    }
}

/// Tries once without waiting (no clock read: the uncontended path stays cheap),
/// then waits as allowed, recording the wait in the coordinator's counters.
///
/// Always inlined, with the waiting half out of line. A ticket returned out
/// of line travels through memory in nested enums (`Result<Option<Ticket>>`,
/// then the guard), and the caller's wide reloads of fields just stored
/// narrowly stall on store forwarding: inlining this, the guard methods and
/// the guard's drop took the futex lock's uncontended lock + unlock from 28 ns
/// to 12–14 ns on the benchmark machine.
#[inline(always)]
fn timed_acquire<C: WriteCoordinator + ?Sized>(
    coordinator: &C,
    access: Access,
    scope: LockScope,
    wait: Wait,
) -> Result<Option<Ticket>> {
    match coordinator.acquire(access, scope, Wait::Never) {
        Ok(Some(ticket)) => {
            coordinator.counters().record_immediate();
            Ok(Some(ticket))
        }
        Ok(None) => wait_to_acquire(coordinator, access, scope, wait),
        Err(e) => Err(e),
    }
}

/// The lock was not free at once: wait as `wait` allows, and record the wait.
#[cold]
#[inline(never)]
fn wait_to_acquire<C: WriteCoordinator + ?Sized>(
    coordinator: &C,
    access: Access,
    scope: LockScope,
    wait: Wait,
) -> Result<Option<Ticket>> {
    if wait == Wait::Never {
        coordinator.counters().record_timeout(Duration::ZERO);
        return Ok(None);
    }
    let started = Instant::now();
    let got = coordinator.acquire(access, scope, wait)?;
    let waited = started.elapsed();
    match got {
        Some(_) => coordinator.counters().record_waited(waited),
        None => coordinator.counters().record_timeout(waited),
    }
    Ok(got)
}

fn acquire_or_time_out<C: WriteCoordinator + ?Sized>(
    coordinator: &C,
    access: Access,
    scope: LockScope,
    deadline: Instant,
) -> Result<Ticket> {
    let started = Instant::now();
    timed_acquire(coordinator, access, scope, Wait::Until(deadline))?
        .ok_or_else(|| Error::LockTimeout { strategy: coordinator.strategy(), waited: started.elapsed() })
}

/// Coordinators behind a pointer are coordinators too, so `Box<dyn WriteCoordinator>`
/// (chosen at run time) and `Arc<C>` (shared between threads) work everywhere.
macro_rules! forward_coordinator {
    ($($ptr:ty),*) => {$(
        impl<C: WriteCoordinator + ?Sized> WriteCoordinator for $ptr {
            fn strategy(&self) -> Strategy {
                (**self).strategy()
            }
            fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
                (**self).acquire(access, scope, wait)
            }
            unsafe fn release(&self, ticket: Ticket) {
                // SAFETY: forwarded unchanged; the caller upholds the contract.
                unsafe { (**self).release(ticket) }
            }
            fn validate(&self, ticket: &Ticket) -> Result<()> {
                (**self).validate(ticket)
            }
            fn counters(&self) -> &ContentionCounters {
                (**self).counters()
            }
            fn excludes_writers(&self) -> bool {
                (**self).excludes_writers()
            }
            fn locks_whole_store(&self) -> bool {
                (**self).locks_whole_store()
            }
            fn bound_store(&self) -> Option<StoreId> {
                (**self).bound_store()
            }
        }
    )*};
}

forward_coordinator!(Box<C>, Arc<C>, &C);
