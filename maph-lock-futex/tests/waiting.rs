//! Deadlines, and stripes that let writers of different keys run in parallel,
//! across real processes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::futex_config;
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_futex::FutexCoordinator;
use maph_testkit::{child, spawn, ChildContext};

fn open(path: &str, stripes: u32) -> (Arc<Store>, FutexCoordinator) {
    let store = Arc::new(Store::open(path, Mode::ReadWrite).unwrap());
    let lock = FutexCoordinator::striped(store.clone(), stripes).unwrap();
    (store, lock)
}

/// Child role: lock `args[2]` (a key's window, or "whole"), say so, and hold it
/// until the parent lets go of its standard input.
fn holder(ctx: ChildContext) -> ! {
    let (store, lock) = open(&ctx.args()[0], ctx.arg(1));
    let scope = match ctx.args()[2].as_str() {
        "whole" => LockScope::Whole,
        key => store.scope_of(key.as_bytes()),
    };
    let guard = lock.lock_exclusive(scope).unwrap();
    ctx.report("holding", 1);
    ctx.wait_for_start();
    drop(guard);
    ctx.exit()
}

#[test]
fn a_deadline_is_honoured_and_not_cut_short() {
    const TEST: &str = "a_deadline_is_honoured_and_not_cut_short";
    if let Some(ctx) = child(TEST) {
        holder(ctx)
    }
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("deadline.maph");
    Store::create(&path, futex_config(64)).unwrap();
    let p = path.display().to_string();
    let mut other = spawn(TEST, "holder", &[p.clone(), "1".into(), "whole".into()]);
    other.wait_for_report("holding");

    let (store, lock) = open(&p, 1);
    let started = Instant::now();
    let deadline = started + Duration::from_millis(250);
    match lock.lock_exclusive_until(LockScope::Whole, deadline) {
        Err(Error::LockTimeout { .. }) => {
            let now = Instant::now();
            assert!(now >= deadline, "gave up {:?} early", deadline - now);
            assert!(now - started < Duration::from_secs(20), "gave up absurdly late: {:?}", now - started);
        }
        other => panic!("expected LockTimeout, got {:?}", other.map(|_| ())),
    }
    assert!(lock.try_lock_exclusive(store.scope_of(b"k")).unwrap().is_none());
    let stats = lock.contention();
    assert_eq!((stats.acquisitions, stats.timeouts), (0, 2), "{stats:?}");

    // Once the holder lets go, a waiter gets in (woken, not polling a deadline).
    // The waiters bit left by the timed-out waits above is cleared (they are
    // gone), so that seeing it again proves the new waiter went to sleep.
    let word = store.coordinator_word64(maph_lock_futex::region::lock_word64_index(0)).unwrap().unwrap();
    word.fetch_and(!u64::from(maph_lock_futex::WAITERS), std::sync::atomic::Ordering::Relaxed);
    let waiter = std::thread::spawn(move || {
        let guard = lock.lock_exclusive_for(LockScope::Whole, Duration::from_secs(30)).map(|_| ());
        (guard, lock.contention())
    });
    // Release only once the waiter has announced itself asleep on the word.
    let asked = Instant::now();
    while common::lock_word(&store, 0) & maph_lock_futex::WAITERS == 0 {
        assert!(asked.elapsed() < Duration::from_secs(30), "the waiter never went to sleep");
        std::thread::yield_now();
    }
    other.start();
    let (got, stats) = waiter.join().unwrap();
    got.expect("the lock after its holder released it");
    assert_eq!((stats.acquisitions, stats.contended), (1, 1), "{stats:?}");
    other.finish_ok();
    assert_eq!(store.len(), 0);
}

/// Threads of one process: a thread holding a stripe makes another time out
/// at its deadline, not before.
#[test]
fn a_deadline_is_honoured_between_threads() {
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("threads.maph");
    Store::create(&path, futex_config(64)).unwrap();
    let (store, lock) = open(&path.display().to_string(), 4);
    let scope = store.scope_of(b"k");
    let guard = lock.lock_exclusive(scope).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_millis(100);
            assert!(matches!(lock.lock_exclusive_until(scope, deadline), Err(Error::LockTimeout { .. })));
            assert!(Instant::now() >= deadline);
        });
    });
    drop(guard);
    assert!(lock.try_lock_exclusive(scope).unwrap().is_some());
}

/// Two keys in different stripes: a process holding one does not keep
/// another process from the other; the same stripe, or the whole store, it does.
#[test]
fn writers_of_different_stripes_do_not_wait_for_each_other() {
    const TEST: &str = "writers_of_different_stripes_do_not_wait_for_each_other";
    if let Some(ctx) = child(TEST) {
        holder(ctx)
    }
    const STRIPES: u32 = 8;
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("stripes.maph");
    Store::create(&path, futex_config(1024)).unwrap();
    let p = path.display().to_string();
    let (store, lock) = open(&p, STRIPES);
    // Two keys whose windows lie in single, different stripes.
    let single = |key: &[u8]| {
        let mask = lock.stripes_of(store.scope_of(key));
        (mask.count_ones() == 1).then_some(mask)
    };
    let keys: Vec<(String, u64)> =
        (0..).map(|i| format!("key:{i}")).filter_map(|k| single(k.as_bytes()).map(|m| (k, m))).take(40).collect();
    let (a, mask_a) = keys[0].clone();
    let (b, _) = keys.iter().find(|(_, m)| *m != mask_a).cloned().expect("a key in another stripe");
    let (a2, _) = keys.iter().skip(1).find(|(_, m)| *m == mask_a).cloned().expect("another key in a's stripe");

    let mut other = spawn(TEST, "holder", &[p.clone(), STRIPES.to_string(), a.clone()]);
    other.wait_for_report("holding");
    let guard = lock.try_lock_exclusive(store.scope_of(b.as_bytes())).unwrap();
    assert!(guard.is_some(), "{b} is in another stripe than {a}, yet was locked");
    store.write_with(guard.as_ref().unwrap(), |tx| tx.set(b.as_bytes(), b"written in parallel")).unwrap();
    drop(guard);
    assert!(lock.try_lock_exclusive(store.scope_of(a2.as_bytes())).unwrap().is_none(), "{a2} shares {a}'s stripe");
    assert!(lock.try_lock_exclusive(LockScope::Whole).unwrap().is_none(), "the whole store includes {a}'s stripe");
    other.start();
    other.finish_ok();
    assert!(lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
    assert_eq!(store.get(b.as_bytes()).unwrap().as_deref(), Some(&b"written in parallel"[..]));
}
