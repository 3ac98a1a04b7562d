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
        // The hash seed is random per store, so which stripes a key's window
        // covers differs from run to run: pick a key whose 64-slot window lies
        // in one stripe of 256 slots (three keys in four), and one whose window
        // crosses a stripe boundary and takes two words.
        let window_taking = |stripes: u32| {
            (0..10_000u32)
                .map(|i| store.scope_of(format!("key {i}").as_bytes()))
                .find(|scope| lock.stripes_of(*scope).count_ones() == stripes)
                .expect("such a key among 10,000")
        };
        let (one, two) = (window_taking(1), window_taking(2));
        group.bench_function("futex lock_exclusive + drop (key window in one of 16 stripes)", |b| {
            b.iter(|| drop(lock.lock_exclusive(*black_box(&one)).unwrap()))
        });
        group.bench_function("futex lock_exclusive + drop (key window across two of 16 stripes)", |b| {
            b.iter(|| drop(lock.lock_exclusive(*black_box(&two)).unwrap()))
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
    // reserved word of the region, unused by a 16-stripe lock). C11's
    // `atomic_store` is sequentially consistent, an `xchg` on x86: a locked
    // operation, like the swap a futex release needs to learn of waiters.
    let word = store.coordinator_word(760).unwrap().unwrap();
    group.bench_function("in-file CAS + SeqCst store (as limits.c)", |b| {
        b.iter(|| {
            let _ = black_box(word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed));
            word.store(0, Ordering::SeqCst);
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
