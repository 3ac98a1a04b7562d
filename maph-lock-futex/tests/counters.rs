//! Lost updates are impossible: P processes × M read-modify-write increments,
//! in global and in striped mode, through the shared harness.

mod common;

use std::sync::Arc;

use common::futex_config;
use maph_core::{Mode, Store};
use maph_lock_futex::FutexCoordinator;
use maph_testkit::{child, spawn, start_all, CounterRace};

const PROCS: usize = 4;
const INCREMENTS: u64 = 3_000;

#[test]
fn global_mode_loses_no_update() {
    let report = CounterRace::new("global_mode_loses_no_update", PROCS, INCREMENTS)
        .run(futex_config(256), |store| FutexCoordinator::global(store.reopen()?));
    println!("{report}");
    assert_eq!(report.actual, report.expected, "{report}");
    if report.contended == 0 {
        eprintln!("note: the processes never had to wait for each other in this run (timing-dependent)");
    }
}

#[test]
fn striped_mode_loses_no_update_on_one_key() {
    let report = CounterRace::new("striped_mode_loses_no_update_on_one_key", PROCS, INCREMENTS)
        .run(futex_config(256), |store| FutexCoordinator::striped(store.reopen()?, 8));
    println!("{report}");
    assert_eq!(report.actual, report.expected, "{report}");
}

#[test]
fn striped_mode_loses_no_update_on_many_keys() {
    const COUNTERS: usize = 32;
    let report = CounterRace::new("striped_mode_loses_no_update_on_many_keys", PROCS, INCREMENTS)
        .counters(COUNTERS)
        .run(futex_config(1024), |store| FutexCoordinator::striped(store.reopen()?, 16));
    println!("{report}");
    assert_eq!(report.actual, report.expected, "{report}");
    // Increment i of every process goes to counter i % COUNTERS.
    for (i, &n) in report.per_counter.iter().enumerate() {
        let per_proc = (INCREMENTS + (COUNTERS - 1 - i) as u64) / COUNTERS as u64;
        assert_eq!(n, PROCS as u64 * per_proc, "counter {i}: {report}");
    }
}

/// Threads of one process share a coordinator, and several such processes run
/// at once: the in-process gate and the in-file word together exclude all of them.
#[test]
fn threads_of_several_processes_lose_no_update() {
    const TEST: &str = "threads_of_several_processes_lose_no_update";
    const THREADS: usize = 3;
    const PER_THREAD: u64 = 1_500;
    if let Some(ctx) = child(TEST) {
        let store = Arc::new(Store::open(&ctx.args()[0], Mode::ReadWrite).unwrap());
        let lock = Arc::new(FutexCoordinator::striped(store.clone(), 4).unwrap());
        ctx.wait_for_start();
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..PER_THREAD {
                        store
                            .update(&*lock, b"shared", |old| {
                                let n = old.map_or(0, |v| common::check(v, "shared"));
                                Some(common::checked(n + 1))
                            })
                            .unwrap();
                    }
                });
            }
        });
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("threads.maph");
    Store::create(&path, futex_config(128)).unwrap();
    let arg = [path.display().to_string()];
    let mut children: Vec<_> = (0..3).map(|_| spawn(TEST, "incrementer", &arg)).collect();
    start_all(&mut children);
    for c in children {
        c.finish_ok();
    }
    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!(common::read_counter(&store, b"shared"), 3 * THREADS as u64 * PER_THREAD);
}
