//! FlockCoordinator across real processes, through the shared harness.
//!
//! The uncoordinated baseline (the same race losing updates) is
//! `maph-core/tests/counter_race.rs::uncoordinated_writers_lose_updates`; it uses
//! the same process and increment counts as the race here.

use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use maph_core::{Config, Error, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_flock::FlockCoordinator;
use maph_testkit::{child, spawn, start_all, CounterRace};

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

/// The reference design's Test 3: two processes (there: the REST API and a C++
/// app) each write their own key under the lock, at the same time.
#[test]
fn reference_test_3_two_processes_write_their_own_keys() {
    const TEST: &str = "reference_test_3_two_processes_write_their_own_keys";
    if let Some(ctx) = child(TEST) {
        let (store, lock) = open(&ctx.args()[0]);
        ctx.wait_for_start();
        store.write(&lock, |tx| tx.set(ctx.args()[1].as_bytes(), ctx.args()[2].as_bytes())).unwrap();
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path());
    let arg = |k: &str, v: &str| vec![path.display().to_string(), k.to_string(), v.to_string()];
    let mut writers = vec![
        spawn(TEST, "rest", &arg("rest_key1", "from_rest_api")),
        spawn(TEST, "cpp", &arg("cpp_key1", "from_cpp_app")),
    ];
    start_all(&mut writers);
    writers.into_iter().for_each(|w| drop(w.finish_ok()));

    let reader = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!(reader.get(b"rest_key1").unwrap().as_deref(), Some(&b"from_rest_api"[..]));
    assert_eq!(reader.get(b"cpp_key1").unwrap().as_deref(), Some(&b"from_cpp_app"[..]));
    assert_eq!(reader.len(), 2);
}

/// Reference pitfall 2: a panic inside the write closure must not leave the lock
/// held. Another process finds it free at once (a `try_`, not a wait).
#[test]
fn a_panic_inside_a_write_releases_the_lock() {
    const TEST: &str = "a_panic_inside_a_write_releases_the_lock";
    if let Some(ctx) = child(TEST) {
        let (_store, lock) = open(&ctx.args()[0]);
        ctx.report("free", lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path());
    let (store, lock) = open(&path);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        store.write(&lock, |tx| {
            tx.set(b"half", b"done")?;
            panic!("the application fails mid-write");
        })
    }));
    assert!(outcome.is_err(), "the panic propagates to the caller");
    assert_eq!(store.get(b"half").unwrap(), None, "nothing of the panicked write was committed");

    let probe = spawn(TEST, "probe", &[path.display().to_string()]).finish_ok();
    assert!(probe.report::<bool>("free"), "another process must get the lock at once after the panic");
    // And this process's other threads (the in-process gate was released too).
    std::thread::scope(|s| {
        let other_thread = s.spawn(|| lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
        assert!(other_thread.join().unwrap());
    });
}

/// A holder killed by SIGKILL blocks no one: the kernel drops its lock, the next
/// acquirer gets it promptly, and the store is whole.
#[test]
fn a_holder_killed_by_sigkill_blocks_no_one() {
    const TEST: &str = "a_holder_killed_by_sigkill_blocks_no_one";
    if let Some(ctx) = child(TEST) {
        let (store, lock) = open(&ctx.args()[0]);
        let guard = lock.lock_exclusive(LockScope::Whole).unwrap();
        store.write_with(&guard, |tx| tx.set(b"written-by", b"the holder")).unwrap();
        ctx.report("locked", std::process::id());
        ctx.wait_for_start(); // never: the parent kills us first
        drop(guard);
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path());
    let mut holder = spawn(TEST, "holder", &[path.display().to_string()]);
    holder.wait_for_report("locked");
    let (store, lock) = open(&path);
    assert!(lock.try_lock_exclusive(LockScope::Whole).unwrap().is_none(), "the holder holds the lock");

    holder.kill();
    let started = Instant::now();
    let guard = lock.lock_exclusive_for(LockScope::Whole, GENEROUS).expect("the lock of a killed holder is free");
    println!("acquired {:?} after SIGKILL", started.elapsed());
    store.write_with(&guard, |tx| tx.set(b"after", b"the kill")).unwrap();
    drop(guard);

    let died = holder.finish();
    assert_eq!(died.status.signal(), Some(libc::SIGKILL), "{}", died.describe());
    assert_eq!(store.get(b"written-by").unwrap().as_deref(), Some(&b"the holder"[..]));
    let report = store.verify();
    assert!(report.is_clean(), "{report:?}");
}

/// While another process holds the lock, a deadline gives up with LockTimeout:
/// never before the deadline, and not absurdly after it.
#[test]
fn a_deadline_is_honoured_while_another_process_holds_the_lock() {
    const TEST: &str = "a_deadline_is_honoured_while_another_process_holds_the_lock";
    if let Some(ctx) = child(TEST) {
        let (_store, lock) = open(&ctx.args()[0]);
        let guard = lock.lock_exclusive(LockScope::Whole).unwrap();
        ctx.report("locked", 1);
        ctx.wait_for_start(); // hold until the parent is done timing out
        drop(guard);
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path());
    let mut holder = spawn(TEST, "holder", &[path.display().to_string()]);
    holder.wait_for_report("locked");
    let (_store, lock) = open(&path);

    let wait = Duration::from_millis(200);
    let deadline = Instant::now() + wait;
    let err = lock.lock_exclusive_until(LockScope::Whole, deadline).unwrap_err();
    let returned = Instant::now();
    assert!(returned >= deadline, "gave up {:?} before the deadline", deadline - returned);
    assert!(returned < deadline + GENEROUS, "gave up {:?} after the deadline", returned - deadline);
    match err {
        Error::LockTimeout { strategy, waited } => {
            assert_eq!(strategy, FlockCoordinator::STRATEGY);
            assert!(waited >= wait, "reported waiting {waited:?}, less than {wait:?}");
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    // Shared access is kept out by an exclusive holder just the same.
    let deadline = Instant::now() + Duration::from_millis(50);
    assert!(matches!(lock.lock_shared_until(LockScope::Whole, deadline), Err(Error::LockTimeout { .. })));
    assert!(Instant::now() >= deadline);
    let stats = lock.contention();
    assert_eq!((stats.timeouts, stats.acquisitions), (2, 0), "{stats:?}");

    holder.start();
    holder.finish_ok();
    let guard = lock.lock_exclusive_for(LockScope::Whole, GENEROUS).expect("free once the holder released it");
    drop(guard);
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

/// What shared access is for: a reader holding it sees several keys of one
/// write together. A writer process keeps setting `a` and `b` to the same value
/// in one write; reader threads of this process (sharing one kernel `LOCK_SH`)
/// must never see them differ.
#[test]
fn shared_guards_give_reader_threads_a_consistent_view_of_several_keys() {
    const TEST: &str = "shared_guards_give_reader_threads_a_consistent_view_of_several_keys";
    const WRITES: u64 = 20_000;
    if let Some(ctx) = child(TEST) {
        let (store, lock) = open(&ctx.args()[0]);
        ctx.wait_for_start();
        for i in 0..WRITES {
            let v = i.to_string();
            store.write(&lock, |tx| tx.set(b"a", v.as_bytes()).and_then(|()| tx.set(b"b", v.as_bytes()))).unwrap();
        }
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = new_store(dir.path());
    let (store, lock) = open(&path);
    let mut writer = spawn(TEST, "writer", &[path.display().to_string()]);
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
    println!("{checks} consistent reads checked, {torn} torn");
    assert!(checks > 0);
    assert_eq!(torn, 0, "a reader holding shared access saw a half-applied write");
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some((WRITES - 1).to_string().as_bytes()));
}
