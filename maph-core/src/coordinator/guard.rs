//! RAII guards: the lock is released when the guard goes out of scope, on every
//! path out, including `?` and unwinding panics.

use std::cell::Cell;
use std::marker::PhantomData;

use super::{Access, LockScope, Ticket, WriteCoordinator};
use crate::Result;

/// Exclusive access to a scope of the store; released on drop.
///
/// Pass it to [`Store::write_with`](crate::Store::write_with) to write several
/// times under one acquisition.
///
/// It may move to another thread (`Send`) but not be shared between threads
/// (`!Sync`): two threads writing through one exclusive guard at once would be
/// two writers.
///
/// ```compile_fail
/// fn shareable<T: Sync>() {}
/// shareable::<maph_core::ExclusiveGuard<'static, maph_core::SingleWriter>>();
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ExclusiveGuard<'c, C: WriteCoordinator + ?Sized> {
    coordinator: &'c C,
    ticket: Ticket,
    _marker: PhantomData<Cell<()>>,
}

/// Shared access to a scope of the store: writers are kept out while it lives.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SharedGuard<'c, C: WriteCoordinator + ?Sized> {
    coordinator: &'c C,
    ticket: Ticket,
    // Shared guards may be shared: readers only read.
    _marker: PhantomData<()>,
}

macro_rules! guard_common {
    ($guard:ident, $access:expr) => {
        impl<'c, C: WriteCoordinator + ?Sized> $guard<'c, C> {
            pub(crate) fn new(coordinator: &'c C, ticket: Ticket) -> Self {
                debug_assert_eq!(ticket.access, $access);
                $guard { coordinator, ticket, _marker: PhantomData }
            }

            /// The scope this guard holds.
            pub fn scope(&self) -> LockScope {
                self.ticket.scope
            }

            /// The fencing token of this acquisition, if the strategy issues one.
            pub fn fence(&self) -> Option<u64> {
                self.ticket.fence
            }

            /// The raw ticket (for coordinators built on top of other coordinators).
            pub fn ticket(&self) -> &Ticket {
                &self.ticket
            }

            /// The coordinator that granted this guard.
            pub fn coordinator(&self) -> &'c C {
                self.coordinator
            }

            /// Checks that the acquisition still confers its rights (a lease may
            /// have been lost since).
            pub fn validate(&self) -> Result<()> {
                self.coordinator.validate(&self.ticket)
            }
        }

        impl<C: WriteCoordinator + ?Sized> Drop for $guard<'_, C> {
            #[inline]
            fn drop(&mut self) {
                // SAFETY: the ticket came from `acquire` on this coordinator (the
                // only constructor is `new`, called by the acquiring methods) and
                // is released exactly once, here.
                unsafe { self.coordinator.release(self.ticket) }
            }
        }

        impl<C: WriteCoordinator + ?Sized> std::fmt::Debug for $guard<'_, C> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($guard))
                    .field("strategy", &self.coordinator.strategy())
                    .field("ticket", &self.ticket)
                    .finish()
            }
        }
    };
}

guard_common!(ExclusiveGuard, Access::Exclusive);
guard_common!(SharedGuard, Access::Shared);
