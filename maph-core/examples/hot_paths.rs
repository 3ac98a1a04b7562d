//! A quick, honest measurement of the hot paths and of a writer's start, for
//! comparing two builds on one machine in one run (the benchmark harness in
//! `benches/` is the reference; this one needs nothing but maph-core).
//!
//! ```text
//! cargo run --release -p maph-core --example hot_paths -- ops DIR [SLOTS] [sparse]  # get hit/miss, set: ns per op
//! cargo run --release -p maph-core --example hot_paths -- micro DIR      # the same paths in cache: CPU cost
//! cargo run --release -p maph-core --example hot_paths -- start DIR N    # writer start on an N-slot store
//! ```
//!
//! `ops` fills a store (1,000,000 slots unless SLOTS is given) to half with
//! 64-byte values (created sparse if asked, as version 1 stores were) and times
//! batches of random gets (present and absent keys) and sets (overwrites,
//! through a `SingleWriter`), printing the median and the spread of 9 batches.
//! `start` creates an N-slot store (if missing) whose last writer closed
//! cleanly, drops the file from the page cache (`posix_fadvise`, this file
//! only), and times, in this fresh process, what `maph set` does: open the
//! store read-write, take the writer lease, set one key.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use maph_core::{Config, Mode, SingleWriter, Store};

const BATCH: u64 = 200_000;
const ROUNDS: usize = 9;
/// Batches of the in-cache measurement (`micro`): the minimum filters out a loaded machine.
const MICRO_ROUNDS: usize = 40;

fn key(i: u64) -> Vec<u8> {
    format!("key:{i:016x}").into_bytes()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn summary(mut ns: Vec<f64>) -> String {
    ns.sort_by(f64::total_cmp);
    format!("median {:7.1} ns  (min {:.1}, max {:.1})", ns[ns.len() / 2], ns[0], ns[ns.len() - 1])
}

fn time_batch(op: impl FnMut(u64)) -> f64 {
    time_n(BATCH, op)
}

fn time_n(n: u64, mut op: impl FnMut(u64)) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        op(i);
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

/// In cache (4,096 slots, 2,048 keys): the CPU cost of the paths, min and
/// median of many short batches.
fn micro(dir: &Path) -> Result<(), maph_core::Error> {
    let path = dir.join("micro.maph");
    let _ = std::fs::remove_file(&path);
    Store::create(&path, Config::new(4096))?;
    let store = Store::open(&path, Mode::ReadWrite)?;
    let writer = SingleWriter::new(&store)?;
    let value = [b'v'; 64];
    let keys: Vec<Vec<u8>> = (0..2048).map(key).collect();
    keys.iter().try_for_each(|k| store.set(&writer, k, &value))?;
    let absent: Vec<Vec<u8>> = (2048..4096).map(key).collect();
    let mut out = Vec::with_capacity(128);
    let (mut get_hit, mut get_miss, mut set) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..MICRO_ROUNDS {
        get_hit.push(time_n(20_000, |i| assert!(store.get_into(&keys[(i % 2048) as usize], &mut out).unwrap())));
        get_miss.push(time_n(20_000, |i| assert!(!store.get_into(&absent[(i % 2048) as usize], &mut out).unwrap())));
        set.push(time_n(20_000, |i| store.set(&writer, &keys[(i % 2048) as usize], &value).unwrap()));
    }
    // The floor the read path adds to: one xxh3-64 of what a hit checks (meta,
    // sequence, a 20-byte key, a 64-byte value: 100 bytes).
    let covered = [7u8; 100];
    let mut sink = 0u64;
    let hash: Vec<f64> = (0..MICRO_ROUNDS)
        .map(|_| {
            time_n(20_000, |i| {
                sink ^= xxhash_rust::xxh3::xxh3_64(std::hint::black_box(&covered[..100 - (i & 1) as usize]))
            })
        })
        .collect();
    std::hint::black_box(sink);
    println!("in cache: xxh3-64 of 100 B     {}", summary(hash));
    println!("in cache: get (present, 64 B)  {}", summary(get_hit));
    println!("in cache: get (absent)         {}", summary(get_miss));
    println!("in cache: set (overwrite)      {}", summary(set));
    drop(writer);
    drop(store);
    std::fs::remove_file(&path).ok();
    Ok(())
}

fn ops(dir: &Path, slots: u64, sparse: bool) -> Result<(), maph_core::Error> {
    let keys_in_store = slots / 2;
    let path = dir.join("hot.maph");
    let _ = std::fs::remove_file(&path);
    Store::create(&path, Config::new(slots).sparse(sparse))?;
    let store = Store::open(&path, Mode::ReadWrite)?;
    let writer = SingleWriter::new(&store)?;
    let value = [b'v'; 64];
    for chunk in (0..keys_in_store).step_by(10_000) {
        let end = (chunk + 10_000).min(keys_in_store);
        store.write(&writer, |tx| (chunk..end).try_for_each(|i| tx.set(&key(i), &value)))?;
    }
    let keys: Vec<Vec<u8>> = {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        (0..BATCH).map(|_| key(rng.next() % keys_in_store)).collect()
    };
    let absent: Vec<Vec<u8>> = (0..BATCH).map(|i| key(keys_in_store + i)).collect();
    let mut out = Vec::with_capacity(128);
    let (mut get_hit, mut get_miss, mut set) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        get_hit.push(time_batch(|i| {
            assert!(store.get_into(&keys[i as usize], &mut out).unwrap());
        }));
        get_miss.push(time_batch(|i| {
            assert!(!store.get_into(&absent[i as usize], &mut out).unwrap());
        }));
        set.push(time_batch(|i| store.set(&writer, &keys[i as usize], &value).unwrap()));
    }
    println!("get (present, 64 B)  {}", summary(get_hit));
    println!("get (absent)         {}", summary(get_miss));
    println!("set (overwrite)      {}", summary(set));
    drop(writer);
    drop(store);
    std::fs::remove_file(&path).ok();
    Ok(())
}

fn start(dir: &Path, slots: u64) -> Result<(), maph_core::Error> {
    let path = dir.join(format!("start-{slots}.maph"));
    if !path.exists() {
        Store::create(&path, Config::new(slots))?;
        let store = Store::open(&path, Mode::ReadWrite)?;
        store.set(&SingleWriter::new(&store)?, b"first", b"write")?;
    }
    // Cold: drop this file's pages from the page cache.
    let file = std::fs::File::open(&path).unwrap();
    file.sync_all().unwrap();
    // SAFETY: posix_fadvise on a descriptor we own; no memory is involved.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    drop(file);
    let started = Instant::now();
    let store = Store::open(&path, Mode::ReadWrite)?;
    let writer = SingleWriter::new(&store)?;
    store.set(&writer, b"k", b"v")?;
    let took: Duration = started.elapsed();
    println!("writer start on {slots} slots (open + lease + one set, cold): {:.3} ms", took.as_secs_f64() * 1e3);
    Ok(())
}

fn main() -> Result<(), maph_core::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["micro", dir] => micro(Path::new(dir)),
        ["ops", dir] => ops(Path::new(dir), 1_000_000, false),
        ["ops", dir, slots] => ops(Path::new(dir), slots.parse().expect("a slot count"), false),
        ["ops", dir, slots, "sparse"] => ops(Path::new(dir), slots.parse().expect("a slot count"), true),
        ["start", dir, slots] => start(Path::new(dir), slots.parse().expect("a slot count")),
        _ => {
            eprintln!("usage: hot_paths ops DIR | hot_paths start DIR SLOTS");
            std::process::exit(2);
        }
    }
}
