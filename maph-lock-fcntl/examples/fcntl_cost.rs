//! What the fcntl coordinator costs per acquisition, uncontended, on this machine.
//!
//! ```sh
//! cargo run --release -p maph-lock-fcntl --example fcntl_cost
//! ```
//!
//! Compare with the bare system calls: `gcc -O2 -o /tmp/limits shared/tools/limits.c && /tmp/limits`.

use std::time::{Duration, Instant};

use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_fcntl::{FcntlCoordinator, FcntlOptions, Granularity, LockKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const N: u32 = 200_000;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cost.maph");
    Store::create(&path, Config::new(4096).strategy(FcntlCoordinator::STRATEGY))?;
    let store = Store::open(&path, Mode::ReadWrite)?;

    let variants = [
        ("OFD whole-file", Granularity::WholeFile, LockKind::OpenFileDescription),
        ("OFD byte-range", Granularity::ByteRange, LockKind::OpenFileDescription),
        ("classic whole-file", Granularity::WholeFile, LockKind::Classic),
        ("classic byte-range", Granularity::ByteRange, LockKind::Classic),
    ];
    for (name, granularity, lock_kind) in variants {
        let lock = FcntlCoordinator::with_options(&store, FcntlOptions { granularity, lock_kind })?;
        let scope = store.scope_of(b"key");
        let started = Instant::now();
        for _ in 0..N {
            drop(lock.lock_exclusive(scope)?);
        }
        let pair = started.elapsed().as_nanos() as f64 / f64::from(N);
        let started = Instant::now();
        for i in 0..N {
            store.set(&lock, format!("key{}", i % 1000).as_bytes(), b"value")?;
        }
        let set = started.elapsed().as_nanos() as f64 / f64::from(N);
        println!("{name:>18}: lock + unlock {pair:>7.1} ns, store.set under the lock {set:>7.1} ns");
        // A window that wraps is two ranges: two locks, one unlock.
        if granularity == Granularity::ByteRange {
            let wrapping = LockScope::window(4094, 4, 4096);
            let started = Instant::now();
            for _ in 0..N {
                drop(lock.lock_exclusive(wrapping)?);
            }
            let pair = started.elapsed().as_nanos() as f64 / f64::from(N);
            println!("{:>18}  wrapping window lock + unlock {pair:>7.1} ns", "");
        }
    }

    // What byte ranges buy: four threads update four different keys, each
    // holding its lock 200 µs (a slow computation under the lock).
    for granularity in [Granularity::WholeFile, Granularity::ByteRange] {
        let lock = FcntlCoordinator::with_options(&store, FcntlOptions::new().granularity(granularity))?;
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (store, lock) = (&store, &lock);
                s.spawn(move || {
                    for _ in 0..100 {
                        let key = format!("slow{t}");
                        store
                            .update(lock, key.as_bytes(), |_| {
                                std::thread::sleep(Duration::from_micros(200));
                                Some("v")
                            })
                            .unwrap();
                    }
                });
            }
        });
        println!("{granularity:?}: 4 threads x 100 slow updates of their own keys: {:?}", started.elapsed());
    }
    Ok(())
}
