//! A quick, honest measurement of the hot paths and of a writer's start, for
//! comparing two builds on one machine in one run (the benchmark harness in
//! `benches/` is the reference; this one needs nothing but maph-core).
//!
//! ```text
//! cargo run --release -p maph-core --example hot_paths -- ops DIR        # get hit/miss, set: ns per op
//! cargo run --release -p maph-core --example hot_paths -- start DIR N    # writer start on an N-slot store
//! ```
//!
//! `ops` fills a 1,000,000-slot store to half with 64-byte values and times
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

const SLOTS: u64 = 1_000_000;
const KEYS: u64 = 500_000;
const BATCH: u64 = 200_000;
const ROUNDS: usize = 9;

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

fn time_batch(mut op: impl FnMut(u64)) -> f64 {
    let started = Instant::now();
    for i in 0..BATCH {
        op(i);
    }
    started.elapsed().as_nanos() as f64 / BATCH as f64
}

fn ops(dir: &Path) -> Result<(), maph_core::Error> {
    let path = dir.join("hot.maph");
    let _ = std::fs::remove_file(&path);
    Store::create(&path, Config::new(SLOTS))?;
    let store = Store::open(&path, Mode::ReadWrite)?;
    let writer = SingleWriter::new(&store)?;
    let value = [b'v'; 64];
    for chunk in 0..KEYS / 10_000 {
        store.write(&writer, |tx| (chunk * 10_000..(chunk + 1) * 10_000).try_for_each(|i| tx.set(&key(i), &value)))?;
    }
    let keys: Vec<Vec<u8>> = {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        (0..BATCH).map(|_| key(rng.next() % KEYS)).collect()
    };
    let absent: Vec<Vec<u8>> = (0..BATCH).map(|i| key(KEYS + i)).collect();
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
        ["ops", dir] => ops(Path::new(dir)),
        ["start", dir, slots] => start(Path::new(dir), slots.parse().expect("a slot count")),
        _ => {
            eprintln!("usage: hot_paths ops DIR | hot_paths start DIR SLOTS");
            std::process::exit(2);
        }
    }
}
