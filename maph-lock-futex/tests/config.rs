//! Bad configurations get clear errors, never a half-attached lock.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::futex_config;
use maph_core::{Config, Error, LockScope, Mode, Store};
use maph_lock_futex::{region, FutexCoordinator};

fn fresh(config: Config) -> (tempfile::TempDir, Arc<Store>) {
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("config.maph");
    Store::create(&path, config).unwrap();
    let store = Arc::new(Store::open(&path, Mode::ReadWrite).unwrap());
    (dir, store)
}

#[test]
fn a_store_of_another_strategy_is_refused() {
    let (_dir, store) = fresh(Config::new(64));
    let err = FutexCoordinator::global(store).unwrap_err();
    assert!(matches!(err, Error::StrategyMismatch { .. }), "{err}");
}

#[test]
fn a_read_only_handle_is_refused() {
    let (_dir, store) = fresh(futex_config(64));
    let read_only = Store::open(store.path(), Mode::ReadOnly).unwrap();
    assert!(matches!(FutexCoordinator::global(read_only), Err(Error::ReadOnly)));
}

#[test]
fn impossible_stripe_counts_are_refused() {
    let (_dir, store) = fresh(futex_config(16));
    for k in [0, region::MAX_STRIPES + 1, 17] {
        let err = FutexCoordinator::striped(store.clone(), k).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{k}: {err}");
    }
    // Nothing was set up by the refused attempts.
    assert_eq!(store.coordinator_word(region::WORD_MAGIC).unwrap().unwrap().load(Ordering::Relaxed), 0);
    assert_eq!(FutexCoordinator::striped(store, 16).unwrap().stripes(), 16);
}

#[test]
fn the_first_stripe_count_is_the_only_one() {
    let (_dir, store) = fresh(futex_config(1024));
    let first = FutexCoordinator::striped(store.clone(), 8).unwrap();
    let err = FutexCoordinator::striped(store.clone(), 4).unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig(m) if m.contains("8 stripe")), "{err}");
    assert!(FutexCoordinator::global(store.clone()).is_err());
    let adopted = FutexCoordinator::attach(store.clone()).unwrap();
    assert_eq!((first.stripes(), adopted.stripes()), (8, 8));
    // A fresh store attached without a count is global.
    let (_dir2, other) = fresh(futex_config(64));
    assert_eq!(FutexCoordinator::attach(other).unwrap().stripes(), 1);
}

#[test]
fn a_foreign_region_is_refused() {
    let (_dir, store) = fresh(futex_config(64));
    store.coordinator_word(region::WORD_MAGIC).unwrap().unwrap().store(0xdead_beef, Ordering::Relaxed);
    let err = FutexCoordinator::global(store).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("0xdeadbeef")), "{err}");
}

#[test]
fn another_layout_version_is_refused() {
    let (_dir, store) = fresh(futex_config(64));
    drop(FutexCoordinator::global(store.clone()).unwrap());
    // Version 2: the layout before attachment locks, whose processes this
    // build could not tell from dead ones.
    store.coordinator_word(region::WORD_VERSION).unwrap().unwrap().store(2, Ordering::Relaxed);
    let err = FutexCoordinator::global(store).unwrap_err();
    assert!(
        matches!(&err, Error::Coordination { detail, .. }
            if detail.contains("version 2") && detail.contains("older") && detail.contains("recreate")),
        "{err}"
    );
}

/// The namespace recorded is replaced when nobody is attached (a restarted
/// container), and refused while somebody is. Across real namespaces (as
/// root): `tests/namespaces.rs`.
#[test]
fn another_pid_namespace_is_refused_while_attached_and_replaced_when_gone() {
    let (_dir, store) = fresh(futex_config(64));
    let attached = FutexCoordinator::global(store.clone()).unwrap();
    let ns = store.coordinator_word(region::WORD_PID_NAMESPACE).unwrap().unwrap();
    let ours = ns.load(Ordering::Relaxed);
    assert_ne!(ours, 0, "the namespace is recorded");
    // As if the coordinator still attached belonged to another namespace.
    ns.store(ours.wrapping_add(1), Ordering::Relaxed);
    let err = FutexCoordinator::global(store.clone()).unwrap_err();
    assert!(matches!(&err, Error::Coordination { detail, .. } if detail.contains("pid namespace")), "{err}");
    drop(attached);
    // Nobody is attached now: the old namespace has no writer left.
    let lock = FutexCoordinator::global(store.clone()).unwrap();
    assert_eq!(ns.load(Ordering::Relaxed), ours);
    store.set(&lock, b"k", b"v").unwrap();
}

#[test]
fn a_coordinator_writes_only_its_own_store() {
    let (_dir, store) = fresh(futex_config(64));
    let (_dir2, other) = fresh(futex_config(64));
    let lock = FutexCoordinator::global(store).unwrap();
    assert!(matches!(other.set(&lock, b"k", b"v"), Err(Error::WrongStore)));
}

#[test]
fn scopes_map_to_the_stripes_they_overlap() {
    let (_dir, store) = fresh(futex_config(100));
    let lock = FutexCoordinator::striped(store, 4).unwrap(); // 25 slots per stripe
    assert_eq!(lock.stripes_of(LockScope::Whole), 0b1111);
    assert_eq!(lock.stripes_of(LockScope::window(3, 10, 100)), 0b0001);
    assert_eq!(lock.stripes_of(LockScope::window(20, 10, 100)), 0b0011);
    assert_eq!(lock.stripes_of(LockScope::window(95, 10, 100)), 0b1001, "a wrapping window");
    assert_eq!((lock.stripe_of_slot(24), lock.stripe_of_slot(25), lock.stripe_of_slot(99)), (0, 1, 3));
}

#[test]
fn uneven_stripes_cover_every_slot() {
    let (_dir, store) = fresh(futex_config(10));
    let lock = FutexCoordinator::striped(store, 6).unwrap(); // 2 slots per stripe: stripe 5 is empty
    assert_eq!(lock.stripe_of_slot(9), 4);
    assert_eq!(lock.stripes_of(LockScope::window(8, 4, 10)), 0b1_0001);
}
