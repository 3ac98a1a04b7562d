//! [`FlockCoordinator`]: one whole-store flock lock, for processes and threads.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maph_core::{
    poll_until, Access, Backoff, ContentionCounters, LocalGate, LockScope, Result, Store, StoreId, Strategy, Ticket,
    Wait, WriteCoordinator,
};
use parking_lot::Mutex;

use crate::kernel;

/// Writers of several processes take turns through an exclusive `flock(2)` on
/// the store file itself; readers that want writers kept out take it shared.
///
/// The lock is on the file, not on a path: the coordinator locks an open file
/// description of its own of the very file the store mapped
/// ([`Store::lock_description`]), so processes that reach the store through a
/// symlink, a hard link, another spelling of the path or a bind mount
/// coordinate as one.
///
/// # When to choose it
/// Several processes on **one machine** write the same store, and writes are
/// short enough that taking turns on the whole store is acceptable. If one
/// process can own all writes, [`SingleWriter`](maph_core::SingleWriter) is
/// cheaper; if writers of different keys should proceed in parallel, or the
/// use the byte-range mode of the `fcntl` strategy (`maph-lock-fcntl`). All
/// writers must run on one host: maph refuses to open a store for writing on a
/// network or FUSE filesystem (see `docs/RELIABILITY.md`).
///
/// # Cost
/// Every acquisition is two `flock(2)` calls (lock, unlock) and no other system
/// call (`strace -c` of `cargo run --release -p maph-lock-flock --example
/// flock_cost` counts exactly two). On the reference machine, quiet, a bare
/// `LOCK_EX`+`LOCK_UN` pair costs 0.95–1.15 µs (`shared/tools/limits.c`), and the
/// coordinator adds only an uncontended compare-and-swap on its gate; under load
/// both rise together (2–3 µs measured side by side at load average 10). The
/// write itself costs tens of nanoseconds, so hold one guard across a batch
/// ([`lock_exclusive`](WriteCoordinator::lock_exclusive) +
/// [`Store::write_with`]) to pay the lock once. Every acquisition locks the
/// whole store, whatever [`LockScope`] it asks for.
///
/// # Threads
/// A flock lock belongs to the open file description, so the kernel does not
/// keep two threads of one process (sharing this coordinator's descriptor) apart.
/// A [`LocalGate`] does: a thread takes the gate first (a compare-and-swap when
/// free), then the kernel lock. Shared holders of one process share one kernel
/// `LOCK_SH`, taken by the first and dropped by the last. Share one coordinator
/// between threads (`Arc`); two coordinators in one process also exclude each
/// other (they have two descriptions), but each costs a descriptor.
/// Acquisition is not reentrant: a thread that holds a guard and asks again
/// waits for itself.
///
/// # Deadlines
/// [`Wait::Forever`] sleeps in the kernel (`LOCK_EX`), retrying after a signal.
/// A deadline ([`lock_exclusive_until`](WriteCoordinator::lock_exclusive_until))
/// never uses `alarm()` or any other process-wide signal: it polls `LOCK_NB`
/// with jittered exponential backoff (20 µs doubling to 2 ms), so a freed lock
/// is noticed within about 2 ms, and gives up with
/// [`Error::LockTimeout`](maph_core::Error::LockTimeout) no earlier than the deadline.
///
/// # Failure modes
/// - A holder that dies, even by `SIGKILL`, holds nothing: the kernel drops the
///   lock when its last descriptor closes, and the next acquirer gets it at once.
///   A write it left half-done is repaired by the next writer of that slot (or
///   [`Store::repair`]).
/// - A panic inside a write releases the lock while unwinding (RAII guards).
/// - A filesystem without flock support is reported when the coordinator is
///   made ([`Error::Coordination`](maph_core::Error::Coordination)).
/// - A child made by `fork()` while a guard is held shares the description and
///   so the lock. (maph opens its files close-on-exec, so `exec`'d programs do not.)
///
/// ```
/// use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};
/// use maph_lock_flock::FlockCoordinator;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("flock.maph");
/// Store::create(&path, Config::new(1024).strategy(FlockCoordinator::STRATEGY))?;
/// let store = Store::open(&path, Mode::ReadWrite)?;
/// let lock = FlockCoordinator::new(&store)?
///     .warn_on_slow_wait(std::time::Duration::from_millis(100), |waited| eprintln!("slow lock: {waited:?}"));
///
/// store.update(&lock, b"visits", |old| {
///     let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
///     Some((n + 1).to_string())
/// })?;
///
/// // A batch under one acquisition:
/// let guard = lock.lock_exclusive(LockScope::Whole)?;
/// store.write_with(&guard, |tx| {
///     tx.set(b"a", b"1")?;
///     tx.set(b"b", b"2")
/// })?;
/// drop(guard);
/// assert_eq!(store.get(b"visits")?.as_deref(), Some(&b"1"[..]));
/// assert_eq!(lock.contention().acquisitions, 2);
/// # Ok::<(), maph_core::Error>(())
/// ```
pub struct FlockCoordinator {
    /// Our open file description of the store file; the kernel lock lives on it.
    file: File,
    /// The store's path, for messages.
    path: PathBuf,
    store: StoreId,
    /// Keeps this process's threads apart (the kernel does not, see above).
    gate: LocalGate,
    /// How many of this process's threads hold shared access. The kernel
    /// `LOCK_SH` is held exactly while this is non-zero: one `LOCK_UN` would drop
    /// it for every thread, so only the last shared holder may unlock.
    shared_holders: Mutex<u64>,
    counters: ContentionCounters,
}

impl std::fmt::Debug for FlockCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlockCoordinator")
            .field("path", &self.path)
            .field("gate", &self.gate)
            .field("contention", &self.counters)
            .finish()
    }
}

impl FlockCoordinator {
    /// The strategy tag of flock-coordinated stores: create the store with
    /// `Config::new(n).strategy(FlockCoordinator::STRATEGY)`.
    pub const STRATEGY: Strategy = Strategy::new("flock");

    /// A coordinator for `store` (opened read-write, created with
    /// [`STRATEGY`](Self::STRATEGY)). Opens a description of the store file to
    /// lock and checks that its filesystem supports flock, so an unusable lock
    /// fails here rather than at the first write.
    pub fn new(store: &Store) -> Result<FlockCoordinator> {
        store.check_writer(Self::STRATEGY)?;
        let path = store.path().to_path_buf();
        let file = store.lock_description()?;
        // Probe: a shared lock succeeds, or is refused because a writer holds the
        // lock; either way flock works here. Anything else is reported now.
        if kernel::try_lock(&file, Access::Shared).map_err(|e| kernel::explain(Self::STRATEGY, &path, e))? {
            kernel::unlock(&file).map_err(|e| kernel::explain(Self::STRATEGY, &path, e))?;
        }
        Ok(FlockCoordinator {
            file,
            path,
            store: store.id(),
            gate: LocalGate::new(),
            shared_holders: Mutex::new(0),
            counters: ContentionCounters::new(),
        })
    }

    /// Calls `hook` with the length of every wait for the lock that lasts
    /// `threshold` or longer (the reference design's "monitor lock contention").
    /// The same as `counters().warn_on_slow_wait(..)`, as a builder.
    pub fn warn_on_slow_wait(self, threshold: Duration, hook: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.counters.warn_on_slow_wait(threshold, hook);
        self
    }

    /// The path of the store whose file this coordinator locks (as it was
    /// opened; the lock is on the file, whatever its path is now).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the kernel lock on our description, waiting as `wait` allows.
    fn lock_kernel(&self, access: Access, wait: Wait) -> Result<bool> {
        let explain = |e| kernel::explain(Self::STRATEGY, &self.path, e);
        match wait {
            // Not through `poll_until`: making a `Backoff` costs a getpid(2)
            // system call, and every uncontended acquisition passes here first.
            Wait::Never => kernel::try_lock(&self.file, access).map_err(explain),
            Wait::Until(_) => {
                let got = poll_until(wait, Backoff::new(), || {
                    Ok(kernel::try_lock(&self.file, access).map_err(explain)?.then_some(()))
                })?;
                Ok(got.is_some())
            }
            Wait::Forever => kernel::lock_blocking(&self.file, access).map(|()| true).map_err(explain),
        }
    }

    /// With the gate held shared: joins this process's shared holders, taking
    /// the kernel `LOCK_SH` if we are the first.
    ///
    /// The count's mutex is held only around non-blocking calls, never while
    /// waiting for another process, so a `try_` never fails just because another
    /// thread of ours is mid-acquisition.
    fn enter_shared(&self, wait: Wait) -> Result<bool> {
        let explain = |e| kernel::explain(Self::STRATEGY, &self.path, e);
        let mut backoff = None;
        loop {
            {
                let mut holders = self.shared_holders.lock();
                // Already held for the process; or taken now; or (after a
                // blocking wait below) held but not yet counted, which this
                // non-blocking call confirms. Either way the count and the kernel
                // agree when the mutex is released.
                if *holders > 0 || kernel::try_lock(&self.file, Access::Shared).map_err(explain)? {
                    *holders += 1;
                    return Ok(true);
                }
            }
            // Another process holds it exclusively: wait outside the mutex.
            match wait {
                Wait::Never => return Ok(false),
                Wait::Until(deadline) => {
                    if std::time::Instant::now() >= deadline {
                        return Ok(false);
                    }
                    backoff.get_or_insert_with(Backoff::new).pause(Some(deadline));
                }
                // Sleeps in the kernel until the lock is ours; the loop then
                // counts it (or, if the last of our other shared holders dropped
                // it meanwhile, takes it again or waits again).
                Wait::Forever => kernel::lock_blocking(&self.file, Access::Shared).map_err(explain)?,
            }
        }
    }
}

impl WriteCoordinator for FlockCoordinator {
    fn strategy(&self) -> Strategy {
        Self::STRATEGY
    }

    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
        // Gate first (with the same deadline): writers of this process queue on
        // it, so at most one of them at a time is in the kernel, and no thread
        // touches the kernel lock while another holds it for a different access.
        if !self.gate.acquire(access, wait) {
            return Ok(None);
        }
        let taken = match access {
            // The gate is ours alone, so no other thread of this process holds
            // the kernel lock and no conversion of a held lock can happen.
            Access::Exclusive => self.lock_kernel(Access::Exclusive, wait),
            Access::Shared => self.enter_shared(wait),
        };
        match taken {
            Ok(true) => Ok(Some(Ticket::new(access, scope))),
            Ok(false) | Err(_) => {
                // SAFETY: we took the gate for `access` above and hand it back once.
                unsafe { self.gate.release(access) };
                taken.map(|_| None)
            }
        }
    }

    unsafe fn release(&self, ticket: Ticket) {
        // Kernel lock before gate: once the gate is free another thread may take
        // the kernel lock on this same description, and our unlock would drop it.
        // An unlock cannot fail on a valid descriptor; if it ever did, the lock
        // stays held by this description and the gate still orders our threads.
        match ticket.access {
            Access::Exclusive => {
                let _ = kernel::unlock(&self.file);
            }
            Access::Shared => {
                let mut holders = self.shared_holders.lock();
                *holders -= 1;
                if *holders == 0 {
                    let _ = kernel::unlock(&self.file);
                }
            }
        }
        // SAFETY: the caller guarantees `ticket` is outstanding; every ticket was
        // issued with the gate held for its access, released only here.
        unsafe { self.gate.release(ticket.access) }
    }

    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }

    fn locks_whole_store(&self) -> bool {
        true
    }

    fn bound_store(&self) -> Option<StoreId> {
        Some(self.store)
    }
}
