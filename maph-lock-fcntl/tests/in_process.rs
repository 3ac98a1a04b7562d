//! FcntlCoordinator within one process: threads, the classic fallback, errors,
//! contention figures. (Child processes appear only as outside observers.)

mod common;

use common::*;
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_fcntl::{FcntlCoordinator, Granularity, LockKind};
use maph_testkit::{child, spawn};

/// Threads sharing one coordinator never lose an increment, under every variant.
#[test]
fn threads_sharing_a_coordinator_take_turns() {
    const PER_THREAD: u64 = 3_000;
    for variant in ALL {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "threads.maph");
        let (store, lock) = open(&path, variant);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..PER_THREAD).for_each(|_| increment(&store, &lock, b"counter")));
            }
        });
        assert_eq!(counter(&store, b"counter"), 4 * PER_THREAD, "{variant}");
        assert_eq!(lock.contention().acquisitions, 4 * PER_THREAD, "{variant}");
    }
}

/// In byte-range OFD mode, a thread holding one key's window does not stop
/// another thread of the same process, through the same coordinator, from
/// locking a disjoint window; an overlapping one waits. (Each acquisition in
/// flight has its own open file description.)
#[test]
fn threads_writing_different_keys_run_in_parallel() {
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "parallel.maph");
    let (store, lock) = open(&path, OFD_RANGE);
    let held = lock.lock_exclusive(window(100, 10)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let disjoint = lock.try_lock_exclusive(window(110, 10)).unwrap();
            assert!(disjoint.is_some(), "a disjoint window is free while another thread holds its own");
            let key = (0..)
                .map(|i| format!("key{i}").into_bytes())
                .find(|k| !overlap(store.scope_of(k), window(100, 10)))
                .unwrap();
            drop(disjoint);
            store.set(&lock, &key, b"written beside the held window").unwrap();
            assert!(lock.try_lock_exclusive(window(109, 1)).unwrap().is_none(), "an overlapping window is not");
            assert!(lock.try_lock_shared(window(100, 1)).unwrap().is_none(), "nor shared access to it");
            assert!(lock.try_lock_exclusive(LockScope::Whole).unwrap().is_none(), "nor the whole store");
        });
    });
    assert!(lock.open_descriptions() >= 2, "the second thread used a description of its own");
    drop(held);
    assert!(lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
}

/// The classic fallback's documented loss: threads of one process take turns
/// even on disjoint windows, and readers too (the kernel cannot tell them apart).
#[test]
fn classic_mode_serialises_the_threads_of_a_process() {
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "classic.maph");
    let (_store, lock) = open(&path, CLASSIC_RANGE);
    assert_eq!(lock.lock_kind(), LockKind::Classic);
    let held = lock.lock_exclusive(window(100, 10)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| assert!(lock.try_lock_exclusive(window(2000, 10)).unwrap().is_none()));
    });
    drop(held);
    // Shared holders too: two readers' unlocks would undo each other's locks.
    let reading = lock.lock_shared(window(100, 10)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| assert!(lock.try_lock_shared(window(100, 10)).unwrap().is_none()));
    });
    drop(reading);
    std::thread::scope(|s| {
        s.spawn(|| assert!(lock.try_lock_exclusive(window(2000, 10)).unwrap().is_some()));
    });
}

/// Classic locks belong to the process and closing any descriptor drops them,
/// so classic coordinators of one process share one descriptor and one gate:
/// they exclude each other, and dropping one does not unlock another's guard.
/// A child process is the outside observer.
#[test]
fn classic_coordinators_of_one_process_share_their_descriptor() {
    const TEST: &str = "classic_coordinators_of_one_process_share_their_descriptor";
    if let Some(ctx) = child(TEST) {
        // Auto: follows the store's kind (classic here).
        let store = Store::open(&ctx.args()[0], Mode::ReadWrite).unwrap();
        let lock = FcntlCoordinator::new(&store).unwrap();
        ctx.report("free", lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "shared-fd.maph");
    let observe = || spawn(TEST, "observer", &[path.display().to_string()]).finish_ok().report::<bool>("free");

    let (store, first) = open(&path, CLASSIC_WHOLE);
    let guard = first.lock_exclusive(LockScope::Whole).unwrap();
    let second = make(&store, CLASSIC_RANGE).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| assert!(second.try_lock_exclusive(window(0, 1)).unwrap().is_none(), "they exclude each other"));
    });
    // Made with Auto on a store whose writers use classic locks: it joins this
    // process's classic descriptor rather than opening (and later closing) another.
    let auto = FcntlCoordinator::new(&store).unwrap();
    assert_eq!(auto.lock_kind(), LockKind::Classic);
    drop(second);
    drop(auto);
    assert!(!observe(), "dropping the other coordinators kept the first one's lock");
    drop(guard);
    assert!(observe(), "released with its guard");
}

/// On this machine (Linux 3.15+ on a local filesystem) Auto picks OFD locks.
#[test]
fn auto_picks_open_file_description_locks_here() {
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "auto.maph");
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let lock = FcntlCoordinator::new(&store).unwrap();
    assert_eq!((lock.lock_kind(), lock.granularity()), (LockKind::OpenFileDescription, Granularity::WholeFile));
    assert_eq!(lock.lock_path(), path.as_path(), "OFD locks are on the store file itself");
    let ranged = FcntlCoordinator::byte_range(&store).unwrap();
    assert_eq!((ranged.lock_kind(), ranged.granularity()), (LockKind::OpenFileDescription, Granularity::ByteRange));
}

/// The locks are on the file the coordinator was made for, not on its path:
/// after another store is renamed over the path, the descriptions the
/// coordinator opens later are still of the first file (they conflict with
/// the lock it holds there), so its writers are never split into two groups.
#[test]
fn descriptions_opened_later_are_of_the_same_file_after_the_path_is_replaced() {
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "replaced.maph");
    let (_store, lock) = open(&path, OFD_RANGE);
    let held = lock.lock_exclusive(window(0, 1)).unwrap(); // the pool's only description is in use
    let other = new_store(dir.path(), "other.maph");
    std::fs::rename(&other, &path).unwrap();
    assert!(lock.try_lock_exclusive(window(0, 1)).unwrap().is_none(), "a new description of the first file conflicts");
    assert!(lock.try_lock_exclusive(window(100, 1)).unwrap().is_some());
    assert_eq!(lock.open_descriptions(), 2);
    drop(held);
}

/// A window guard may write only keys inside its window, as the store requires.
#[test]
fn a_window_guard_writes_only_its_key() {
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "scope.maph");
    let (store, lock) = open(&path, OFD_RANGE);
    let scope = store.scope_of(b"mine");
    let guard = lock.lock_exclusive(scope).unwrap();
    assert_eq!(guard.scope(), scope);
    store.write_with(&guard, |tx| tx.set(b"mine", b"1")).unwrap();
    let outside = (0..).map(|i| format!("other{i}").into_bytes()).find(|k| !scope.covers(&store.scope_of(k))).unwrap();
    assert!(matches!(store.write_with(&guard, |tx| tx.set(&outside, b"x")), Err(Error::OutOfScope { .. })));
}
