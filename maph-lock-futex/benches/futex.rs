//! Uncontended lock + unlock: the futex lock against the primitives it is
//! built from, measured in the same run (`../shared/tools/limits.c` measures
//! the same primitives in C).
//!
//! `cargo bench -p maph-lock-futex --bench futex`

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_futex::FutexCoordinator;
use nix::fcntl::{Flock, FlockArg};

fn uncontended(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.maph");
    Store::create(&path, Config::new(4096).strategy(FutexCoordinator::STRATEGY)).unwrap();
    let store = Arc::new(Store::open(&path, Mode::ReadWrite).unwrap());
    let mut group = c.benchmark_group("uncontended lock+unlock");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    {
        let lock = FutexCoordinator::striped(store.clone(), 16).unwrap();
        let scope = store.scope_of(b"some key");
        group.bench_function("futex lock_exclusive + drop (key window, 16 stripes)", |b| {
            b.iter(|| drop(lock.lock_exclusive(*black_box(&scope)).unwrap()))
        });
    }

    {
        let global_path = dir.path().join("global.maph");
        Store::create(&global_path, Config::new(4096).strategy(FutexCoordinator::STRATEGY)).unwrap();
        let lock = FutexCoordinator::global(Store::open(&global_path, Mode::ReadWrite).unwrap()).unwrap();
        group.bench_function("futex lock_exclusive + drop (whole store, global)", |b| {
            b.iter(|| drop(lock.lock_exclusive(black_box(LockScope::Whole)).unwrap()))
        });
    }

    // The limits.c figure: a CAS and a store on a word of the same mapping (a
    // reserved word of the region, unused by a 16-stripe lock).
    let word = store.coordinator_word(760).unwrap().unwrap();
    group.bench_function("in-file CAS + store (limits.c)", |b| {
        b.iter(|| {
            let _ = black_box(word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed));
            word.store(0, Ordering::Release);
        })
    });

    let lock_file = dir.path().join("bench.lock");
    let mut file = Some(std::fs::File::create(&lock_file).unwrap());
    group.bench_function("flock LOCK_EX + LOCK_UN", |b| {
        b.iter(|| {
            let held = Flock::lock(file.take().unwrap(), FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
            file = Some(held.unlock().map_err(|(_, e)| e).unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
