//! Offline resharding: every entry survives, jump hashing moves the expected
//! share of keys (and only into new shards), the old layout is never changed,
//! and a failed reshard leaves no partial layout behind.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{retry_while_released_lease_lingers as retry, value_of, TestFlock};
use maph_core::{Error as CoreError, Mode};
use maph_shard::{reshard, Error, Reshard, ShardConfig, ShardedStore, MANIFEST_FILE};
use maph_testkit::{child, spawn};

const KEYS: u64 = 6_000;

fn key(i: u64) -> String {
    format!("entry:{i}")
}

/// A store of `shards` shards holding `KEYS` entries, written and closed.
fn filled(shards: u32) -> (tempfile::TempDir, PathBuf) {
    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("old");
    // Load about 1/3: far from maph-core's TableFull with a 32-slot probe window.
    let slots = KEYS * 3 / u64::from(shards);
    ShardedStore::create(&dir, &ShardConfig::new(shards, slots).slot_size(128).max_probes(32)).unwrap();
    let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    store.claim_all().unwrap();
    for i in 0..KEYS {
        store.set(key(i).as_bytes(), value_of(&key(i)).as_bytes()).unwrap();
    }
    (tmp, dir)
}

/// A shard's sorted entries and its write counter.
type ShardPrint = (Vec<(Vec<u8>, Vec<u8>)>, u64);

/// Everything that must not change in the old layout: the manifest, and each
/// shard's entries and write counter.
fn fingerprint(dir: &Path) -> (Vec<u8>, Vec<ShardPrint>) {
    let store = ShardedStore::open(dir, Mode::ReadOnly).unwrap();
    let shards = (0..store.shard_count())
        .map(|s| {
            let shard = store.shard(s).unwrap();
            let mut entries: Vec<_> = shard.iter().map(|e| e.unwrap()).collect();
            entries.sort();
            (entries, shard.generation())
        })
        .collect();
    (fs::read(dir.join(MANIFEST_FILE)).unwrap(), shards)
}

#[test]
fn reshard_4_to_7_keeps_every_entry_and_moves_only_what_jump_hashing_moves() {
    const TEST: &str = "reshard_4_to_7_keeps_every_entry_and_moves_only_what_jump_hashing_moves";
    if let Some(ctx) = child(TEST) {
        // A fresh process reads every entry through the new layout.
        let store = ShardedStore::open(ctx.arg::<String>(0), Mode::ReadOnly).unwrap();
        let right = (0..KEYS)
            .filter(|&i| store.get(key(i).as_bytes()).unwrap().as_deref() == Some(value_of(&key(i)).as_bytes()))
            .count();
        ctx.report("right", right);
        ctx.report("len", store.len());
        ctx.exit();
    }

    let (tmp, old) = filled(4);
    let before = fingerprint(&old);
    let new = tmp.path().join("new");
    let report = retry(|| reshard(&old, &new, 7)).unwrap();
    println!("{report}");
    assert_eq!((report.from_shards, report.to_shards, report.entries), (4, 7, KEYS));
    assert_eq!(report.per_shard.iter().sum::<u64>(), KEYS);

    let reader = spawn(TEST, "reader", &[new.display().to_string()]).finish_ok();
    assert_eq!(reader.report::<u64>("right"), KEYS, "{}", reader.describe());
    assert_eq!(reader.report::<u64>("len"), KEYS);

    // Jump hashing: a key stays in its shard or moves to one of the new shards
    // 4..7, and about 1 - 4/7 = 3/7 of them move (modulo would move ~6/7).
    let (old_router, new_router) = (
        ShardedStore::open(&old, Mode::ReadOnly).unwrap().router(),
        ShardedStore::open(&new, Mode::ReadOnly).unwrap().router(),
    );
    assert_eq!(old_router.seed(), new_router.seed(), "the routing seed is kept");
    let mut moved = 0;
    for i in 0..KEYS {
        let (a, b) = (old_router.route(key(i).as_bytes()), new_router.route(key(i).as_bytes()));
        if a != b {
            assert!(b >= 4, "key {i} moved from shard {a} to old shard {b}");
            moved += 1;
        }
    }
    assert_eq!(report.moved, moved);
    // 6000 keys: the share's standard deviation is 0.0064; 0.04 is over 6 of them.
    let expected = 3.0 / 7.0;
    assert!(
        (report.moved_fraction() - expected).abs() < 0.04,
        "moved {:.3}, expected {expected:.3}",
        report.moved_fraction()
    );

    assert_eq!(fingerprint(&old), before, "the old layout is untouched");
}

#[test]
fn reshard_to_fewer_shards_keeps_every_entry() {
    let (tmp, old) = filled(4);
    let new = tmp.path().join("new");
    let report = retry(|| Reshard::new(2).slots_per_shard(8_192).run(&old, &new)).unwrap();
    assert_eq!(report.entries, KEYS);
    let store = ShardedStore::open(&new, Mode::ReadOnly).unwrap();
    assert_eq!((store.shard_count(), store.manifest().slots_per_shard), (2, 8_192));
    for i in 0..KEYS {
        assert_eq!(store.get(key(i).as_bytes()).unwrap().unwrap(), value_of(&key(i)).as_bytes());
    }
}

#[test]
fn reshard_refuses_a_non_empty_target_and_writes_nothing() {
    let (tmp, old) = filled(2);
    let before = fingerprint(&old);
    let new = tmp.path().join("new");
    fs::create_dir(&new).unwrap();
    fs::write(new.join("notes.txt"), b"mine").unwrap();
    let err = retry(|| reshard(&old, &new, 3)).unwrap_err();
    assert!(matches!(&err, Error::TargetNotEmpty { path } if *path == new), "{err:?}");
    assert_eq!(fs::read_dir(&new).unwrap().count(), 1);
    // Resharding into the old directory itself is the same case.
    assert!(matches!(retry(|| reshard(&old, &old, 3)), Err(Error::TargetNotEmpty { .. })));
    assert_eq!(fingerprint(&old), before);
}

#[test]
fn reshard_refuses_zero_shards_and_writes_nothing() {
    let (tmp, old) = filled(2);
    let new = tmp.path().join("new");
    assert!(matches!(retry(|| reshard(&old, &new, 0)), Err(Error::ZeroShards { .. })));
    assert!(!new.exists());
}

#[test]
fn reshard_refuses_while_an_owner_is_writing() {
    const TEST: &str = "reshard_refuses_while_an_owner_is_writing";
    if let Some(ctx) = child(TEST) {
        let mut store = ShardedStore::open(ctx.arg::<String>(0), Mode::ReadWrite).unwrap();
        store.claim(1).unwrap();
        ctx.report("claimed", 1);
        ctx.wait_for_start();
        ctx.exit();
    }
    let (tmp, old) = filled(2);
    let mut owner = spawn(TEST, "owner", &[old.display().to_string()]);
    owner.wait_for_report("claimed");
    let new = tmp.path().join("new");
    match retry(|| reshard(&old, &new, 3)) {
        Err(Error::Store(CoreError::WriterBusy { pid })) => assert_eq!(pid, Some(owner.pid())),
        other => panic!("expected WriterBusy, got {other:?}"),
    }
    assert!(!new.exists(), "nothing was created");
    owner.finish_ok();
    retry(|| reshard(&old, &new, 3)).expect("with the owner gone the reshard runs");
}

#[test]
fn a_failed_reshard_removes_the_partial_layout() {
    let (tmp, old) = filled(4);
    let before = fingerprint(&old);
    // 7 shards of 64 slots cannot hold 6000 entries: the copy fails part way.
    let made = tmp.path().join("made");
    let err = retry(|| Reshard::new(7).slots_per_shard(64).run(&old, &made)).unwrap_err();
    assert!(matches!(err, Error::Store(CoreError::TableFull { .. })), "{err:?}");
    assert!(!made.exists(), "the directory the reshard made is gone");

    // A target that existed empty stays, empty.
    let existing = tmp.path().join("existing");
    fs::create_dir(&existing).unwrap();
    let err = retry(|| Reshard::new(7).slots_per_shard(64).run(&old, &existing)).unwrap_err();
    assert!(matches!(err, Error::Store(CoreError::TableFull { .. })), "{err:?}");
    assert_eq!(fs::read_dir(&existing).unwrap().count(), 0, "every file it made is gone");

    assert_eq!(fingerprint(&old), before, "the old layout is untouched");
    // The source's leases were released: it can be resharded properly now.
    assert_eq!(retry(|| reshard(&old, &existing, 7)).unwrap().entries, KEYS);
}

#[test]
fn reshard_with_a_lock_per_shard_keeps_the_strategy() {
    let tmp = maph_testkit::temp_dir();
    let old = tmp.path().join("old");
    let config = ShardConfig::new(2, 1_024).max_probes(32).strategy(TestFlock::STRATEGY);
    ShardedStore::create(&old, &config).unwrap();
    {
        let mut store = ShardedStore::open_with(&old, Mode::ReadWrite, TestFlock::new).unwrap();
        store.claim_all().unwrap();
        for i in 0..500 {
            store.set(key(i).as_bytes(), value_of(&key(i)).as_bytes()).unwrap();
        }
    }
    let new = tmp.path().join("new");
    // Single-writer claims cannot freeze a lock-coordinated layout: refused, nothing made.
    assert!(matches!(reshard(&old, &new, 3), Err(Error::Store(CoreError::StrategyMismatch { .. }))));
    assert!(!new.exists());

    let report = Reshard::new(3).run_with(&old, &new, TestFlock::new).unwrap();
    assert_eq!(report.entries, 500);
    let mut store = ShardedStore::open_with(&new, Mode::ReadWrite, TestFlock::new).unwrap();
    assert_eq!(store.manifest().strategy, TestFlock::STRATEGY);
    store.claim_all().unwrap();
    store.set(b"after", b"reshard").unwrap();
    assert_eq!(store.len(), 501);
}
