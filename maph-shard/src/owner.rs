//! Who owns a shard: the pid a single-writer lease holder records in the
//! shard's header (`Store::lease_holder`), believed only while that process is
//! alive.

use maph_core::Store;

/// The live process recorded as the writer of the shard `store`.
///
/// A holder that died (even by SIGKILL) leaves its pid behind; it is ignored
/// once the process is gone, so an error never names a dead owner. (A process
/// killed but not yet reaped by its parent still counts as alive.) A holder
/// that lets go cleanly clears its record.
pub(crate) fn live_owner(store: &Store) -> Option<u32> {
    store.lease_holder()
}
