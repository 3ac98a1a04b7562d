//! Who may write which shard, across real processes: foreign writes are refused
//! with the owner's pid, a second claimer is refused, a dead owner's shard can
//! be claimed again, and with a lock per shard every process may write everywhere.

mod common;

use std::time::{Duration, Instant};

use common::{keys_of_shard, retry_while_released_lease_lingers, value_of, TestFlock};
use maph_core::{Error as CoreError, Mode, WriteCoordinator};
use maph_shard::{Error, ShardConfig, ShardedStore};
use maph_testkit::{child, spawn, start_all};

/// A process writing a key of a shard another process owns gets `NotOwner` with
/// that process's pid, and nothing is written; claiming the shard gets `WriterBusy`.
#[test]
fn foreign_shard_write_is_refused_and_a_second_claimer_is_busy() {
    const TEST: &str = "foreign_shard_write_is_refused_and_a_second_claimer_is_busy";
    if let Some(ctx) = child(TEST) {
        let dir: String = ctx.arg(0);
        let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
        let owned_key = keys_of_shard(&store.router(), 0, "owned:", 1).remove(0);
        let foreign_key = keys_of_shard(&store.router(), 0, "foreign:", 1).remove(0);
        match ctx.role() {
            "owner" => {
                store.claim(0).unwrap();
                store.set(owned_key.as_bytes(), b"by the owner").unwrap();
                ctx.report("claimed", 1);
                ctx.wait_for_start(); // hold the shard until the parent is done
            }
            "intruder" => {
                store.claim(1).unwrap(); // another shard: free
                match store.set(foreign_key.as_bytes(), b"must not land") {
                    Err(Error::NotOwner { shard, owner_pid }) => {
                        ctx.report("not_owner_shard", shard);
                        ctx.report("not_owner_pid", owner_pid.unwrap_or(0));
                    }
                    other => panic!("expected NotOwner, got {other:?}"),
                }
                match store.claim(0) {
                    Err(Error::Store(CoreError::WriterBusy { pid })) => ctx.report("busy_pid", pid.unwrap_or(0)),
                    other => panic!("expected WriterBusy, got {:?}", other.map(|_| ())),
                }
                // Reads of the owned shard are not blocked by its owner.
                let seen = store.get(owned_key.as_bytes()).unwrap();
                ctx.report("reads_owner_value", u8::from(seen.as_deref() == Some(&b"by the owner"[..])));
            }
            other => panic!("unknown role {other}"),
        }
        ctx.exit();
    }

    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    let manifest = ShardedStore::create(&dir, &ShardConfig::new(2, 128)).unwrap();
    let arg = vec![dir.display().to_string()];
    let mut owner = spawn(TEST, "owner", &arg);
    owner.wait_for_report("claimed");
    let owner_pid = owner.pid();

    let intruder = spawn(TEST, "intruder", &arg).finish_ok();
    assert_eq!(intruder.report::<u32>("not_owner_shard"), 0);
    assert_eq!(intruder.report::<u32>("not_owner_pid"), owner_pid, "NotOwner names the owner");
    assert_eq!(intruder.report::<u32>("busy_pid"), owner_pid, "WriterBusy names the owner");
    assert_eq!(intruder.report::<u8>("reads_owner_value"), 1);
    owner.finish_ok();

    let foreign_key = keys_of_shard(&manifest.router(), 0, "foreign:", 1).remove(0);
    let store = ShardedStore::open(&dir, Mode::ReadOnly).unwrap();
    assert_eq!(store.get(foreign_key.as_bytes()).unwrap(), None, "the refused write left nothing");
    assert_eq!(store.len(), 1);
}

/// An owner SIGKILLed in the middle of writing leaves its shard unwritable only
/// until another process claims it: the lease died with it, the claim succeeds
/// and repairs what the owner left half-written, and every key reads whole.
#[test]
fn a_killed_owners_shard_can_be_claimed_by_another_process() {
    const TEST: &str = "a_killed_owners_shard_can_be_claimed_by_another_process";
    if let Some(ctx) = child(TEST) {
        let dir: String = ctx.arg(0);
        let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
        store.claim(0).unwrap();
        ctx.report("claimed", 1);
        // Write keys of shard 0 until killed.
        let keys = keys_of_shard(&store.router(), 0, "k", 15_000);
        loop {
            for k in &keys {
                store.set(k.as_bytes(), value_of(k).as_bytes()).unwrap();
            }
        }
    }

    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    ShardedStore::create(&dir, &ShardConfig::new(2, 50_000).slot_size(128).max_probes(32)).unwrap();
    let mut owner = spawn(TEST, "owner", &[dir.display().to_string()]);
    owner.wait_for_report("claimed");
    let owner_pid = owner.pid();

    let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    let probe = keys_of_shard(&store.router(), 0, "probe:", 1).remove(0);
    // While the owner lives, its shard is its own.
    match store.claim(0) {
        Err(Error::Store(CoreError::WriterBusy { pid })) => assert_eq!(pid, Some(owner_pid)),
        other => panic!("expected WriterBusy, got {:?}", other.map(|_| ())),
    }
    match store.set(probe.as_bytes(), b"x") {
        Err(Error::NotOwner { shard: 0, owner_pid: pid }) => assert_eq!(pid, Some(owner_pid)),
        other => panic!("expected NotOwner, got {other:?}"),
    }

    // Kill it mid-write: wait (a real condition, bounded) until it has written a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.shard(0).unwrap().len() < 5_000 {
        assert!(Instant::now() < deadline, "the owner wrote too little in 60 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    owner.kill();
    let status = owner.finish().status;
    assert!(!status.success(), "the owner was killed: {status}");

    // Dead owner: no live pid to name, and the shard is claimable at once.
    match store.set(probe.as_bytes(), b"x") {
        Err(Error::NotOwner { shard: 0, owner_pid: None }) => {}
        other => panic!("expected NotOwner without a live owner, got {other:?}"),
    }
    store.claim(0).expect("a dead owner's lease is free");
    store.set(probe.as_bytes(), b"written by the new owner").unwrap();

    let shard = store.shard(0).unwrap();
    let report = shard.verify();
    assert!(report.is_clean(), "the claim repaired every half-written slot: {report:?}");
    let repaired = store.coordinator(0).unwrap().repair_report();
    println!("killed owner after {} keys; the claim repaired {repaired:?}", shard.len());
    for entry in shard.iter() {
        let (key, value) = entry.unwrap();
        let key = String::from_utf8(key).unwrap();
        if key != probe {
            assert_eq!(value, value_of(&key).as_bytes(), "key {key} reads whole");
        }
    }
    assert_eq!(store.get(probe.as_bytes()).unwrap().as_deref(), Some(&b"written by the new owner"[..]));
}

/// `claim_all` is all or nothing: when one shard is owned elsewhere, the shards
/// it had taken are released again.
#[test]
fn claim_all_takes_every_shard_or_none() {
    const TEST: &str = "claim_all_takes_every_shard_or_none";
    if let Some(ctx) = child(TEST) {
        let mut store = ShardedStore::open(ctx.arg::<String>(0), Mode::ReadWrite).unwrap();
        store.claim(2).unwrap();
        ctx.report("claimed", 1);
        ctx.wait_for_start();
        ctx.exit();
    }
    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    ShardedStore::create(&dir, &ShardConfig::new(4, 64)).unwrap();
    let mut owner = spawn(TEST, "owner", &[dir.display().to_string()]);
    owner.wait_for_report("claimed");

    let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    match store.claim_all() {
        Err(Error::Store(CoreError::WriterBusy { pid })) => assert_eq!(pid, Some(owner.pid())),
        other => panic!("expected WriterBusy, got {other:?}"),
    }
    assert_eq!(store.claimed().count(), 0, "nothing stays claimed");
    // Shards 0 and 1 were taken and released: another handle can take them now.
    let mut other = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    retry_while_released_lease_lingers(|| other.claim(0).map(drop)).unwrap();
    retry_while_released_lease_lingers(|| other.claim(1).map(drop)).unwrap();
    drop(other);
    owner.finish_ok();
    retry_while_released_lease_lingers(|| store.claim_all()).expect("no owner is left");
    assert_eq!(store.claimed().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
}

/// Partition, and lock within a partition: with a lock coordinator per shard
/// every process claims every shard, and read-modify-writes of the same
/// counters from all of them still add up exactly.
#[test]
fn with_a_lock_per_shard_every_process_writes_every_shard() {
    const TEST: &str = "with_a_lock_per_shard_every_process_writes_every_shard";
    const PROCS: usize = 3;
    const SHARDS: u32 = 4;
    const PER_SHARD: usize = 2;
    const M: u64 = 1_000;
    let counters = |store: &ShardedStore<TestFlock>| -> Vec<String> {
        (0..SHARDS).flat_map(|s| keys_of_shard(&store.router(), s, "counter:", PER_SHARD)).collect()
    };
    if let Some(ctx) = child(TEST) {
        let mut store = ShardedStore::open_with(ctx.arg::<String>(0), Mode::ReadWrite, TestFlock::new).unwrap();
        store.claim_all().unwrap();
        let keys = counters(&store);
        ctx.wait_for_start();
        for _ in 0..M {
            for key in &keys {
                store
                    .update(key.as_bytes(), |old| {
                        let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        Some((n + 1).to_string())
                    })
                    .unwrap();
            }
        }
        let contended: u64 = (0..SHARDS).map(|s| store.coordinator(s).unwrap().contention().contended).sum();
        ctx.report("contended", contended);
        ctx.exit();
    }

    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    ShardedStore::create(&dir, &ShardConfig::new(SHARDS, 64).strategy(TestFlock::STRATEGY)).unwrap();
    let arg = vec![dir.display().to_string()];
    let mut procs: Vec<_> = (0..PROCS).map(|_| spawn(TEST, "writer", &arg)).collect();
    start_all(&mut procs);
    let contended: u64 = procs.into_iter().map(|p| p.finish_ok().report::<u64>("contended")).sum();

    let store = ShardedStore::open_with(&dir, Mode::ReadOnly, TestFlock::new).unwrap();
    for key in counters(&store) {
        let n: u64 = String::from_utf8(store.get(key.as_bytes()).unwrap().unwrap()).unwrap().parse().unwrap();
        assert_eq!(n, PROCS as u64 * M, "counter {key}");
    }
    println!("{PROCS} processes x {} increments over {SHARDS} locked shards: exact; {contended} waits", M * 8);
    // A single-writer claim of a lock-coordinated store is refused, not silently mixed.
    let mut wrong = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    assert!(matches!(wrong.claim(0), Err(Error::Store(CoreError::StrategyMismatch { .. }))));
}
