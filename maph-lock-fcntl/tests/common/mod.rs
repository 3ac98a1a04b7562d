//! Helpers shared by the integration tests: the coordinator variants under test
//! (named, so a child process can be told which one to make) and small store helpers.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::time::Duration;

use maph_core::{Config, LockScope, Mode, Result, Store, WriteCoordinator};
use maph_lock_fcntl::{FcntlCoordinator, FcntlOptions, Granularity, LockKind};

/// "Not absurdly late": far beyond any scheduling delay on a loaded 2-core machine.
pub const GENEROUS: Duration = Duration::from_secs(10);

/// Slots in the test stores: room for many disjoint probe windows.
pub const SLOTS: u64 = 4096;

pub const OFD_WHOLE: &str = "ofd-whole";
pub const OFD_RANGE: &str = "ofd-range";
pub const CLASSIC_WHOLE: &str = "classic-whole";
pub const CLASSIC_RANGE: &str = "classic-range";
pub const ALL: [&str; 4] = [OFD_WHOLE, OFD_RANGE, CLASSIC_WHOLE, CLASSIC_RANGE];

pub fn options(variant: &str) -> FcntlOptions {
    let (granularity, kind) = match variant {
        OFD_WHOLE => (Granularity::WholeFile, LockKind::OpenFileDescription),
        OFD_RANGE => (Granularity::ByteRange, LockKind::OpenFileDescription),
        CLASSIC_WHOLE => (Granularity::WholeFile, LockKind::Classic),
        CLASSIC_RANGE => (Granularity::ByteRange, LockKind::Classic),
        other => panic!("unknown variant {other}"),
    };
    FcntlOptions::new().granularity(granularity).lock_kind(kind)
}

pub fn make(store: &Store, variant: &str) -> Result<FcntlCoordinator> {
    FcntlCoordinator::with_options(store, options(variant))
}

pub fn config() -> Config {
    Config::new(SLOTS).strategy(FcntlCoordinator::STRATEGY)
}

pub fn new_store(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    Store::create(&path, config()).unwrap();
    path
}

pub fn open(path: impl AsRef<Path>, variant: &str) -> (Store, FcntlCoordinator) {
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    let lock = make(&store, variant).unwrap();
    (store, lock)
}

pub fn increment(store: &Store, lock: &impl WriteCoordinator, key: &[u8]) {
    store
        .update(lock, key, |old| {
            let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
            Some((n + 1).to_string())
        })
        .unwrap();
}

pub fn counter(store: &Store, key: &[u8]) -> u64 {
    store.get(key).unwrap().map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

/// A window of `len` slots from `first` in the test stores.
pub fn window(first: u64, len: u32) -> LockScope {
    LockScope::window(first, len, SLOTS)
}

/// Whether two scopes share a slot.
pub fn overlap(a: LockScope, b: LockScope) -> bool {
    a.ranges().any(|x| b.ranges().any(|y| x.start < y.end && y.start < x.end))
}
