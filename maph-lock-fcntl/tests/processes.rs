//! FcntlCoordinator across real processes, through the shared harness.
//!
//! The uncoordinated baseline (the same race losing updates) is
//! `maph-core/tests/counter_race.rs::uncoordinated_writers_lose_updates`; it uses
//! the same process and increment counts as the races here.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common::*;
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_fcntl::FcntlCoordinator;
use maph_testkit::{child, spawn, start_all, Child, CounterRace};

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

/// The reference design's Test 3: two processes (there: the REST API and a C++
/// app) each write their own key under the lock, at the same time.
#[test]
fn reference_test_3_two_processes_write_their_own_keys() {
    const TEST: &str = "reference_test_3_two_processes_write_their_own_keys";
    if let Some(ctx) = child(TEST) {
        let (store, lock) = open(&ctx.args()[0], &ctx.args()[1]);
        ctx.wait_for_start();
        store.set(&lock, ctx.args()[2].as_bytes(), ctx.args()[3].as_bytes()).unwrap();
        ctx.exit();
    }
    for variant in [OFD_WHOLE, OFD_RANGE, CLASSIC_RANGE] {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "hybrid.maph");
        let arg = |k: &str, v: &str| vec![path.display().to_string(), variant.into(), k.into(), v.into()];
        let mut writers = vec![
            spawn(TEST, "rest", &arg("rest_key1", "from_rest_api")),
            spawn(TEST, "cpp", &arg("cpp_key1", "from_cpp_app")),
        ];
        start_all(&mut writers);
        writers.into_iter().for_each(|w| drop(w.finish_ok()));

        let reader = Store::open(&path, Mode::ReadOnly).unwrap();
        assert_eq!(reader.get(b"rest_key1").unwrap().as_deref(), Some(&b"from_rest_api"[..]), "{variant}");
        assert_eq!(reader.get(b"cpp_key1").unwrap().as_deref(), Some(&b"from_cpp_app"[..]), "{variant}");
        assert_eq!(reader.len(), 2, "{variant}");
    }
}

/// Reference pitfall 2: a panic inside the write closure must not leave the lock
/// held. Another process finds it free at once (a `try_`, not a wait).
#[test]
fn a_panic_inside_a_write_releases_the_lock() {
    const TEST: &str = "a_panic_inside_a_write_releases_the_lock";
    if let Some(ctx) = child(TEST) {
        let (_store, lock) = open(&ctx.args()[0], &ctx.args()[1]);
        ctx.report("free", lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
        ctx.exit();
    }
    for variant in ALL {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "panic.maph");
        let (store, lock) = open(&path, variant);
        // A key's update (its window, in byte-range mode), then a whole-store write.
        let in_update =
            catch_unwind(AssertUnwindSafe(|| store.update(&lock, b"k", |_| -> Option<Vec<u8>> { panic!("app bug") })));
        let in_write = catch_unwind(AssertUnwindSafe(|| {
            store.write(&lock, |tx| {
                tx.set(b"half", b"done")?;
                panic!("the application fails mid-write");
            })
        }));
        assert!(in_update.is_err() && in_write.is_err(), "the panics propagate to the caller");
        assert_eq!(store.get(b"half").unwrap(), None, "nothing of the panicked write was committed");

        let probe = spawn(TEST, "probe", &[path.display().to_string(), variant.to_string()]).finish_ok();
        assert!(probe.report::<bool>("free"), "{variant}: another process must get the lock at once");
        std::thread::scope(|s| {
            let other_thread = s.spawn(|| lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
            assert!(other_thread.join().unwrap(), "{variant}: and another thread of this process");
        });
    }
}

/// A holder killed by SIGKILL blocks no one: the kernel drops its locks, the
/// next acquirer gets them promptly, and the store is whole.
#[test]
fn a_holder_killed_by_sigkill_blocks_no_one() {
    const TEST: &str = "a_holder_killed_by_sigkill_blocks_no_one";
    if let Some(ctx) = child(TEST) {
        let (store, lock) = open(&ctx.args()[0], &ctx.args()[1]);
        let guard = lock.lock_exclusive(store.scope_of(b"written-by")).unwrap();
        store.write_with(&guard, |tx| tx.set(b"written-by", b"the holder")).unwrap();
        ctx.report("locked", std::process::id());
        ctx.wait_for_start(); // never: the parent kills us first
        drop(guard);
        ctx.exit();
    }
    for variant in [OFD_WHOLE, OFD_RANGE, CLASSIC_RANGE] {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "kill.maph");
        let mut holder = spawn(TEST, "holder", &[path.display().to_string(), variant.to_string()]);
        holder.wait_for_report("locked");
        let (store, lock) = open(&path, variant);
        let scope = store.scope_of(b"written-by");
        assert!(lock.try_lock_exclusive(scope).unwrap().is_none(), "{variant}: the holder holds the lock");

        holder.kill();
        let started = Instant::now();
        let guard = lock.lock_exclusive_for(scope, GENEROUS).expect("the lock of a killed holder is free");
        println!("{variant}: acquired {:?} after SIGKILL", started.elapsed());
        store.write_with(&guard, |tx| tx.set(b"written-by", b"the next writer")).unwrap();
        drop(guard);

        let died = holder.finish();
        assert_eq!(died.status.signal(), Some(libc::SIGKILL), "{}", died.describe());
        assert_eq!(store.get(b"written-by").unwrap().as_deref(), Some(&b"the next writer"[..]));
        let report = store.verify();
        assert!(report.is_clean(), "{variant}: {report:?}");
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
/// across processes, as do OFD and classic locks: a whole-file holder blocks a
/// range locker, a range holder blocks a whole-file locker and overlapping
/// ranges, and leaves disjoint ranges free.
#[test]
fn whole_file_and_byte_range_and_classic_locks_interoperate() {
    const TEST: &str = "whole_file_and_byte_range_and_classic_locks_interoperate";
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
        (CLASSIC_RANGE, "100:10", OFD_RANGE, window(100, 1), false),
        (CLASSIC_RANGE, "100:10", OFD_RANGE, window(200, 10), true),
        (OFD_RANGE, "100:10", CLASSIC_RANGE, window(90, 11), false),
        (OFD_RANGE, "100:10", CLASSIC_RANGE, window(200, 10), true),
        (CLASSIC_WHOLE, "whole", OFD_RANGE, window(0, 1), false),
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
        let (_store, lock) = open(&path, OFD_RANGE);
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

/// What shared access is for: a reader holding it sees several keys of one
/// write together. A writer process keeps setting `a` and `b` to the same value
/// in one whole-store write; reader threads of this process must never see
/// them differ.
#[test]
fn shared_guards_give_reader_threads_a_consistent_view_of_several_keys() {
    const TEST: &str = "shared_guards_give_reader_threads_a_consistent_view_of_several_keys";
    const WRITES: u64 = 20_000;
    if let Some(ctx) = child(TEST) {
        let (store, lock) = open(&ctx.args()[0], &ctx.args()[1]);
        ctx.wait_for_start();
        for i in 0..WRITES {
            let v = i.to_string();
            store.write(&lock, |tx| tx.set(b"a", v.as_bytes()).and_then(|()| tx.set(b"b", v.as_bytes()))).unwrap();
        }
        ctx.exit();
    }
    for variant in [OFD_RANGE, CLASSIC_RANGE] {
        let dir = maph_testkit::temp_dir();
        let path = new_store(dir.path(), "view.maph");
        let (store, lock) = open(&path, variant);
        let mut writer = spawn(TEST, "writer", &[path.display().to_string(), variant.to_string()]);
        let done = std::sync::atomic::AtomicBool::new(false);
        let (checks, torn) = std::thread::scope(|s| {
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let (mut checks, mut torn) = (0u64, 0u64);
                        while !done.load(std::sync::atomic::Ordering::Relaxed) {
                            let guard = lock.lock_shared(LockScope::Whole).unwrap();
                            let a = store.get(b"a").unwrap();
                            std::thread::yield_now(); // give a writer every chance to slip in
                            let b = store.get(b"b").unwrap();
                            drop(guard);
                            checks += 1;
                            torn += u64::from(a != b);
                            // Leave gaps, or the readers could keep the writer out forever.
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        (checks, torn)
                    })
                })
                .collect();
            writer.start();
            writer.finish_ok();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            readers.into_iter().map(|r| r.join().unwrap()).fold((0, 0), |(c, t), (c2, t2)| (c + c2, t + t2))
        });
        println!("{variant}: {checks} reads checked, {torn} torn");
        assert!(checks > 0);
        assert_eq!(torn, 0, "{variant}: a reader holding shared access saw a half-applied write");
        assert_eq!(counter(&store, b"a"), WRITES - 1);
    }
}
