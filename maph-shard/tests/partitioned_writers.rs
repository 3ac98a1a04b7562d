//! Partitioned writers across real processes: each owns one shard, none waits
//! for another, and together they write exactly what they were given.

mod common;

use common::{keys_of_shard, value_of};
use maph_core::{Mode, WriteCoordinator};
use maph_shard::{ShardConfig, ShardedStore};
use maph_testkit::{child, spawn, start_all};

const OWNERS: u32 = 4;

/// P processes, each claiming one shard, go over the same key list and write
/// only the keys the store routes to their shard. Afterwards a fresh process
/// reads every key with the right value, and the counts add up exactly.
#[test]
fn owners_write_disjoint_keys_and_a_fresh_process_reads_them_all() {
    const TEST: &str = "owners_write_disjoint_keys_and_a_fresh_process_reads_them_all";
    const KEYS: u64 = 4_000;
    let key = |i: u64| format!("key:{i}");
    if let Some(ctx) = child(TEST) {
        let dir: String = ctx.arg(0);
        match ctx.role() {
            "owner" => {
                let shard: u32 = ctx.arg(1);
                let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
                store.claim(shard).unwrap();
                ctx.wait_for_start();
                let mut written = 0u64;
                for i in 0..KEYS {
                    let k = key(i);
                    if store.shard_for(k.as_bytes()) == shard {
                        store.set(k.as_bytes(), value_of(&k).as_bytes()).unwrap();
                        written += 1;
                    }
                }
                ctx.report("written", written);
            }
            "reader" => {
                let store = ShardedStore::open(&dir, Mode::ReadOnly).unwrap();
                let (mut right, mut wrong, mut missing) = (0u64, 0u64, 0u64);
                for i in 0..KEYS {
                    let k = key(i);
                    match store.get(k.as_bytes()).unwrap() {
                        Some(v) if v == value_of(&k).as_bytes() => right += 1,
                        Some(_) => wrong += 1,
                        None => missing += 1,
                    }
                }
                ctx.report("right", right);
                ctx.report("wrong", wrong);
                ctx.report("missing", missing);
                ctx.report("len", store.len());
            }
            other => panic!("unknown role {other}"),
        }
        ctx.exit();
    }

    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    // ~1000 keys per shard, load 0.25: a probe window of 32 keeps maph-core's TableFull away.
    let manifest = ShardedStore::create(&dir, &ShardConfig::new(OWNERS, 4_096).max_probes(32)).unwrap();
    let arg = |shard: u32| vec![dir.display().to_string(), shard.to_string()];
    let mut owners: Vec<_> = (0..OWNERS).map(|s| spawn(TEST, "owner", &arg(s))).collect();
    start_all(&mut owners);
    let written: Vec<u64> = owners.into_iter().map(|c| c.finish_ok().report("written")).collect();

    // Each process wrote exactly its shard's keys, as the router (computed here,
    // independently of the children) assigns them.
    let router = manifest.router();
    for (shard, &n) in written.iter().enumerate() {
        let expected = (0..KEYS).filter(|&i| router.route(key(i).as_bytes()) == shard as u32).count() as u64;
        assert_eq!(n, expected, "owner of shard {shard} wrote {n} keys, {expected} route there");
        assert!(n > KEYS / u64::from(OWNERS) / 2, "shard {shard} got too few keys to prove anything: {n}");
    }
    assert_eq!(written.iter().sum::<u64>(), KEYS);

    let reader = spawn(TEST, "reader", &[dir.display().to_string()]).finish_ok();
    assert_eq!(reader.report::<u64>("right"), KEYS, "{}", reader.describe());
    assert_eq!(reader.report::<u64>("wrong"), 0);
    assert_eq!(reader.report::<u64>("missing"), 0);
    assert_eq!(reader.report::<u64>("len"), KEYS);

    let stats = ShardedStore::open(&dir, Mode::ReadOnly).unwrap().stats();
    println!("{stats}");
    for (s, &n) in stats.shards.iter().zip(&written) {
        assert_eq!(s.keys, n);
        assert_eq!(s.writes, n, "one committed write per key");
        assert_eq!(s.owner_pid, None, "owners exited, so no shard has a live owner");
    }
}

/// Each owner increments counters of its own shard, M times each, in parallel
/// with the others: the totals are exact, and no owner ever waited for a lock.
#[test]
fn each_owner_increments_its_own_counters_exactly_without_waiting() {
    const TEST: &str = "each_owner_increments_its_own_counters_exactly_without_waiting";
    const COUNTERS: usize = 4;
    const M: u64 = 1_000;
    if let Some(ctx) = child(TEST) {
        let dir: String = ctx.arg(0);
        let shard: u32 = ctx.arg(1);
        let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
        store.claim(shard).unwrap();
        let counters = keys_of_shard(&store.router(), shard, "counter:", COUNTERS);
        ctx.wait_for_start();
        for _ in 0..M {
            for key in &counters {
                store
                    .update(key.as_bytes(), |old| {
                        let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        Some((n + 1).to_string())
                    })
                    .unwrap();
            }
        }
        let contention = store.coordinator(shard).unwrap().contention();
        ctx.report("acquisitions", contention.acquisitions);
        ctx.report("contended", contention.contended);
        ctx.report("timeouts", contention.timeouts);
        ctx.exit();
    }

    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    let manifest = ShardedStore::create(&dir, &ShardConfig::new(OWNERS, 256)).unwrap();
    let arg = |shard: u32| vec![dir.display().to_string(), shard.to_string()];
    let mut owners: Vec<_> = (0..OWNERS).map(|s| spawn(TEST, "owner", &arg(s))).collect();
    let started = std::time::Instant::now();
    start_all(&mut owners);
    let done: Vec<_> = owners.into_iter().map(|c| c.finish_ok()).collect();
    let elapsed = started.elapsed();

    let per_owner = COUNTERS as u64 * M;
    for (shard, d) in done.iter().enumerate() {
        assert_eq!(d.report::<u64>("acquisitions"), per_owner, "shard {shard}: one lock acquisition per update");
        assert_eq!(d.report::<u64>("contended"), 0, "shard {shard}: an owner never waits\n{}", d.describe());
        assert_eq!(d.report::<u64>("timeouts"), 0);
    }
    let store = ShardedStore::open(&dir, Mode::ReadOnly).unwrap();
    let mut total = 0;
    for shard in 0..OWNERS {
        for key in keys_of_shard(&manifest.router(), shard, "counter:", COUNTERS) {
            let value: u64 = String::from_utf8(store.get(key.as_bytes()).unwrap().unwrap()).unwrap().parse().unwrap();
            assert_eq!(value, M, "counter {key} of shard {shard}");
            total += value;
        }
    }
    assert_eq!(total, u64::from(OWNERS) * per_owner);
    println!(
        "{OWNERS} owners x {per_owner} increments: total {total} exact, 0 contended, {elapsed:?} wall \
         (process start-up included)"
    );
}
