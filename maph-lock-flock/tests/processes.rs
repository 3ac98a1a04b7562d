//! FlockCoordinator across real processes, through the shared harness.
//!
//! The uncoordinated baseline (the same race losing updates) is
//! `maph-core/tests/counter_race.rs::uncoordinated_writers_lose_updates`; it uses
//! the same process and increment counts as the race here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_flock::FlockCoordinator;
use maph_testkit::{child, spawn, Contract, CounterRace};

/// "Not absurdly late": far beyond any scheduling delay, even on a loaded 2-core CI machine.
const GENEROUS: Duration = Duration::from_secs(10);

fn config(slots: u64) -> Config {
    Config::new(slots).strategy(FlockCoordinator::STRATEGY)
}

fn new_store(dir: &Path) -> PathBuf {
    let path = dir.join("store.maph");
    Store::create(&path, config(1024)).unwrap();
    path
}

fn open(path: impl AsRef<Path>) -> (Store, FlockCoordinator) {
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    let lock = FlockCoordinator::new(&store).unwrap();
    (store, lock)
}

/// P processes × M read-modify-write increments of one counter: none lost.
/// (At this size an uncoordinated run loses updates on the reference machine.)
#[test]
fn flock_counter_race_loses_nothing() {
    let report =
        CounterRace::new("flock_counter_race_loses_nothing", 4, 20_000).run(config(256), FlockCoordinator::new);
    println!("{report}");
    assert_eq!(report.actual, report.expected, "{report}");
    assert_eq!(report.acquisitions, report.expected, "one acquisition per increment: {report}");
}

/// The coordinator contract (maph-testkit), run across processes: reference
/// Test 3, pitfall 2 (a panic releases the lock), a SIGKILLed holder, deadlines,
/// and shared guards giving reader threads a consistent view of several keys.
fn contract(test: &str) -> Contract<fn(&Store) -> maph_core::Result<FlockCoordinator>> {
    Contract::new(test, config(1024), FlockCoordinator::new)
}

#[test]
fn reference_test_3_two_processes_write_their_own_keys() {
    contract("reference_test_3_two_processes_write_their_own_keys").two_processes_write_their_own_keys();
}

#[test]
fn a_panic_inside_a_write_releases_the_lock() {
    contract("a_panic_inside_a_write_releases_the_lock").panic_inside_a_write_releases_the_lock();
}

#[test]
fn a_holder_killed_by_sigkill_blocks_no_one() {
    contract("a_holder_killed_by_sigkill_blocks_no_one").holder_killed_by_sigkill_blocks_no_one();
}

#[test]
fn a_deadline_is_honoured_while_another_process_holds_the_lock() {
    contract("a_deadline_is_honoured_while_another_process_holds_the_lock")
        .deadline_is_honoured_while_another_process_holds_the_lock();
}

/// A wait past the slow-wait threshold (on a holder in another process) is
/// reported to the hook, once, with its length.
#[test]
fn a_slow_wait_is_reported_to_the_hook() {
    contract("a_slow_wait_is_reported_to_the_hook").slow_waits_are_reported();
}

/// A read-only handle, a store of another strategy and another store's
/// coordinator are refused.
#[test]
fn writers_that_may_not_write_are_refused() {
    contract("writers_that_may_not_write_are_refused").writers_that_may_not_write_are_refused();
}

/// The lock is on the store file: no lock file is made beside the store.
#[test]
fn no_lock_file_is_needed_beside_the_store() {
    contract("no_lock_file_is_needed_beside_the_store").no_lock_file_is_needed_beside_the_store();
}

/// A writer process keeps setting `a` and `b` to the same value in one write;
/// reader threads of this process (sharing one kernel `LOCK_SH`) never see them differ.
#[test]
fn shared_guards_give_reader_threads_a_consistent_view_of_several_keys() {
    contract("shared_guards_give_reader_threads_a_consistent_view_of_several_keys")
        .shared_guards_give_a_consistent_view_of_several_keys(20_000);
}

/// Shared holders in two processes coexist; a writer is kept out until the last
/// of them leaves.
#[test]
fn shared_holders_of_two_processes_coexist_and_keep_writers_out() {
    const TEST: &str = "shared_holders_of_two_processes_coexist_and_keep_writers_out";
    if let Some(ctx) = child(TEST) {
        let (_store, lock) = open(&ctx.args()[0]);
        let guard = lock.lock_shared(LockScope::Whole).unwrap();
        ctx.report("shared", 1);
        ctx.wait_for_start();
        drop(guard);
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path());
    let mut reader = spawn(TEST, "reader", &[path.display().to_string()]);
    reader.wait_for_report("shared");
    let (_store, lock) = open(&path);
    let (_store2, writer) = open(&path);

    let mine = lock.try_lock_shared(LockScope::Whole).unwrap().expect("shared locks coexist across processes");
    assert!(writer.try_lock_exclusive(LockScope::Whole).unwrap().is_none(), "two readers keep a writer out");
    drop(mine);
    assert!(writer.try_lock_exclusive(LockScope::Whole).unwrap().is_none(), "the other process still reads");
    reader.start();
    reader.finish_ok();
    assert!(writer.lock_exclusive_for(LockScope::Whole, GENEROUS).is_ok(), "free once the last reader left");
}

/// Several threads of this process holding shared access share one kernel
/// `LOCK_SH`: it must stay held until the last of them releases, or a writer in
/// another process would slip in while a reader here still holds its guard.
#[test]
fn the_kernel_shared_lock_lasts_until_the_last_thread_releases() {
    const TEST: &str = "the_kernel_shared_lock_lasts_until_the_last_thread_releases";
    if let Some(ctx) = child(TEST) {
        let (_store, lock) = open(&ctx.args()[0]);
        ctx.report("writer_got_in", lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path());
    let (_store, lock) = open(&path);
    let probe = || spawn(TEST, "probe", &[path.display().to_string()]).finish_ok().report::<bool>("writer_got_in");

    let first = lock.lock_shared(LockScope::Whole).unwrap();
    let second = std::thread::scope(|s| s.spawn(|| lock.try_lock_shared(LockScope::Whole).unwrap()).join().unwrap())
        .expect("a second reader thread gets in beside the first");
    drop(first);
    assert!(!probe(), "one thread of this process still holds shared access");
    drop(second);
    assert!(probe(), "the last shared holder released the lock");
}

/// Exclusive and shared access exclude each other, between threads and processes.
#[test]
fn exclusive_and_shared_access_exclude_each_other() {
    contract("exclusive_and_shared_access_exclude_each_other").exclusive_and_shared_exclude_each_other();
}

/// A writer killed mid-write is cleaned up by the next holder of the lock.
#[test]
fn a_dead_writers_slot_is_repaired_by_the_next_holder() {
    contract("a_dead_writers_slot_is_repaired_by_the_next_holder").a_dead_writers_slot_is_repaired_by_the_next_holder();
}

/// One lock whatever path reaches the store file (symlink, hard link, `../`).
#[test]
fn every_path_to_the_store_is_one_lock() {
    contract("every_path_to_the_store_is_one_lock").every_path_to_the_file_is_one_lock();
}
