//! The in-process half of a coordinator.
//!
//! Kernel file locks do not exclude threads of one process from each other: a
//! `flock` lock belongs to the open file description, a classic `fcntl` lock to
//! the whole process. So every coordinator first takes this reader-writer gate,
//! then its cross-process lock. Uncontended, the gate is one compare-and-swap.

use parking_lot::lock_api::{RawRwLock as _, RawRwLockTimed as _};
use parking_lot::RawRwLock;

use super::{Access, Wait};

/// A reader-writer lock for the threads of one process, with deadlines.
pub struct LocalGate {
    lock: RawRwLock,
}

impl Default for LocalGate {
    fn default() -> Self {
        LocalGate::new()
    }
}

impl std::fmt::Debug for LocalGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGate").field("locked", &self.lock.is_locked()).finish()
    }
}

impl LocalGate {
    /// An unlocked gate.
    pub const fn new() -> LocalGate {
        LocalGate { lock: <RawRwLock as parking_lot::lock_api::RawRwLock>::INIT }
    }

    /// Takes the gate for `access`, waiting as `wait` allows. Returns whether it
    /// was taken.
    pub fn acquire(&self, access: Access, wait: Wait) -> bool {
        match (access, wait) {
            (Access::Exclusive, Wait::Never) => self.lock.try_lock_exclusive(),
            (Access::Exclusive, Wait::Forever) => {
                self.lock.lock_exclusive();
                true
            }
            (Access::Exclusive, Wait::Until(d)) => self.lock.try_lock_exclusive_until(d),
            (Access::Shared, Wait::Never) => self.lock.try_lock_shared(),
            (Access::Shared, Wait::Forever) => {
                self.lock.lock_shared();
                true
            }
            (Access::Shared, Wait::Until(d)) => self.lock.try_lock_shared_until(d),
        }
    }

    /// Releases the gate.
    ///
    /// # Safety
    /// The calling thread of control must hold the gate for `access` (taken by
    /// [`acquire`](Self::acquire), not yet released). Guards may be sent between
    /// threads, so "thread of control" means the owner of that acquisition.
    pub unsafe fn release(&self, access: Access) {
        // SAFETY: forwarded to the caller: the gate is held for `access`.
        unsafe {
            match access {
                Access::Exclusive => self.lock.unlock_exclusive(),
                Access::Shared => self.lock.unlock_shared(),
            }
        }
    }

    /// Whether anyone holds the gate now (for diagnostics only; it may change at once).
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }
}
