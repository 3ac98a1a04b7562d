//! FcntlCoordinator across real processes, through the shared harness.
//!
//! The uncoordinated baseline (the same race losing updates) is
//! `maph-core/tests/counter_race.rs::uncoordinated_writers_lose_updates`; it uses
//! the same process and increment counts as the races here.

mod common;

use std::time::{Duration, Instant};

use common::*;
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_fcntl::FcntlCoordinator;
use maph_testkit::{child, spawn, start_all, Child, Contract, CounterRace};

const PROCS: usize = 4;
const INCREMENTS: u64 = 20_000;

fn race(test: &str, variant: &'static str, counters: usize) {
    let report = CounterRace::new(test, PROCS, INCREMENTS).counters(counters).run(config(), move |s| make(s, variant));
    println!("{variant}, {counters} counter(s): {report}");
    assert_eq!(report.actual, report.expected, "{report}");
    let each = report.expected / counters as u64;
    assert!(report.per_counter.iter().all(|&n| n == each), "every counter ends at {each}: {report:?}");
    assert_eq!(report.acquisitions, report.expected, "one acquisition per increment: {report}");
}

/// P processes × M read-modify-write increments of one counter lose nothing,
/// under each granularity and lock kind.
#[test]
fn race_whole_file() {
    race("race_whole_file", OFD_WHOLE, 1);
}

#[test]
fn race_byte_range() {
    race("race_byte_range", OFD_RANGE, 1);
}

/// Several counters on different keys: the writers of different keys run in
/// parallel, and every counter still ends exact.
#[test]
fn race_byte_range_several_counters() {
    race("race_byte_range_several_counters", OFD_RANGE, 8);
}

#[test]
fn race_classic_whole_file() {
    race("race_classic_whole_file", CLASSIC_WHOLE, 1);
}

#[test]
fn race_classic_byte_range_several_counters() {
    race("race_classic_byte_range_several_counters", CLASSIC_RANGE, 8);
}

/// Two processes with three threads each, every thread incrementing a key of
/// its own and one key they all share: threads and processes together.
#[test]
fn threads_of_several_processes_lose_nothing() {
    const TEST: &str = "threads_of_several_processes_lose_nothing";
    const THREADS: usize = 3;
    const EACH: u64 = 2_000;
    if let Some(ctx) = child(TEST) {
        let (store, lock) = open(&ctx.args()[0], &ctx.args()[1]);
        let me: String = ctx.arg(2);
        ctx.wait_for_start();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (store, lock, own) = (&store, &lock, format!("own:{me}:{t}"));
                s.spawn(move || {
                    for _ in 0..EACH {
                        increment(store, lock, own.as_bytes());
                        increment(store, lock, b"shared");
                    }
                });
            }
        });
        ctx.exit();
    }
    for variant in [OFD_RANGE, CLASSIC_RANGE] {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "threads.maph");
        let args = |me: &str| vec![path.display().to_string(), variant.to_string(), me.to_string()];
        let mut children = vec![spawn(TEST, "a", &args("a")), spawn(TEST, "b", &args("b"))];
        start_all(&mut children);
        children.into_iter().for_each(|c| drop(c.finish_ok()));
        let store = Store::open(&path, Mode::ReadOnly).unwrap();
        assert_eq!(counter(&store, b"shared"), 2 * THREADS as u64 * EACH, "{variant}");
        for me in ["a", "b"] {
            for t in 0..THREADS {
                assert_eq!(counter(&store, format!("own:{me}:{t}").as_bytes()), EACH, "{variant} own:{me}:{t}");
            }
        }
    }
}

/// The coordinator contract (maph-testkit) for one variant, run across processes.
fn contract(test: &str, variant: &'static str) -> Contract<impl Fn(&Store) -> maph_core::Result<FcntlCoordinator>> {
    Contract::new(test, config(), move |store: &Store| make(store, variant)).label(variant)
}

/// The reference design's Test 3: two processes each write their own key under
/// the lock at the same time.
#[test]
fn reference_test_3_two_processes_write_their_own_keys() {
    for variant in [OFD_WHOLE, OFD_RANGE, CLASSIC_RANGE] {
        contract("reference_test_3_two_processes_write_their_own_keys", variant).two_processes_write_their_own_keys();
    }
}

/// Reference pitfall 2: a panic inside an update or a write leaves the lock free.
#[test]
fn a_panic_inside_a_write_releases_the_lock() {
    for variant in ALL {
        contract("a_panic_inside_a_write_releases_the_lock", variant).panic_inside_a_write_releases_the_lock();
    }
}

/// The kernel drops a SIGKILLed holder's locks; the next acquirer gets them promptly.
#[test]
fn a_holder_killed_by_sigkill_blocks_no_one() {
    for variant in [OFD_WHOLE, OFD_RANGE, CLASSIC_RANGE] {
        contract("a_holder_killed_by_sigkill_blocks_no_one", variant).holder_killed_by_sigkill_blocks_no_one();
    }
}

/// A wait past the slow-wait threshold (on a holder in another process) is
/// reported to the hook, once, with its length.
#[test]
fn a_slow_wait_is_reported_to_the_hook() {
    for variant in [OFD_RANGE, CLASSIC_RANGE] {
        contract("a_slow_wait_is_reported_to_the_hook", variant).slow_waits_are_reported();
    }
}

/// A read-only handle, a store of another strategy and another store's
/// coordinator are refused, in every variant.
#[test]
fn writers_that_may_not_write_are_refused() {
    for variant in ALL {
        contract("writers_that_may_not_write_are_refused", variant).writers_that_may_not_write_are_refused();
    }
}

/// OFD locks are on the store file: no lock file is made beside the store.
#[test]
fn no_lock_file_is_needed_beside_the_store() {
    for variant in [OFD_WHOLE, OFD_RANGE] {
        contract("no_lock_file_is_needed_beside_the_store", variant).no_lock_file_is_needed_beside_the_store();
    }
}

/// Classic locks use a lock file named after the store: when it cannot be made
/// (directory moved, a directory in its place, permission denied for a
/// non-root child), the error names it and says why.
#[test]
fn classic_lock_file_errors_are_clear() {
    for variant in [CLASSIC_WHOLE, CLASSIC_RANGE] {
        contract("classic_lock_file_errors_are_clear", variant)
            .lock_file_errors_are_clear(|store| maph_lock_fcntl::classic_lock_path(store).unwrap());
    }
}

/// Reader threads holding shared guards never see half of a two-key write made
/// by a writer process.
#[test]
fn shared_guards_give_reader_threads_a_consistent_view_of_several_keys() {
    for variant in [OFD_RANGE, CLASSIC_RANGE] {
        contract("shared_guards_give_reader_threads_a_consistent_view_of_several_keys", variant)
            .shared_guards_give_a_consistent_view_of_several_keys(20_000);
    }
}

/// A child holding `scope` (given as "whole" or "first:len") under `variant`
/// until the parent starts it.
fn spawn_holder(test: &str, path: &std::path::Path, variant: &str, scope: &str, access: &str) -> Child {
    let args = [path.display().to_string(), variant.into(), scope.into(), access.into()];
    let mut holder = spawn(test, "holder", &args);
    holder.wait_for_report("locked");
    holder
}

fn scope_arg(scope: &str) -> LockScope {
    match scope.split_once(':') {
        None => LockScope::Whole,
        Some((first, len)) => window(first.parse().unwrap(), len.parse().unwrap()),
    }
}

/// The child side of `spawn_holder`.
fn hold(test: &str) {
    if let Some(ctx) = child(test) {
        let (_store, lock) = open(&ctx.args()[0], &ctx.args()[1]);
        let scope = scope_arg(&ctx.args()[2]);
        if ctx.args()[3] == "shared" {
            let _guard = lock.lock_shared(scope).unwrap();
            ctx.report("locked", 1);
            ctx.wait_for_start();
        } else {
            let _guard = lock.lock_exclusive(scope).unwrap();
            ctx.report("locked", 1);
            ctx.wait_for_start();
        }
        ctx.exit();
    }
}

/// While another process holds the lock, a deadline gives up with LockTimeout:
/// never before the deadline, and not absurdly after it. In byte-range mode a
/// window that does not overlap the holder's is free meanwhile.
#[test]
fn a_deadline_is_honoured_while_another_process_holds_the_lock() {
    const TEST: &str = "a_deadline_is_honoured_while_another_process_holds_the_lock";
    hold(TEST);
    for variant in [OFD_WHOLE, OFD_RANGE, CLASSIC_RANGE] {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "deadline.maph");
        let mut holder = spawn_holder(TEST, &path, variant, "100:10", "exclusive");
        let (_store, lock) = open(&path, variant);

        let wait = Duration::from_millis(150);
        let deadline = Instant::now() + wait;
        let err = lock.lock_exclusive_until(window(105, 10), deadline).unwrap_err();
        let returned = Instant::now();
        assert!(returned >= deadline, "{variant}: gave up {:?} before the deadline", deadline - returned);
        assert!(returned < deadline + GENEROUS, "{variant}: gave up {:?} after the deadline", returned - deadline);
        match err {
            Error::LockTimeout { strategy, waited } => {
                assert_eq!(strategy, FcntlCoordinator::STRATEGY);
                assert!(waited >= wait, "reported waiting {waited:?}, less than {wait:?}");
            }
            other => panic!("expected LockTimeout, got {other:?}"),
        }
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(matches!(lock.lock_shared_until(window(109, 1), deadline), Err(Error::LockTimeout { .. })));
        assert!(Instant::now() >= deadline);

        let elsewhere = lock.try_lock_exclusive(window(2000, 10)).unwrap();
        assert_eq!(
            elsewhere.is_some(),
            variant != OFD_WHOLE,
            "{variant}: a disjoint window is free in byte-range mode"
        );
        drop(elsewhere);
        let stats = lock.contention();
        assert_eq!(stats.timeouts, 2 + u64::from(variant == OFD_WHOLE), "{variant}: {stats:?}");

        holder.start();
        holder.finish_ok();
        drop(lock.lock_exclusive_for(window(105, 10), GENEROUS).expect("free once the holder released it"));
    }
}

/// Whole-file and byte-range coordinators (one strategy tag) interoperate
/// across processes, with either lock kind: a whole-file holder blocks a range
/// locker, a range holder blocks a whole-file locker and overlapping ranges,
/// and leaves disjoint ranges free.
#[test]
fn whole_file_and_byte_range_locks_interoperate() {
    const TEST: &str = "whole_file_and_byte_range_locks_interoperate";
    hold(TEST);
    // (holder variant, holder scope, prober variant, prober scope, free?)
    let cases = [
        (OFD_WHOLE, "whole", OFD_RANGE, window(100, 10), false),
        (OFD_WHOLE, "500:10", OFD_RANGE, window(3000, 10), false), // whole-file mode ignores the window
        (OFD_RANGE, "100:10", OFD_WHOLE, window(3000, 10), false),
        (OFD_RANGE, "100:10", OFD_RANGE, LockScope::Whole, false),
        (OFD_RANGE, "100:10", OFD_RANGE, window(109, 5), false),
        (OFD_RANGE, "100:10", OFD_RANGE, window(110, 5), true),
        (OFD_RANGE, "100:10", OFD_RANGE, window(95, 5), true),
        (CLASSIC_RANGE, "100:10", CLASSIC_RANGE, window(100, 1), false),
        (CLASSIC_RANGE, "100:10", CLASSIC_RANGE, window(200, 10), true),
        (CLASSIC_RANGE, "100:10", CLASSIC_WHOLE, window(90, 11), false),
        (CLASSIC_WHOLE, "whole", CLASSIC_RANGE, window(0, 1), false),
    ];
    for (holder_variant, held, prober_variant, probe, free) in cases {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "interop.maph");
        let mut holder = spawn_holder(TEST, &path, holder_variant, held, "exclusive");
        let (_store, prober) = open(&path, prober_variant);
        let got = prober.try_lock_exclusive(probe).unwrap();
        assert_eq!(got.is_some(), free, "{holder_variant} holding {held} vs {prober_variant} asking for {probe:?}");
        drop(got);
        holder.start();
        holder.finish_ok();
    }
}

/// OFD and classic locks live on different files (the store, and a lock file
/// named after it), so they would not exclude each other: a store keeps the
/// kind of its first fcntl coordinator, a coordinator asking for the other
/// kind is refused with an error that says so, and `Auto` follows the store,
/// even on a machine that has OFD locks.
#[test]
fn a_store_keeps_the_lock_kind_of_its_first_writer() {
    const TEST: &str = "a_store_keeps_the_lock_kind_of_its_first_writer";
    hold(TEST);
    for (first, other) in [(CLASSIC_RANGE, OFD_RANGE), (OFD_WHOLE, CLASSIC_WHOLE)] {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "kind.maph");
        let mut holder = spawn_holder(TEST, &path, first, "100:10", "exclusive");
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        match make(&store, other) {
            Err(Error::Coordination { detail, .. }) => assert!(detail.contains("Auto"), "{detail}"),
            other_result => panic!("{first} store, {other} coordinator: {:?}", other_result.map(|_| ())),
        }
        let auto =
            FcntlCoordinator::with_options(&store, options(first).lock_kind(maph_lock_fcntl::LockKind::Auto)).unwrap();
        assert_eq!(auto.lock_kind(), options(first).lock_kind, "Auto follows the store");
        assert!(auto.try_lock_exclusive(window(100, 1)).unwrap().is_none(), "{first}: excluded by the holder");
        holder.start();
        holder.finish_ok();
    }
}

/// A window that wraps past the last slot is two ranges, taken low first; both
/// are held, and a wrapping request that gets the low range but not the high
/// one gives the low one back.
#[test]
fn a_wrapping_window_locks_both_ends_of_the_table() {
    const TEST: &str = "a_wrapping_window_locks_both_ends_of_the_table";
    hold(TEST);
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path(), "wrap.maph");
    let (_store, lock) = open(&path, OFD_RANGE);

    let first = SLOTS - 2; // slots SLOTS-2, SLOTS-1, 0, 1
    let mut holder = spawn_holder(TEST, &path, OFD_RANGE, &format!("{first}:4"), "exclusive");
    for (slot, free) in [(SLOTS - 3, true), (SLOTS - 2, false), (SLOTS - 1, false), (0, false), (1, false), (2, true)] {
        let got = lock.try_lock_exclusive(window(slot, 1)).unwrap();
        assert_eq!(got.is_some(), free, "slot {slot}");
    }
    holder.start();
    holder.finish_ok();

    // Only the last slot held elsewhere: slots 0..4 are free and taken first,
    // then SLOTS-2..SLOTS is refused, and 0..4 must be free again afterwards, as
    // another coordinator (other descriptions) sees.
    let mut holder = spawn_holder(TEST, &path, OFD_RANGE, &format!("{}:1", SLOTS - 1), "exclusive");
    assert!(lock.try_lock_exclusive(LockScope::window(SLOTS - 2, 6, SLOTS)).unwrap().is_none());
    let deadline = Instant::now() + Duration::from_millis(50);
    assert!(lock.lock_exclusive_until(LockScope::window(SLOTS - 2, 6, SLOTS), deadline).is_err());
    let (_store, observer) = open(&path, OFD_RANGE);
    assert!(observer.try_lock_exclusive(window(0, 4)).unwrap().is_some(), "the low range was given back");
    holder.start();
    holder.finish_ok();
    assert!(lock.try_lock_exclusive(LockScope::window(SLOTS - 2, 6, SLOTS)).unwrap().is_some());
}

/// Shared holders of one window in two processes coexist and keep writers of
/// that window out; writers elsewhere are not kept out.
#[test]
fn shared_windows_coexist_across_processes_and_keep_writers_out() {
    const TEST: &str = "shared_windows_coexist_across_processes_and_keep_writers_out";
    hold(TEST);
    for variant in [OFD_RANGE, CLASSIC_RANGE] {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "shared.maph");
        let mut reader = spawn_holder(TEST, &path, variant, "100:10", "shared");
        let (_store, lock) = open(&path, variant);
        let mine = lock.try_lock_shared(window(100, 10)).unwrap().expect("shared locks coexist across processes");
        drop(mine);
        let (_store, other) = open(&path, variant);
        assert!(other.try_lock_exclusive(window(105, 1)).unwrap().is_none(), "{variant}: the reader keeps writers out");
        assert!(other.try_lock_exclusive(window(110, 10)).unwrap().is_some(), "{variant}: but not elsewhere");
        reader.start();
        reader.finish_ok();
        assert!(other.lock_exclusive_for(window(105, 1), GENEROUS).is_ok(), "{variant}: free once the reader left");
    }
}

/// Exclusive and shared access exclude each other, between threads and processes.
#[test]
fn exclusive_and_shared_access_exclude_each_other() {
    for variant in ALL {
        contract("exclusive_and_shared_access_exclude_each_other", variant).exclusive_and_shared_exclude_each_other();
    }
}

/// A writer killed mid-write is cleaned up by the next holder of the lock,
/// whole-file and byte-range alike.
#[test]
fn a_dead_writers_slot_is_repaired_by_the_next_holder() {
    for variant in ALL {
        contract("a_dead_writers_slot_is_repaired_by_the_next_holder", variant)
            .a_dead_writers_slot_is_repaired_by_the_next_holder();
    }
}

/// One lock whatever path reaches the store file (symlink, hard link in the
/// same directory, `../`), in every granularity and lock kind.
#[test]
fn every_path_to_the_store_is_one_lock() {
    for variant in ALL {
        contract("every_path_to_the_store_is_one_lock", variant).every_path_to_the_file_is_one_lock();
    }
}
