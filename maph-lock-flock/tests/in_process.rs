//! FlockCoordinator within one process: threads, errors, contention figures.

use std::path::{Path, PathBuf};

use maph_core::{Config, Error, Mode, Store, WriteCoordinator};
use maph_lock_flock::FlockCoordinator;

fn new_store(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    Store::create(&path, Config::new(1024).strategy(FlockCoordinator::STRATEGY)).unwrap();
    path
}

fn increment(store: &Store, lock: &impl WriteCoordinator, key: &[u8]) {
    store
        .update(lock, key, |old| {
            let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
            Some((n + 1).to_string())
        })
        .unwrap();
}

/// Threads sharing one coordinator exclude each other (the gate), and so do two
/// coordinators in one process (two open file descriptions).
#[test]
fn threads_and_coordinators_of_one_process_take_turns() {
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "threads.maph");
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let shared = FlockCoordinator::new(&store).unwrap();
    let separate = FlockCoordinator::new(&store).unwrap();
    const PER_THREAD: u64 = 5_000;
    std::thread::scope(|s| {
        for lock in [&shared, &shared, &separate, &separate] {
            let store = &store;
            s.spawn(move || (0..PER_THREAD).for_each(|_| increment(store, lock, b"counter")));
        }
    });
    let total: u64 = String::from_utf8(store.get(b"counter").unwrap().unwrap()).unwrap().parse().unwrap();
    assert_eq!(total, 4 * PER_THREAD);
    assert_eq!(shared.contention().acquisitions + separate.contention().acquisitions, 4 * PER_THREAD);
}

/// The scope asked for is the scope granted (flock locks the whole store for
/// any scope, so a window guard may write only its key, as the store requires).
#[test]
fn a_window_guard_writes_only_its_key() {
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "scope.maph");
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let lock = FlockCoordinator::new(&store).unwrap();
    let scope = store.scope_of(b"mine");
    let guard = lock.lock_exclusive(scope).unwrap();
    assert_eq!(guard.scope(), scope);
    store.write_with(&guard, |tx| tx.set(b"mine", b"1")).unwrap();
    // Any other key whose window is not inside ours is refused.
    let outside = (0..1000u32)
        .map(|i| format!("other{i}").into_bytes())
        .find(|k| !scope.covers(&store.scope_of(k)))
        .expect("some key lies elsewhere in 1024 slots");
    assert!(matches!(store.write_with(&guard, |tx| tx.set(&outside, b"x")), Err(Error::OutOfScope { .. })));
    // And the whole-store lock is one lock: while the window guard is held,
    // another coordinator cannot take any scope.
    let other = FlockCoordinator::new(&store).unwrap();
    assert!(other.try_lock_exclusive(store.scope_of(&outside)).unwrap().is_none());
}
