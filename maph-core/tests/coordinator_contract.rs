//! The guard protocol of the trait, checked with maph-core's own coordinators
//! and a fencing test coordinator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maph_core::{
    Access, Config, ContentionCounters, Error, LocalGate, LockScope, Mode, SingleWriter, Store, Strategy, Ticket, Wait,
    WriteCoordinator,
};

fn store_at(dir: &std::path::Path, config: Config) -> Store {
    let path = dir.join("contract.maph");
    Store::create(&path, config).unwrap();
    Store::open(&path, Mode::ReadWrite).unwrap()
}

#[test]
fn threads_sharing_a_single_writer_do_not_lose_updates() {
    let dir = maph_testkit::temp_dir();
    let store = Arc::new(store_at(dir.path(), Config::new(64)));
    let writer = Arc::new(SingleWriter::new(&store).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, writer) = (store.clone(), writer.clone());
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    store
                        .update(&writer, b"n", |old| {
                            let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                            Some((n + 1).to_string())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(store.get(b"n").unwrap().as_deref(), Some(&b"20000"[..]));
    assert_eq!(writer.contention().acquisitions, 20_000);
}

#[test]
fn a_panic_inside_a_write_releases_the_lock() {
    let dir = maph_testkit::temp_dir();
    let store = store_at(dir.path(), Config::new(64));
    let writer = SingleWriter::new(&store).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.write(&writer, |tx| {
            tx.set(b"half", b"done")?;
            panic!("the application failed mid-write");
        })
    }));
    assert!(panicked.is_err());
    assert!(writer.try_lock_exclusive(LockScope::Whole).unwrap().is_some(), "the lock was released");
    assert_eq!(store.get(b"half").unwrap(), None, "nothing of the panicked write was committed");
}

#[test]
fn an_error_inside_a_write_releases_the_lock_and_writes_nothing() {
    let dir = maph_testkit::temp_dir();
    let store = store_at(dir.path(), Config::new(64));
    let writer = SingleWriter::new(&store).unwrap();
    let result = store.write(&writer, |tx| {
        tx.set(b"a", b"1")?;
        Err(Error::InvalidConfig("the caller changed its mind".into()))
    });
    assert!(result.is_err());
    assert!(writer.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
    assert_eq!((store.len(), store.generation()), (0, 0));
}

#[test]
fn a_deadline_is_honoured_and_counted() {
    let dir = maph_testkit::temp_dir();
    let store = store_at(dir.path(), Config::new(64));
    let writer = SingleWriter::new(&store).unwrap();
    let held = writer.lock_exclusive(LockScope::Whole).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let started = Instant::now();
            let deadline = started + Duration::from_millis(50);
            let err = writer.lock_exclusive_until(LockScope::Whole, deadline).unwrap_err();
            assert!(Instant::now() >= deadline, "gave up before the deadline");
            assert!(started.elapsed() < Duration::from_secs(5), "gave up far too late");
            assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
            assert!(writer.try_lock_exclusive(LockScope::Whole).unwrap().is_none());
        });
    });
    drop(held);
    let stats = writer.contention();
    assert_eq!((stats.acquisitions, stats.timeouts), (1, 2));
    assert!(stats.longest_wait >= Duration::from_millis(50));
}

/// A lock that counts the acquisition attempts made on it, so that a test can
/// wait for the condition "a waiter is inside `acquire`" instead of sleeping.
#[derive(Default)]
struct Attempted {
    gate: LocalGate,
    attempts: AtomicU64,
    counters: ContentionCounters,
}

impl WriteCoordinator for Attempted {
    fn strategy(&self) -> Strategy {
        Strategy::SINGLE_WRITER
    }
    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> maph_core::Result<Option<Ticket>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Ok(self.gate.acquire(access, wait).then(|| Ticket::new(access, scope)))
    }
    unsafe fn release(&self, ticket: Ticket) {
        // SAFETY: forwarded from the caller's contract: the ticket is ours, once.
        unsafe { self.gate.release(ticket.access) }
    }
    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }
}

#[test]
fn waits_are_measured_and_slow_waits_reported() {
    let lock = Attempted::default();
    let warnings = Arc::new(AtomicU64::new(0));
    let w = warnings.clone();
    lock.counters().warn_on_slow_wait(Duration::from_millis(5), move |_| {
        w.fetch_add(1, Ordering::Relaxed);
    });
    let held = lock.lock_exclusive(LockScope::Whole).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| drop(lock.lock_exclusive(LockScope::Whole).unwrap()));
        // The guard path tries once without waiting, then waits: two attempts
        // (after ours) mean the waiter has failed its try and is waiting.
        let asked = Instant::now();
        while lock.attempts.load(Ordering::SeqCst) < 3 {
            assert!(asked.elapsed() < Duration::from_secs(30), "the waiter never started waiting");
            std::thread::yield_now();
        }
        // A hold time past the warning threshold, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(30));
        drop(held);
        waiter.join().unwrap();
    });
    let stats = lock.contention();
    assert_eq!((stats.acquisitions, stats.contended), (2, 1));
    assert!(stats.total_wait >= Duration::from_millis(30), "{stats:?}");
    assert_eq!(warnings.load(Ordering::Relaxed), 1);
}

/// A coordinator that issues a new fencing token per acquisition and can be told
/// to present an old one, as a holder paused past its lease would.
struct Fencing {
    gate: LocalGate,
    next: AtomicU64,
    replay: AtomicU64,
    counters: ContentionCounters,
}

impl WriteCoordinator for Fencing {
    fn strategy(&self) -> Strategy {
        Strategy::new("fencing-test")
    }
    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> maph_core::Result<Option<Ticket>> {
        if !self.gate.acquire(access, wait) {
            return Ok(None);
        }
        let replay = self.replay.swap(0, Ordering::Relaxed);
        let fence = if replay > 0 { replay } else { self.next.fetch_add(1, Ordering::Relaxed) };
        Ok(Some(Ticket { fence: Some(fence), ..Ticket::new(access, scope) }))
    }
    unsafe fn release(&self, ticket: Ticket) {
        unsafe { self.gate.release(ticket.access) }
    }
    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }
}

#[test]
fn a_lower_fencing_token_is_refused() {
    let dir = maph_testkit::temp_dir();
    let store = store_at(dir.path(), Config::new(64).strategy(Strategy::new("fencing-test")));
    let coord = Fencing {
        gate: LocalGate::new(),
        next: AtomicU64::new(1),
        replay: AtomicU64::new(0),
        counters: Default::default(),
    };
    store.set(&coord, b"k", b"first").unwrap(); // token 1
    store.set(&coord, b"k", b"second").unwrap(); // token 2
    assert_eq!(store.highest_fence(), 2);
    coord.replay.store(1, Ordering::Relaxed); // a stale holder comes back with token 1
    match store.set(&coord, b"k", b"stale") {
        Err(Error::StaleFence { presented: 1, highest: 2 }) => {}
        other => panic!("expected StaleFence, got {other:?}"),
    }
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"second"[..]));
    store.set(&coord, b"k", b"third").unwrap(); // token 3 is fine
    assert_eq!(store.highest_fence(), 3);
}

#[test]
fn boxed_coordinators_work_for_strategies_chosen_at_run_time() {
    let dir = maph_testkit::temp_dir();
    let store = store_at(dir.path(), Config::new(64));
    let chosen: Box<dyn WriteCoordinator> = Box::new(SingleWriter::new(&store).unwrap());
    store.set(&chosen, b"k", b"v").unwrap();
    let guard = chosen.lock_shared(LockScope::Whole).unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    drop(guard);
    assert_eq!(chosen.contention().acquisitions, 2);
}

/// A stale holder must not even repair: the slot it would "repair" may be one a
/// newer holder is writing right now.
#[test]
fn a_stale_holder_is_refused_before_it_touches_any_slot() {
    let dir = maph_testkit::temp_dir();
    let store = store_at(dir.path(), Config::new(64).slot_size(128).strategy(Strategy::new("fencing-test")));
    let coord = Fencing {
        gate: LocalGate::new(),
        next: AtomicU64::new(1),
        replay: AtomicU64::new(0),
        counters: Default::default(),
    };
    store.set(&coord, b"k", b"v1").unwrap(); // token 1
    store.set(&coord, b"k", b"v2").unwrap(); // token 2
                                             // A newer holder is mid-write in the key's slot: its version is odd.
    let path = store.path().to_path_buf();
    let bytes = std::fs::read(&path).unwrap();
    let slot = (0..64u64)
        .find(|i| {
            let at = maph_core::format::HEADER_SIZE + *i as usize * 128;
            bytes[at + 8] == 1 && &bytes[at + 32..at + 33] == b"k"
        })
        .unwrap();
    let at = maph_core::format::HEADER_SIZE as u64 + slot * 128;
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::io::{Seek, Write};
    file.seek(std::io::SeekFrom::Start(at)).unwrap();
    file.write_all(&[bytes[at as usize] | 1]).unwrap();
    drop(file);

    coord.replay.store(1, Ordering::Relaxed); // the stale holder comes back
    let err = store.update(&coord, b"k", |_| Some(b"stale".to_vec())).unwrap_err();
    assert!(matches!(err, Error::StaleFence { presented: 1, highest: 2 }), "{err}");
    coord.replay.store(1, Ordering::Relaxed);
    let err = store.write(&coord, |tx| tx.get(b"k").map(|_| ())).unwrap_err();
    assert!(matches!(err, Error::StaleFence { .. }), "{err}");
    let still = Store::open(&path, Mode::ReadOnly).unwrap().with_read_patience(Duration::from_millis(5));
    assert_eq!(still.verify().in_progress, vec![slot], "the stale holder left the slot alone");
}

/// The single-writer lease under the shared refusal scenarios (maph-testkit):
/// a read-only handle, a store of another strategy, and another store's
/// writer are refused.
#[test]
fn a_single_writer_refuses_writers_that_may_not_write() {
    maph_testkit::Contract::new(
        "a_single_writer_refuses_writers_that_may_not_write",
        Config::new(64),
        SingleWriter::new,
    )
    .writers_that_may_not_write_are_refused();
}

/// The lease is on the store file itself: no lock file is made beside the
/// store, so a store whose directory moved, or one in a directory its writer
/// may not write to, can still be written.
#[test]
fn a_single_writer_needs_no_lock_file() {
    maph_testkit::Contract::new("a_single_writer_needs_no_lock_file", Config::new(64), SingleWriter::new)
        .no_lock_file_is_needed_beside_the_store();
}

/// Item 1 of issue 13: every path to the store file (a symlink, a hard link,
/// `dir/../dir/x.maph`) reaches one lease; the second writer is told the
/// holder's pid.
#[test]
fn a_single_writer_lease_is_one_whatever_path_reaches_the_file() {
    maph_testkit::Contract::new(
        "a_single_writer_lease_is_one_whatever_path_reaches_the_file",
        Config::new(64),
        SingleWriter::new,
    )
    .every_path_to_the_file_is_one_lock();
}

/// Shared access is not granted beside the exclusive ticket, nor exclusive
/// beside a shared one (between threads; a second process cannot even make a
/// single writer).
#[test]
fn a_single_writer_excludes_shared_and_exclusive_access() {
    maph_testkit::Contract::new(
        "a_single_writer_excludes_shared_and_exclusive_access",
        Config::new(64),
        SingleWriter::new,
    )
    .exclusive_and_shared_exclude_each_other();
}

/// A writer killed mid-write: the next single writer repairs its slot when it
/// takes the lease (from the dead writer's write-intent lane, without a scan).
#[test]
fn a_dead_single_writers_slot_is_repaired_by_the_next_one() {
    maph_testkit::Contract::new(
        "a_dead_single_writers_slot_is_repaired_by_the_next_one",
        Config::new(1024),
        SingleWriter::new,
    )
    .a_dead_writers_slot_is_repaired_by_the_next_holder();
}
