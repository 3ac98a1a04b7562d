//! The lease wrapper holds the inner lock between writes and gives it back
//! after `per_lease` of them: checked from a second, independent coordinator
//! (another open file description of the flock lock file).

use maph_bench::Leased;
use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_flock::FlockCoordinator;

#[test]
fn a_lease_is_held_between_writes_and_given_back_after_its_quota() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lease.maph");
    Store::create(&path, Config::new(256).strategy(FlockCoordinator::STRATEGY)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let lease = Leased::new(FlockCoordinator::new(&store).unwrap(), 3);
    let other_store = Store::open(&path, Mode::ReadWrite).unwrap();
    let other = FlockCoordinator::new(&other_store).unwrap();

    for round in 0..2 {
        for i in 0..3u8 {
            store.set(&lease, &[round, i], b"v").unwrap();
            let free = other.try_lock_exclusive(LockScope::Whole).unwrap().is_some();
            // Held after the first and second write of each lease, free after the third.
            assert_eq!(free, i == 2, "round {round}, write {i}");
        }
    }
    assert_eq!(lease.inner().contention().acquisitions, 2);
    assert_eq!(store.len(), 6);

    // Dropping a lease in the middle of its quota gives the lock back too.
    store.set(&lease, b"last", b"v").unwrap();
    assert!(other.try_lock_exclusive(LockScope::Whole).unwrap().is_none());
    drop(lease);
    assert!(other.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
}
