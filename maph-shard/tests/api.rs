//! Single-process behaviour of the handle: claims and releases, the owner pid,
//! statistics, and routing that every handle agrees on.

mod common;

use common::keys_of_shard;
use maph_core::{Error as CoreError, Mode};
use maph_shard::{Error, ShardConfig, ShardedStore};

/// A store of `shards` shards of `slots` slots. maph-core refuses a key whose
/// probe window is full (`TableFull`); with a window of 32 slots that stays
/// vanishingly rare at the loads (at most 0.3) these tests reach.
fn store(shards: u32, slots: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    let probes = 32.min(slots as u32);
    ShardedStore::create(&dir, &ShardConfig::new(shards, slots).max_probes(probes)).unwrap();
    (tmp, dir)
}

#[test]
fn release_hands_the_shard_over_and_forgets_the_owner() {
    let (_tmp, dir) = store(2, 64);
    let mut a = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    let mut b = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    a.claim(0).unwrap();
    a.claim(0).expect("claiming a shard already held does nothing");
    assert_eq!(a.owner_pid(0), Some(std::process::id()));
    // The lease is per open handle: a second handle is refused, even in this process.
    assert!(matches!(b.claim(0), Err(Error::Store(CoreError::WriterBusy { .. }))));
    let key = keys_of_shard(&a.router(), 0, "k", 1).remove(0);
    match b.set(key.as_bytes(), b"v") {
        Err(Error::NotOwner { shard: 0, owner_pid }) => assert_eq!(owner_pid, Some(std::process::id())),
        other => panic!("expected NotOwner, got {other:?}"),
    }

    a.release(0).unwrap();
    assert!(!a.is_claimed(0));
    // The pid record was cleared with the lease: nobody is named as owner.
    match b.set(key.as_bytes(), b"v") {
        Err(Error::NotOwner { shard: 0, owner_pid: None }) => {}
        other => panic!("expected NotOwner without an owner, got {other:?}"),
    }
    b.claim(0).unwrap();
    b.set(key.as_bytes(), b"v").unwrap();
    assert_eq!(a.get(key.as_bytes()).unwrap().as_deref(), Some(&b"v"[..]));
    assert!(matches!(a.set(key.as_bytes(), b"w"), Err(Error::NotOwner { .. })));
}

#[test]
fn every_handle_routes_alike_and_reads_every_shard() {
    let (_tmp, dir) = store(5, 1_024);
    let mut writer = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    writer.claim_all().unwrap();
    for i in 0..1_000 {
        writer.set(format!("k{i}").as_bytes(), format!("v{i}").as_bytes()).unwrap();
    }
    let reader = ShardedStore::open(&dir, Mode::ReadOnly).unwrap();
    assert_eq!(reader.len(), 1_000);
    let mut buf = Vec::new();
    for i in 0..1_000 {
        let key = format!("k{i}");
        assert_eq!(reader.shard_for(key.as_bytes()), writer.shard_for(key.as_bytes()));
        assert!(reader.shard(reader.shard_for(key.as_bytes())).unwrap().contains(key.as_bytes()).unwrap());
        assert!(reader.get_into(key.as_bytes(), &mut buf).unwrap());
        assert_eq!(buf, format!("v{i}").as_bytes());
    }
    assert!(!reader.contains(b"absent").unwrap());
    let mut all: Vec<_> = reader.iter().map(|e| e.unwrap()).collect();
    all.sort();
    assert_eq!(all.len(), 1_000);

    writer.remove(b"k0").unwrap();
    assert_eq!(reader.get(b"k0").unwrap(), None);
    writer.update(b"k1", |_| None::<Vec<u8>>).unwrap();
    assert_eq!(reader.len(), 998);
}

#[test]
fn stats_show_keys_load_writes_and_skew() {
    let (_tmp, dir) = store(4, 2_000);
    let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    store.claim_all().unwrap();
    for i in 0..2_000 {
        store.set(format!("k{i}").as_bytes(), b"v").unwrap();
    }
    let even = store.stats();
    assert_eq!(even.keys, 2_000);
    assert_eq!(even.shards.iter().map(|s| s.keys).sum::<u64>(), 2_000);
    for s in &even.shards {
        assert_eq!(s.slots, 2_000);
        assert!((s.load_factor - s.keys as f64 / 2_000.0).abs() < 1e-12);
        assert_eq!(s.writes, s.keys);
        assert!(s.claimed);
        assert_eq!(s.owner_pid, Some(std::process::id()));
        assert_eq!(s.contention.unwrap().acquisitions, s.keys);
    }
    // 500 keys per shard on average, standard deviation about 19: 1.25 is over 6 of them.
    assert!(even.key_skew.max_over_mean < 1.25, "{even}");
    assert!(even.key_skew.coefficient_of_variation < 0.1, "{even}");

    // One hot key: all further writes go to one shard, and the write skew shows it.
    for i in 0..20_000 {
        store.set(b"hot", format!("{i}").as_bytes()).unwrap();
    }
    let hot = store.stats();
    println!("{hot}");
    let hot_shard = store.shard_for(b"hot") as usize;
    assert_eq!(hot.shards.iter().map(|s| s.writes).enumerate().max_by_key(|&(_, w)| w).unwrap().0, hot_shard);
    assert!(hot.write_skew.max_over_mean > 3.0, "one of 4 shards takes ~92% of the writes: {hot}");
    assert!(hot.key_skew.max_over_mean < 1.25, "the keys themselves are still even: {hot}");
    assert!(format!("{hot}").contains("write skew"));

    let reader = ShardedStore::open(&dir, Mode::ReadOnly).unwrap().stats();
    assert!(reader.shards.iter().all(|s| !s.claimed && s.contention.is_none()));
    assert!(reader.shards.iter().all(|s| s.owner_pid == Some(std::process::id())), "the writer handle owns them");
}

#[test]
fn a_full_shard_reports_table_full_and_others_keep_working() {
    let (_tmp, dir) = store(2, 16);
    let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    store.claim_all().unwrap();
    let router = store.router();
    let mut full = None;
    for key in keys_of_shard(&router, 0, "k", 100) {
        if let Err(e) = store.set(key.as_bytes(), b"v") {
            full = Some(e);
            break;
        }
    }
    assert!(matches!(full, Some(Error::Store(CoreError::TableFull { .. }))), "{full:?}");
    let other = keys_of_shard(&router, 1, "k", 1).remove(0);
    store.set(other.as_bytes(), b"v").unwrap();
}
