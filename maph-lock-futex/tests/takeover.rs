//! When a waiter takes over, and when it must not: the liveness check itself,
//! against real processes, with lock words planted as the documented layout says.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check, checked, dead_pid, futex_config, leave_mid_write, lock_word, plant_holder, slot_of};
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_futex::{identity, FutexCoordinator, ProcessState, PID_MASK, WAITERS};
use maph_testkit::{child, spawn};

const EPOCH: u32 = 1 << 23;

fn fresh(slots: u64) -> (tempfile::TempDir, std::path::PathBuf, Arc<Store>) {
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("takeover.maph");
    Store::create(&path, futex_config(slots)).unwrap();
    let store = Arc::new(Store::open(&path, Mode::ReadWrite).unwrap());
    (dir, path, store)
}

fn start_ticks(pid: u32) -> u64 {
    match identity::process_state(pid) {
        ProcessState::Running { start_ticks } => start_ticks,
        other => panic!("pid {pid} is not running: {other:?}"),
    }
}

/// A live, attached process holding the lock is waited for; the same pid
/// recorded with another start time (what a reused pid looks like) is taken
/// over; so is a zombie (killed, not reaped: its pid still exists), and a pid
/// nobody has.
#[test]
fn a_reused_pid_does_not_make_a_dead_holder_look_alive() {
    const TEST: &str = "a_reused_pid_does_not_make_a_dead_holder_look_alive";
    if let Some(ctx) = child(TEST) {
        // Attached (as any holder is) until the parent says go.
        let store = Arc::new(Store::open(&ctx.args()[0], Mode::ReadWrite).unwrap());
        let _lock = FutexCoordinator::global(store).unwrap();
        ctx.report("attached", 1);
        ctx.wait_for_start();
        ctx.exit();
    }
    let (_dir, path, store) = fresh(64);
    let lock = FutexCoordinator::global(store.clone()).unwrap();
    let mut other = spawn(TEST, "bystander", &[path.display().to_string()]);
    other.wait_for_report("attached");
    let pid = other.pid();
    let start = start_ticks(pid) as u32;

    // 1. The real holder: alive, attached, right start time. Waited for until the deadline.
    plant_holder(&store, 0, (2 * EPOCH) | pid, start);
    let deadline = Instant::now() + Duration::from_millis(120);
    match lock.lock_exclusive_until(LockScope::Whole, deadline) {
        Err(Error::LockTimeout { .. }) => assert!(Instant::now() >= deadline),
        other => panic!("a live holder's lock was taken: {:?}", other.map(|_| ())),
    }
    assert_eq!(common::lock_word64(&store, 0) >> 32, u64::from(start), "the holder is still described");

    // 2. Same pid, other start time: the recorded holder is gone and the pid
    //    now belongs to someone else. Taken over, with a new epoch.
    plant_holder(&store, 0, (2 * EPOCH) | pid, start.wrapping_add(1));
    let guard = lock.lock_exclusive_for(LockScope::Whole, Duration::from_secs(30)).expect("takeover");
    let word = lock_word(&store, 0);
    assert_eq!((word & PID_MASK, word & !(PID_MASK | WAITERS)), (std::process::id(), 3 * EPOCH));
    drop(guard);
    assert_eq!(lock.recovery_stats().takeovers, 1);

    // 3. A zombie (killed, not yet reaped) still has its pid, but is dead.
    other.kill();
    let waited = Instant::now();
    while identity::process_state(pid) != ProcessState::Zombie {
        assert!(waited.elapsed() < Duration::from_secs(30), "the killed child never became a zombie");
        std::thread::yield_now();
    }
    plant_holder(&store, 0, (4 * EPOCH) | pid, start);
    drop(lock.lock_exclusive_for(LockScope::Whole, Duration::from_secs(30)).expect("takeover from a zombie"));
    drop(other.finish());

    // 4. Nobody has the pid any more (reaped), whatever start time the word records.
    let gone = dead_pid();
    plant_holder(&store, 0, (6 * EPOCH) | gone, 12345);
    drop(lock.lock_exclusive_for(LockScope::Whole, Duration::from_secs(30)).expect("takeover from a vanished pid"));
    assert_eq!(lock.recovery_stats().takeovers, 3);
    assert_eq!(lock.takeovers_recorded(), 3);
}

/// A coordinator attaching frees the words of holders that are dead, before
/// anyone waits on them, and owes the store a repair.
#[test]
fn attaching_frees_a_dead_holders_word() {
    let (_dir, path, store) = fresh(64);
    {
        let lock = FutexCoordinator::global(store.clone()).unwrap();
        store.set(&lock, b"k", &checked(41)).unwrap();
    }
    let slot = slot_of(&path, 64, b"k");
    plant_holder(&store, 0, EPOCH | dead_pid(), 12345);
    leave_mid_write(&path, slot, false);

    let lock = FutexCoordinator::global(store.clone()).unwrap();
    assert_eq!(lock.recovery_stats().takeovers, 1, "freed at attach");
    assert_eq!(lock_word(&store, 0) & (PID_MASK | !(PID_MASK | WAITERS)), 2 * EPOCH, "free, next epoch");
    // The first write repairs the slot the dead holder left mid-write.
    store.update(&lock, b"k", |old| Some(checked(old.map_or(0, |v| check(v, "k")) + 1))).unwrap();
    assert_eq!(common::read_counter(&store, b"k"), 42);
    assert_eq!((lock.recovery_stats().repair_passes, lock.recovery_stats().slots_finished), (1, 1));
    assert!(store.verify().is_clean());
}

/// Two waiters judging the same dead holder: exactly one takes over, the
/// other waits for it and gets the lock after it.
#[test]
fn only_one_waiter_takes_a_dead_holder_over() {
    let (_dir, _path, store) = fresh(64);
    // One coordinator each, as separate processes would have; attached before
    // the holder dies, so that the waiters, not an attachment, find it dead.
    let locks: Vec<_> = (0..3).map(|_| FutexCoordinator::global(store.clone()).unwrap()).collect();
    plant_holder(&store, 0, (7 * EPOCH) | dead_pid(), 12345);
    let inside = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for lock in locks {
            let inside = &inside;
            s.spawn(move || {
                let guard = lock.lock_exclusive_for(LockScope::Whole, Duration::from_secs(30)).unwrap();
                assert_eq!(inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst), 0, "two holders at once");
                std::thread::sleep(Duration::from_millis(5));
                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                drop(guard);
                lock.recovery_stats().takeovers
            });
        }
    });
    let lock = FutexCoordinator::global(store.clone()).unwrap();
    assert_eq!(lock.takeovers_recorded(), 1, "exactly one takeover");
}

/// A slot the dead holder left mid-write is repaired before the taker
/// writes: completed if its content is whole, cleared if torn. The update
/// that takes over sees the repaired value at once (no SlotBusy wait).
#[test]
fn a_slot_left_mid_write_is_repaired_after_a_takeover() {
    for tear in [false, true] {
        let (_dir, path, store) = fresh(64);
        let lock = FutexCoordinator::global(store.clone()).unwrap();
        store.set(&lock, b"k", &checked(41)).unwrap();
        store.set(&lock, b"other", &checked(7)).unwrap();
        let slot = slot_of(&path, 64, b"k");

        // As if a writer had died between the odd and even stores of slot `slot`.
        plant_holder(&store, 0, EPOCH | dead_pid(), 12345);
        leave_mid_write(&path, slot, tear);

        let started = Instant::now();
        store.update(&lock, b"k", |old| Some(checked(old.map_or(0, |v| check(v, "k")) + 1))).unwrap();
        let took = started.elapsed();
        let stats = lock.recovery_stats();
        assert_eq!((stats.takeovers, stats.repair_passes), (1, 1), "{stats:?}");
        if tear {
            assert_eq!(stats.slots_cleared, 1, "{stats:?}");
            assert_eq!(common::read_counter(&store, b"k"), 1, "a torn slot is cleared, so the count restarts");
        } else {
            assert_eq!(stats.slots_finished, 1, "{stats:?}");
            assert_eq!(common::read_counter(&store, b"k"), 42);
        }
        assert_eq!(common::read_counter(&store, b"other"), 7, "other keys are untouched");
        assert!(store.verify().is_clean());
        // Generous: far below the 500 ms a reader waits on a busy slot, but
        // only "not absurd" is asserted.
        assert!(took < Duration::from_secs(20), "took {took:?}");
        assert_eq!(lock.takeovers_recorded(), 1);
    }
}
