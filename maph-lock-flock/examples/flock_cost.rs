//! What the flock coordinator costs per acquisition, uncontended, on this machine.
//!
//! ```sh
//! cargo run --release -p maph-lock-flock --example flock_cost
//! ```
//!
//! Compare with the bare system calls: `gcc -O2 -o /tmp/limits shared/tools/limits.c && /tmp/limits`.

use std::time::Instant;

use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_flock::FlockCoordinator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const N: u32 = 200_000;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cost.maph");
    Store::create(&path, Config::new(4096).strategy(FlockCoordinator::STRATEGY))?;
    let store = Store::open(&path, Mode::ReadWrite)?;
    let lock = FlockCoordinator::new(&store)?;

    for (name, scope) in [("exclusive", true), ("shared", false)] {
        let started = Instant::now();
        for _ in 0..N {
            if scope {
                drop(lock.lock_exclusive(LockScope::Whole)?);
            } else {
                drop(lock.lock_shared(LockScope::Whole)?);
            }
        }
        println!("{name:>9} lock + unlock          {:>8.1} ns", started.elapsed().as_nanos() as f64 / f64::from(N));
    }

    let started = Instant::now();
    for i in 0..N {
        store.set(&lock, format!("key{}", i % 1000).as_bytes(), b"value")?;
    }
    println!("store.set under the lock         {:>8.1} ns", started.elapsed().as_nanos() as f64 / f64::from(N));
    Ok(())
}
