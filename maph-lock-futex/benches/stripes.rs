//! Parallel writers across processes: throughput of one writer process, of two
//! writer processes on keys in different stripes, and of two on a global lock.
//!
//! `cargo bench -p maph-lock-futex --bench stripes`
//!
//! Each writer process does `store.update` (read, increment, commit) of its
//! own key for a fixed time; the figure is the total of completed updates per
//! second. The issue's target: two processes on different stripes reach at
//! least 1.6x one process on a 2-core machine, with zero lost updates. Not a
//! test: the numbers depend on the machine and its load. Each run checks that
//! every key grew by exactly the updates its writer reported, and stops with
//! an error if an update was lost.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maph_core::{Config, Mode, Store};
use maph_lock_futex::FutexCoordinator;

const CHILD_ENV: &str = "MAPH_FUTEX_BENCH_WRITER";
const RUN: Duration = Duration::from_secs(2);
const REPEATS: usize = 3;
const STRIPES: u32 = 16;

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        writer(&spec);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let striped = dir.path().join("striped.maph");
    let global = dir.path().join("global.maph");
    for (path, stripes) in [(&striped, STRIPES), (&global, 1)] {
        Store::create(path, Config::new(4096).strategy(FutexCoordinator::STRATEGY)).unwrap();
        let store = Arc::new(Store::open(path, Mode::ReadWrite).unwrap());
        FutexCoordinator::striped(store, stripes).unwrap();
    }
    let (a, b) = keys_in_different_stripes(&striped);
    println!("writer processes doing store.update for {RUN:?} each, best of {REPEATS}:");
    let one = best(|| run(&[(&striped, STRIPES, &a)]));
    println!("  1 process,  striped ({STRIPES}):          {:>10.0} updates/s", one);
    let two = best(|| run(&[(&striped, STRIPES, &a), (&striped, STRIPES, &b)]));
    println!("  2 processes, different stripes: {:>10.0} updates/s  ({:.2}x one process)", two, two / one);
    let two_global = best(|| run(&[(&global, 1, &a), (&global, 1, &b)]));
    println!(
        "  2 processes, global lock:       {:>10.0} updates/s  ({:.2}x one process)",
        two_global,
        two_global / one
    );
    println!("lost updates: 0 (every run checked)");
}

/// Two keys whose probe windows each lie in one stripe, far apart.
fn keys_in_different_stripes(path: &std::path::Path) -> (String, String) {
    let store = Arc::new(Store::open(path, Mode::ReadWrite).unwrap());
    let lock = FutexCoordinator::striped(store.clone(), STRIPES).unwrap();
    let stripe = |k: &str| {
        let mask = lock.stripes_of(store.scope_of(k.as_bytes()));
        (mask.count_ones() == 1).then(|| mask.trailing_zeros())
    };
    let key_in = |s: u32| (0..).map(|i| format!("writer:{i}")).find(|k| stripe(k) == Some(s)).unwrap();
    (key_in(0), key_in(STRIPES / 2))
}

fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..REPEATS).map(|_| f()).fold(0.0, f64::max)
}

/// The counter under `key` (0 if absent).
fn counter(path: &std::path::Path, key: &str) -> u64 {
    let store = Store::open(path, Mode::ReadOnly).unwrap();
    store.get(key.as_bytes()).unwrap().map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap())
}

/// Runs one writer process per entry at once; returns total updates per second.
/// Panics if a key did not grow by exactly the updates its writer reported.
fn run(writers: &[(&std::path::PathBuf, u32, &String)]) -> f64 {
    let before: Vec<u64> = writers.iter().map(|(path, _, key)| counter(path, key)).collect();
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = writers
        .iter()
        .map(|(path, stripes, key)| {
            Command::new(&exe)
                .env(CHILD_ENV, format!("{}\u{1f}{stripes}\u{1f}{key}", path.display()))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Wait for every child to be ready, then start them together.
    for c in &mut children {
        let mut ready = [0u8; 1];
        c.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    }
    for c in &mut children {
        drop(c.stdin.take());
    }
    let done: Vec<u64> = children
        .into_iter()
        .map(|c| String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap().trim().parse::<u64>().unwrap())
        .collect();
    for (((path, _, key), before), done) in writers.iter().zip(&before).zip(&done) {
        let grew = counter(path, key) - before;
        assert_eq!(grew, *done, "{key}: {} lost updates", done.saturating_sub(grew));
    }
    done.iter().sum::<u64>() as f64 / RUN.as_secs_f64()
}

fn writer(spec: &str) {
    let parts: Vec<&str> = spec.split('\u{1f}').collect();
    let store = Arc::new(Store::open(parts[0], Mode::ReadWrite).unwrap());
    let lock = FutexCoordinator::striped(store.clone(), parts[1].parse().unwrap()).unwrap();
    let key = parts[2].as_bytes();
    let mut out = std::io::stdout();
    out.write_all(b"r").unwrap();
    out.flush().unwrap();
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink).unwrap(); // EOF: go
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < RUN {
        for _ in 0..64 {
            store
                .update(&lock, key, |old| {
                    let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                    Some((n + 1).to_string())
                })
                .unwrap();
        }
        done += 64;
    }
    println!("{done}");
}
