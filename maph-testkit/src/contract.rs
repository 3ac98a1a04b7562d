//! The coordinator contract, checked across real processes: the scenarios every
//! lock-based coordinator must pass, written once and run by each coordinator
//! crate with its own constructor. The scenarios about refusing (writers that
//! may not write, lock files that cannot be made) are in `refusals.rs`.
//!
//! ```no_run
//! use maph_core::{Config, Result, Store, WriteCoordinator};
//! use maph_testkit::Contract;
//!
//! // In a coordinator crate's tests/, with its own constructor and strategy:
//! // #[test]
//! fn a_holder_killed_by_sigkill_blocks_no_one<C: WriteCoordinator>(make: fn(&Store) -> Result<C>, config: Config) {
//!     Contract::new("a_holder_killed_by_sigkill_blocks_no_one", config, make).holder_killed_by_sigkill_blocks_no_one();
//! }
//! ```
//!
//! A test may run one scenario several times (say, once per lock mode), each
//! under its own [`label`](Contract::label): a child only acts for the call whose
//! label and scenario it was spawned for, and passes over the others.

use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use maph_core::{Config, Error, LockScope, Mode, Result, Store, WriteCoordinator};

use crate::process::{child, spawn_with_env, start_all, ChildContext};

/// "Not absurdly late": far beyond any scheduling delay, even on a loaded
/// 2-core CI machine.
pub const GENEROUS: Duration = Duration::from_secs(10);

/// The contract scenarios for one coordinator constructor; see the module docs.
pub struct Contract<F> {
    pub(crate) test: String,
    pub(crate) label: String,
    pub(crate) config: Config,
    pub(crate) make: F,
    pub(crate) env: Vec<(String, String)>,
}

impl<C, F> Contract<F>
where
    C: WriteCoordinator,
    F: Fn(&Store) -> Result<C>,
{
    /// The scenarios for the test named `test`, on stores created with
    /// `config`, writing through coordinators made by `make`.
    pub fn new(test: &str, config: Config, make: F) -> Contract<F> {
        Contract { test: test.to_string(), label: String::from("-"), config, make, env: Vec::new() }
    }

    /// Sets an environment variable in every child (for example the address of
    /// a coordination service the parent started), where `make` can read it.
    pub fn env(mut self, key: &str, value: &str) -> Contract<F> {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub(crate) fn spawn(&self, role: &str, args: &[String]) -> crate::Child {
        spawn_with_env(&self.test, role, args, &self.env)
    }

    /// Names this run of a scenario (for tests that run one per lock mode).
    pub fn label(mut self, label: &str) -> Contract<F> {
        self.label = label.to_string();
        self
    }

    /// The child context if this process is the child of *this* scenario call.
    pub(crate) fn my_child(&self, role: &str) -> Option<ChildContext> {
        child(&self.test).filter(|ctx| ctx.role() == role && ctx.args().first() == Some(&self.label))
    }

    pub(crate) fn open(&self, path: &str) -> (Store, C) {
        let store = Store::open(path, Mode::ReadWrite).expect("open the store");
        let lock = (self.make)(&store).expect("make the coordinator");
        (store, lock)
    }

    pub(crate) fn new_store(&self, dir: &Path, name: &str) -> String {
        let path = dir.join(name);
        Store::create(&path, self.config).expect("create the store");
        path.display().to_string()
    }

    pub(crate) fn args(&self, path: &str, more: &[&str]) -> Vec<String> {
        [self.label.as_str(), path].iter().chain(more).map(|s| s.to_string()).collect()
    }

    /// The reference design's Test 3: two processes (there: the REST API and a
    /// C++ app) each write their own key under the lock at the same time; both
    /// keys are there afterwards with the right values.
    pub fn two_processes_write_their_own_keys(&self) {
        const ROLE: &str = "own-key-writer";
        if let Some(ctx) = self.my_child(ROLE) {
            let (store, lock) = self.open(&ctx.args()[1]);
            ctx.wait_for_start();
            store.set(&lock, ctx.args()[2].as_bytes(), ctx.args()[3].as_bytes()).expect("write my key");
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return; // a child of another scenario call
        }
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "test3.maph");
        let mut writers = vec![
            self.spawn(ROLE, &self.args(&path, &["rest_key1", "from_rest_api"])),
            self.spawn(ROLE, &self.args(&path, &["cpp_key1", "from_cpp_app"])),
        ];
        start_all(&mut writers);
        writers.into_iter().for_each(|w| drop(w.finish_ok()));
        let reader = Store::open(&path, Mode::ReadOnly).expect("open to read");
        let label = &self.label;
        assert_eq!(reader.get(b"rest_key1").unwrap().as_deref(), Some(&b"from_rest_api"[..]), "{label}");
        assert_eq!(reader.get(b"cpp_key1").unwrap().as_deref(), Some(&b"from_cpp_app"[..]), "{label}");
        assert_eq!(reader.len(), 2, "{label}");
    }

    /// The reference design's pitfall 2: a panic inside an update or a write
    /// closure leaves nothing committed and the lock free: another process gets
    /// it at once (a `try_`, not a wait), and so does another thread.
    pub fn panic_inside_a_write_releases_the_lock(&self) {
        const ROLE: &str = "probe";
        if let Some(ctx) = self.my_child(ROLE) {
            let (_store, lock) = self.open(&ctx.args()[1]);
            ctx.report("free", lock.try_lock_exclusive(LockScope::Whole).expect("try the lock").is_some());
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return;
        }
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "panic.maph");
        let (store, lock) = self.open(&path);
        // A key's update (its window, for range locks), then a whole-store write.
        let in_update =
            catch_unwind(AssertUnwindSafe(|| store.update(&lock, b"k", |_| -> Option<Vec<u8>> { panic!("app bug") })));
        let in_write = catch_unwind(AssertUnwindSafe(|| {
            store.write(&lock, |tx| {
                tx.set(b"half", b"done")?;
                panic!("the application fails mid-write");
            })
        }));
        let label = &self.label;
        assert!(in_update.is_err() && in_write.is_err(), "{label}: the panics propagate to the caller");
        assert_eq!(store.get(b"half").unwrap(), None, "{label}: nothing of the panicked write was committed");

        let probe = self.spawn(ROLE, &self.args(&path, &[])).finish_ok();
        assert!(probe.report::<bool>("free"), "{label}: another process must get the lock at once");
        std::thread::scope(|s| {
            let other_thread = s.spawn(|| lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some());
            assert!(other_thread.join().unwrap(), "{label}: and another thread of this process");
        });
    }

    /// A holder killed by SIGKILL blocks no one: the next acquirer gets the lock
    /// promptly (within [`GENEROUS`]), and the store verifies clean.
    pub fn holder_killed_by_sigkill_blocks_no_one(&self) {
        const ROLE: &str = "doomed-holder";
        if let Some(ctx) = self.my_child(ROLE) {
            let (store, lock) = self.open(&ctx.args()[1]);
            let guard = lock.lock_exclusive(store.scope_of(b"written-by")).expect("lock");
            store.write_with(&guard, |tx| tx.set(b"written-by", b"the holder")).expect("write");
            ctx.report("locked", std::process::id());
            ctx.wait_for_start(); // never: the parent kills us first
            drop(guard);
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return;
        }
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "kill.maph");
        let mut holder = self.spawn(ROLE, &self.args(&path, &[]));
        holder.wait_for_report("locked");
        let (store, lock) = self.open(&path);
        let scope = store.scope_of(b"written-by");
        let label = &self.label;
        assert!(lock.try_lock_exclusive(scope).unwrap().is_none(), "{label}: the holder holds the lock");

        holder.kill();
        let started = Instant::now();
        let guard = lock.lock_exclusive_for(scope, GENEROUS).expect("the lock of a killed holder is free");
        println!("{label}: acquired {:?} after SIGKILL", started.elapsed());
        store.write_with(&guard, |tx| tx.set(b"written-by", b"the next writer")).unwrap();
        drop(guard);

        let died = holder.finish();
        assert_eq!(died.status.signal(), Some(libc::SIGKILL), "{}", died.describe());
        assert_eq!(store.get(b"written-by").unwrap().as_deref(), Some(&b"the next writer"[..]));
        let report = store.verify();
        assert!(report.is_clean(), "{label}: {report:?}");
    }

    /// While another process holds the whole store, `lock_exclusive_until` (and
    /// `lock_shared_until`) give up with `LockTimeout`: never before the
    /// deadline, not absurdly after it, and the timeouts are counted.
    pub fn deadline_is_honoured_while_another_process_holds_the_lock(&self) {
        const ROLE: &str = "patient-holder";
        if let Some(ctx) = self.my_child(ROLE) {
            let (_store, lock) = self.open(&ctx.args()[1]);
            let guard = lock.lock_exclusive(LockScope::Whole).expect("lock");
            ctx.report("locked", 1);
            ctx.wait_for_start(); // hold until the parent is done timing out
            drop(guard);
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return;
        }
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "deadline.maph");
        let mut holder = self.spawn(ROLE, &self.args(&path, &[]));
        holder.wait_for_report("locked");
        let (_store, lock) = self.open(&path);
        let label = &self.label;

        let wait = Duration::from_millis(200);
        let deadline = Instant::now() + wait;
        let err = lock.lock_exclusive_until(LockScope::Whole, deadline).unwrap_err();
        let returned = Instant::now();
        assert!(returned >= deadline, "{label}: gave up {:?} before the deadline", deadline - returned);
        assert!(returned < deadline + GENEROUS, "{label}: gave up {:?} after the deadline", returned - deadline);
        match err {
            Error::LockTimeout { strategy, waited } => {
                assert_eq!(strategy, lock.strategy());
                assert!(waited >= wait, "{label}: reported waiting {waited:?}, less than {wait:?}");
            }
            other => panic!("{label}: expected LockTimeout, got {other:?}"),
        }
        // Shared access is kept out by an exclusive holder just the same.
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(matches!(lock.lock_shared_until(LockScope::Whole, deadline), Err(Error::LockTimeout { .. })));
        assert!(Instant::now() >= deadline, "{label}: shared gave up early");
        let stats = lock.contention();
        assert_eq!((stats.timeouts, stats.acquisitions), (2, 0), "{label}: {stats:?}");

        holder.start();
        holder.finish_ok();
        drop(lock.lock_exclusive_for(LockScope::Whole, GENEROUS).expect("free once the holder released it"));
    }

    /// A wait at or above the coordinator's slow-wait threshold is reported to
    /// its hook, once, with the wait's length; an acquisition that does not
    /// wait reports nothing. Another process holds the whole store for 300 ms
    /// (a hold time) while we wait with a 20 ms threshold.
    pub fn slow_waits_are_reported(&self) {
        const ROLE: &str = "slow-holder";
        if let Some(ctx) = self.my_child(ROLE) {
            let (_store, lock) = self.open(&ctx.args()[1]);
            let guard = lock.lock_exclusive(LockScope::Whole).expect("lock");
            ctx.report("locked", 1);
            ctx.wait_for_start(); // the parent lets go after the hold time
            drop(guard);
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return;
        }
        let label = &self.label;
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "slow.maph");
        let mut holder = self.spawn(ROLE, &self.args(&path, &[]));
        holder.wait_for_report("locked");
        let (_store, lock) = self.open(&path);
        let threshold = Duration::from_millis(20);
        let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = warnings.clone();
        lock.counters().warn_on_slow_wait(threshold, move |waited| seen.lock().unwrap().push(waited));
        assert!(lock.try_lock_exclusive(LockScope::Whole).unwrap().is_none(), "{label}: the holder holds the lock");

        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300)); // the hold time
            holder.start();
            holder.finish_ok();
        });
        drop(lock.lock_exclusive_for(LockScope::Whole, GENEROUS).expect("the lock after the holder let go"));
        releaser.join().unwrap();
        drop(lock.lock_exclusive(LockScope::Whole).unwrap()); // free now: no wait, no warning

        let stats = lock.contention();
        let warnings = warnings.lock().unwrap().clone();
        println!("{label}: {stats:?}, warnings {warnings:?}");
        assert_eq!((stats.acquisitions, stats.timeouts), (2, 1), "{label}: {stats:?}");
        if stats.longest_wait >= threshold {
            assert_eq!(stats.contended, 1, "{label}: {stats:?}");
            assert_eq!(warnings, vec![stats.longest_wait], "{label}: one warning, carrying the wait");
        } else {
            // Only if this thread was starved for ~300 ms before its first attempt.
            assert!(warnings.is_empty(), "{label}: a warning below the threshold: {warnings:?}");
            eprintln!("{label}: note: the wait was only {:?}; the warning path was not exercised", stats.longest_wait);
        }
    }

    /// Exclusive and shared access exclude each other, between threads sharing
    /// the coordinator and between processes: while an exclusive guard is
    /// held no shared one is granted, and while a shared guard is held no
    /// exclusive one is (so a shared guard gives a consistent view of several
    /// keys). For a coordinator of which only one process may be made (single
    /// writer), refusing the second one (`WriterBusy`) is the exclusion.
    pub fn exclusive_and_shared_exclude_each_other(&self) {
        const ROLE: &str = "access-holder";
        if let Some(ctx) = self.my_child(ROLE) {
            let (_store, lock) = self.open(&ctx.args()[1]);
            let exclusive = ctx.args()[2] == "exclusive";
            let shared;
            let held;
            if exclusive {
                held = Some(lock.lock_exclusive(LockScope::Whole).expect("lock exclusive"));
                shared = None;
            } else {
                shared = Some(lock.lock_shared(LockScope::Whole).expect("lock shared"));
                held = None;
            }
            ctx.report("locked", 1);
            ctx.wait_for_start();
            drop((held, shared));
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return;
        }
        let label = &self.label;
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "access.maph");
        let (store, lock) = self.open(&path);
        let key_scope = store.scope_of(b"k");

        // Threads of one process sharing the coordinator.
        std::thread::scope(|s| {
            let exclusive = lock.lock_exclusive(LockScope::Whole).unwrap();
            let seen = s
                .spawn(|| {
                    (
                        lock.try_lock_shared(LockScope::Whole).unwrap().is_some(),
                        lock.try_lock_shared(key_scope).unwrap().is_some(),
                    )
                })
                .join()
                .unwrap();
            assert_eq!(seen, (false, false), "{label}: a thread got shared access beside an exclusive guard");
            drop(exclusive);
            let shared = lock.lock_shared(LockScope::Whole).unwrap();
            let seen = s
                .spawn(|| {
                    (
                        lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some(),
                        lock.try_lock_exclusive(key_scope).unwrap().is_some(),
                    )
                })
                .join()
                .unwrap();
            assert_eq!(seen, (false, false), "{label}: a thread got exclusive access beside a shared guard");
            drop(shared);
        });
        drop(lock);
        drop(store);

        // Another process, holding one access while we ask for the other.
        for (held, asked) in [("exclusive", "shared"), ("shared", "exclusive")] {
            let mut holder = self.spawn(ROLE, &self.args(&path, &[held]));
            holder.wait_for_report("locked");
            let store = Store::open(&path, Mode::ReadWrite).expect("open");
            match (self.make)(&store) {
                Err(Error::WriterBusy { .. }) => {}
                Err(e) => panic!("{label}: making the coordinator failed: {e}"),
                Ok(lock) => {
                    let got = match asked {
                        "shared" => lock.try_lock_shared(LockScope::Whole).unwrap().is_some(),
                        _ => lock.try_lock_exclusive(LockScope::Whole).unwrap().is_some(),
                    };
                    assert!(!got, "{label}: got {asked} access while another process holds {held}");
                }
            }
            holder.start();
            holder.finish_ok();
        }
    }

    /// Reader threads holding shared guards never see half of a two-key write
    /// made by a writer process (a consistent multi-key view).
    pub fn shared_guards_give_a_consistent_view_of_several_keys(&self, writes: u64) {
        const ROLE: &str = "pair-writer";
        if let Some(ctx) = self.my_child(ROLE) {
            let (store, lock) = self.open(&ctx.args()[1]);
            ctx.wait_for_start();
            for i in 0..writes {
                let value = i.to_string();
                store
                    .write(&lock, |tx| {
                        tx.set(b"a", value.as_bytes())?;
                        tx.set(b"b", value.as_bytes())
                    })
                    .expect("write both keys");
            }
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return;
        }
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "view.maph");
        let (store, lock) = self.open(&path);
        let mut writer = self.spawn(ROLE, &self.args(&path, &[]));
        let done = AtomicBool::new(false);
        let (checks, torn) = std::thread::scope(|s| {
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let (mut checks, mut torn) = (0u64, 0u64);
                        while !done.load(Ordering::Relaxed) {
                            let guard = lock.lock_shared(LockScope::Whole).unwrap();
                            let a = store.get(b"a").unwrap();
                            std::thread::yield_now(); // give a writer every chance to slip in
                            let b = store.get(b"b").unwrap();
                            drop(guard);
                            checks += 1;
                            torn += u64::from(a != b);
                            // Leave gaps, or the readers could keep the writer out forever.
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        (checks, torn)
                    })
                })
                .collect();
            writer.start();
            writer.finish_ok();
            done.store(true, Ordering::Relaxed);
            readers.into_iter().map(|r| r.join().unwrap()).fold((0, 0), |(c, t), (c2, t2)| (c + c2, t + t2))
        });
        let label = &self.label;
        println!("{label}: {checks} reads checked, {torn} torn");
        assert!(checks > 0, "{label}: no read was checked");
        assert_eq!(torn, 0, "{label}: a reader holding shared access saw a half-applied write");
        assert_eq!(store.get(b"a").unwrap(), Some((writes - 1).to_string().into_bytes()), "{label}");
    }
}
