//! [`FcntlCoordinator`]: fcntl record locks, whole-file or per key.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maph_core::{
    open_lock_file, poll_until, Access, Backoff, ContentionCounters, Error, LockScope, Result, Store, StoreId,
    Strategy, Ticket, Wait, WriteCoordinator,
};
use nix::errno::Errno;

use crate::classic::{self, ClassicLockFile};
use crate::descriptions::Descriptions;
use crate::record_lock::{self, Owner, Span, Spans};
use crate::{FcntlOptions, Granularity, LockKind};

/// Writers take turns through POSIX record locks (`fcntl(2)`) on the store
/// file itself: on the whole file, or, in [`Granularity::ByteRange`] mode, only
/// on the bytes standing for the key's probe window (slot `i` is byte `i`;
/// record locks are advisory and never touch the bytes), so writers of
/// different keys run in parallel.
///
/// The locks are on the file, not on a path: every description the coordinator
/// locks through is one of the very file the store mapped
/// ([`Store::lock_description`]), so processes that reach the store through a
/// symlink, a hard link, another spelling of the path or a bind mount
/// coordinate as one. (Classic locks, the fallback below, are the exception.)
///
/// # When to choose it
/// - **Byte-range mode** when several processes (or threads) write *different*
///   keys at the same time and should not wait for each other: each
///   [`Store::update`]/[`Store::set`] locks only its key's probe window
///   (`max_probes` slots). Writers of the same key, or of keys whose windows
///   overlap, still take turns; [`Store::write`] locks the whole store.
/// - **Whole-file mode** where flock would do; it interoperates with
///   byte-range writers of the same store.
/// - All writers on one host: maph refuses to open a store for writing on a
///   network or FUSE filesystem (shared mappings are not coherent between the
///   hosts that mount it; see `docs/RELIABILITY.md`).
/// - One process can own all writes? [`SingleWriter`](maph_core::SingleWriter)
///   is cheaper than any lock.
///
/// # Cost
/// Every acquisition is one `fcntl` to lock (two when a window wraps past the
/// last slot) and one to unlock, and no other system call (`strace -c` of
/// `cargo run --release -p maph-lock-fcntl --example fcntl_cost` counts exactly
/// that). On the reference machine, quiet, a bare OFD lock+unlock pair costs
/// 1.5–1.7 µs and a classic one about 1.5 µs (`shared/tools/limits.c`; flock:
/// 0.95–1.15 µs); the coordinator adds a short mutex-protected pool lookup, and
/// under load both rise together. Hold one guard across a batch to pay it once.
/// Byte-range mode costs the same per acquisition and buys parallelism: in the
/// same example, 4 threads each doing 100 updates of their own key while
/// holding the lock 200 µs finish in about 45 ms in byte-range mode against
/// about 150 ms whole-file (ideal: 20 and 80 ms, on 2 busy cores).
///
/// # Threads
/// With open-file-description (OFD) locks, the default on Linux 3.15+, every
/// acquisition in flight uses an open file description of its own from a small
/// pool, and the kernel keeps them apart exactly as it keeps processes apart:
/// threads of one process exclude each other per byte range, and threads writing
/// different keys run in parallel. Share one coordinator between threads (`Arc`);
/// the pool grows to the number of acquisitions in flight, a descriptor each.
/// Acquisition is not reentrant: a thread that holds a guard and asks for an
/// overlapping scope waits for itself (OFD locks have no deadlock detection).
///
/// # Deadlines
/// [`Wait::Forever`] sleeps in the kernel (`F_OFD_SETLKW`), retrying after a
/// signal. A deadline never uses `alarm()` or any other process-wide signal: it
/// polls the non-blocking command with jittered exponential backoff (20 µs
/// doubling to 2 ms) and gives up with [`Error::LockTimeout`] no earlier than
/// the deadline. A window that wraps is two ranges, taken in ascending order
/// (so two wrapping writers cannot deadlock) and both released if the second
/// cannot be had in time.
///
/// # Failure modes
/// - A holder that dies, even by `SIGKILL`, holds nothing: the kernel drops its
///   record locks with its descriptors. A write it left half-done is repaired
///   by the next writer of that slot (or [`Store::repair`]).
/// - A panic inside a write releases the lock while unwinding (RAII guards).
/// - A filesystem without record locks is reported when the coordinator is
///   made, as [`Error::Coordination`].
/// - The kernel does not queue record-lock waiters fairly: a whole-store
///   writer ([`Store::write`]) waiting among busy byte-range writers may wait
///   long (use a deadline). Readers holding shared access can likewise keep
///   writers out for as long as they overlap.
/// - A child made by `fork()` shares its parent's open file descriptions, and
///   so the OFD locks held through them (classic locks are not inherited).
///   maph opens its files close-on-exec, so `exec`'d programs get nothing.
/// - Renaming, replacing or deleting the store's path while writers run
///   changes nothing for the coordinators already made: their locks are on the
///   file they opened.
///
/// # Classic locks, the fallback
/// Where OFD locks are missing ([`LockKind::Auto`] detects `EINVAL` when the
/// coordinator is made) or when [`LockKind::Classic`] is asked for, classic
/// process-owned locks (`F_SETLK`/`F_SETLKW`) are used. Processes still exclude
/// each other per byte range, but this is lost:
/// - threads of one process no longer run in parallel: the kernel does not
///   separate them, so all acquisitions of the process on this lock file take
///   turns on one in-process gate (shared ones too);
/// - closing *any* descriptor of a file drops all the process's classic locks
///   on it, and a process using a store opens and closes descriptors of the
///   store file all the time (every `Store::open` and drop). So classic locks
///   are not taken on the store file but on a lock file named after the
///   store's identity, `.maph-<uuid>.lock`, in the directory of the store's
///   canonical path (symlinks and `..` resolved; a hard link in the same
///   directory finds the same lock file, one in **another directory does
///   not**: use classic locks through one directory). Coordinators of one
///   process share one descriptor of it, but other code that opens and closes
///   that lock file in-process would silently unlock it;
/// - the kernel's deadlock detection for classic locks works per process and
///   may fire falsely when threads are involved; a blocking wait it interrupts
///   with `EDEADLK` is continued by polling instead of failing.
///
/// ```
/// use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};
/// use maph_lock_fcntl::{FcntlCoordinator, Granularity};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("fcntl.maph");
/// Store::create(&path, Config::new(4096).strategy(FcntlCoordinator::STRATEGY))?;
/// let store = Store::open(&path, Mode::ReadWrite)?;
/// let lock = FcntlCoordinator::byte_range(&store)?;
/// assert_eq!(lock.granularity(), Granularity::ByteRange);
///
/// // Locks only the probe window of "visits".
/// store.update(&lock, b"visits", |old| {
///     let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
///     Some((n + 1).to_string())
/// })?;
///
/// // While a writer holds slots 0..10, slots 100..110 are free, in this
/// // process and in every other; slots 5..15 are not.
/// let held = lock.lock_exclusive(LockScope::window(0, 10, 4096))?;
/// assert!(lock.try_lock_exclusive(LockScope::window(100, 10, 4096))?.is_some());
/// assert!(lock.try_lock_exclusive(LockScope::window(5, 10, 4096))?.is_none());
/// drop(held);
/// # Ok::<(), maph_core::Error>(())
/// ```
pub struct FcntlCoordinator {
    backend: Backend,
    granularity: Granularity,
    /// The file the record locks are on: the store's (OFD) or the classic lock file.
    lock_path: PathBuf,
    store: StoreId,
    counters: ContentionCounters,
}

/// How this process separates its own acquisitions; see `descriptions.rs` and `classic.rs`.
#[derive(Debug)]
enum Backend {
    /// OFD locks, one open file description per acquisition in flight.
    Ofd(Descriptions),
    /// Classic locks on the process's one shared descriptor, behind one gate.
    Classic(Arc<ClassicLockFile>),
}

impl std::fmt::Debug for FcntlCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcntlCoordinator")
            .field("lock_path", &self.lock_path)
            .field("granularity", &self.granularity)
            .field("backend", &self.backend)
            .field("contention", &self.counters)
            .finish()
    }
}

impl FcntlCoordinator {
    /// The strategy tag of fcntl-coordinated stores, whole-file and byte-range
    /// alike: create the store with `Config::new(n).strategy(FcntlCoordinator::STRATEGY)`.
    pub const STRATEGY: Strategy = Strategy::new("fcntl");

    /// A whole-file coordinator for `store` (opened read-write, created with
    /// [`STRATEGY`](Self::STRATEGY)), with OFD locks where available.
    pub fn new(store: &Store) -> Result<FcntlCoordinator> {
        Self::with_options(store, FcntlOptions::new())
    }

    /// A byte-range coordinator for `store`: each write locks only its key's
    /// probe window.
    pub fn byte_range(store: &Store) -> Result<FcntlCoordinator> {
        Self::with_options(store, FcntlOptions::new().granularity(Granularity::ByteRange))
    }

    /// A coordinator for `store` with the given options. Opens a description of
    /// the store file (or, for classic locks, the lock file named after the
    /// store) and checks that its filesystem supports the lock kind, so an
    /// unusable lock fails here rather than at the first write.
    pub fn with_options(store: &Store, options: FcntlOptions) -> Result<FcntlCoordinator> {
        store.check_writer(Self::STRATEGY)?;
        let (backend, lock_path) = Backend::open(store, options.lock_kind)?;
        Ok(FcntlCoordinator {
            backend,
            granularity: options.granularity,
            lock_path,
            store: store.id(),
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

    /// What one acquisition locks.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The kind of lock in use: [`LockKind::OpenFileDescription`] or
    /// [`LockKind::Classic`] (never `Auto`: it is resolved when the coordinator is made).
    pub fn lock_kind(&self) -> LockKind {
        match self.backend {
            Backend::Ofd(_) => LockKind::OpenFileDescription,
            Backend::Classic(_) => LockKind::Classic,
        }
    }

    /// The file whose record locks this coordinator takes: the store's own
    /// path (OFD locks; the locks are on the file it opened, whatever its path
    /// is now) or, for classic locks, the lock file named after the store
    /// ([`classic_lock_path`]).
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// How many open file descriptions of the lock file this coordinator keeps
    /// (OFD mode: the most acquisitions it had in flight at once; classic mode:
    /// one, shared by the process).
    pub fn open_descriptions(&self) -> usize {
        match &self.backend {
            Backend::Ofd(pool) => pool.open_count(),
            Backend::Classic(_) => 1,
        }
    }

    fn explain(&self, errno: Errno) -> Error {
        record_lock::explain(Self::STRATEGY, &self.lock_path, errno)
    }

    /// Locks every span in ascending order, waiting as `wait` allows; on failure
    /// releases what it took, so a failed acquisition holds nothing.
    fn lock_spans(&self, file: &File, owner: Owner, access: Access, spans: Spans, wait: Wait) -> Result<bool> {
        for span in spans.iter() {
            let taken = self.lock_span(file, owner, access, span, wait);
            if !matches!(taken, Ok(true)) {
                let _ = record_lock::unlock_all(file, owner);
                return taken;
            }
        }
        Ok(true)
    }

    fn lock_span(&self, file: &File, owner: Owner, access: Access, span: Span, wait: Wait) -> Result<bool> {
        let attempt = || record_lock::try_lock(file, owner, access, span).map_err(|e| self.explain(e));
        let poll = |wait| Ok(poll_until(wait, Backoff::new(), || Ok(attempt()?.then_some(())))?.is_some());
        match wait {
            // Not through `poll_until`: making a `Backoff` costs a getpid(2)
            // system call, and every uncontended acquisition passes here first.
            Wait::Never => attempt(),
            Wait::Until(_) => poll(wait),
            Wait::Forever => match record_lock::lock_blocking(file, owner, access, span) {
                Ok(()) => Ok(true),
                // Classic locks only: the kernel's deadlock detection works per
                // process, so it also fires when another *thread* of ours holds
                // what the other process waits for. Keep trying without it.
                Err(Errno::EDEADLK) => poll(Wait::Forever),
                Err(e) => Err(self.explain(e)),
            },
        }
    }
}

/// The lock file classic locks use for `store`: `.maph-<uuid>.lock` in the
/// directory of the store's canonical path. Every process that reaches the
/// store through a path in that directory (or a symlink or `..` resolving to
/// it) derives the same file from the store's identity.
pub fn classic_lock_path(store: &Store) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(store.path())
        .map_err(|e| Error::io(format!("could not resolve the path {}", store.path().display()), e))?;
    let dir = canonical.parent().unwrap_or(Path::new("/"));
    Ok(dir.join(format!(".maph-{}.lock", store.uuid())))
}

/// Word 0 of the store's coordinator region: which kind of record lock the
/// store's fcntl writers use, fixed by the first coordinator ever made. OFD and
/// classic locks live on different files (the store, and a lock file named
/// after it), so writers of the two kinds would not exclude each other.
const KIND_WORD: usize = 0;
const KIND_OFD: u32 = u32::from_le_bytes(*b"FOFD");
const KIND_CLASSIC: u32 = u32::from_le_bytes(*b"FCLS");

/// The lock kind recorded in `store`, if any.
fn recorded_kind(store: &Store) -> Result<Option<LockKind>> {
    match kind_word(store)?.load(Ordering::SeqCst) {
        0 => Ok(None),
        KIND_OFD => Ok(Some(LockKind::OpenFileDescription)),
        KIND_CLASSIC => Ok(Some(LockKind::Classic)),
        other => Err(Error::Corrupt {
            path: store.path().to_path_buf(),
            detail: format!("the fcntl lock-kind word holds {other:#x}, neither FOFD nor FCLS"),
        }),
    }
}

fn kind_word(store: &Store) -> Result<&AtomicU32> {
    store.coordinator_word(KIND_WORD)?.ok_or_else(|| Error::Coordination {
        strategy: FcntlCoordinator::STRATEGY,
        detail: "the store has no coordinator region".into(),
    })
}

/// Records `kind` as the store's lock kind unless another is recorded; the
/// kind now recorded.
fn record_kind(store: &Store, kind: LockKind) -> Result<LockKind> {
    let code = if kind == LockKind::Classic { KIND_CLASSIC } else { KIND_OFD };
    // SeqCst: every process agrees on the first kind recorded.
    match kind_word(store)?.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => Ok(kind),
        Err(_) => Ok(recorded_kind(store)?.unwrap_or(kind)),
    }
}

fn other_kind_error(store: &Store, recorded: LockKind, asked: LockKind) -> Error {
    let name = |k| if k == LockKind::Classic { "classic" } else { "open-file-description (OFD)" };
    Error::Coordination {
        strategy: FcntlCoordinator::STRATEGY,
        detail: format!(
            "the fcntl writers of {} use {} locks, and a coordinator with {} locks would not exclude them (the two \
             kinds lock different files); make it with LockKind::Auto, which follows the store",
            store.path().display(),
            name(recorded),
            name(asked)
        ),
    }
}

impl Backend {
    /// Decides how this process locks `store`; returns the backend and the
    /// path of the file it locks. The kind is the store's (the first
    /// coordinator's choice, recorded in the header), so that every writer of
    /// the store locks the same file.
    fn open(store: &Store, kind: LockKind) -> Result<(Backend, PathBuf)> {
        let recorded = recorded_kind(store)?;
        let kind = match (recorded, kind) {
            (Some(recorded), LockKind::Auto) => recorded,
            (Some(recorded), asked) if recorded != asked => return Err(other_kind_error(store, recorded, asked)),
            (_, kind) => kind,
        };
        let backend = match kind {
            LockKind::Classic => None,
            LockKind::OpenFileDescription | LockKind::Auto => Self::open_ofd(store, kind)?,
        };
        let (backend, lock_path, chosen) = match backend {
            Some(ofd) => (Backend::Ofd(ofd), store.path().to_path_buf(), LockKind::OpenFileDescription),
            None => {
                let (shared, lock_path) = Self::open_classic(store)?;
                (Backend::Classic(shared), lock_path, LockKind::Classic)
            }
        };
        match record_kind(store, chosen)? {
            recorded if recorded == chosen => Ok((backend, lock_path)),
            // Another process recorded the other kind at the same moment.
            recorded => Err(other_kind_error(store, recorded, chosen)),
        }
    }

    /// OFD locks on the store file; `None` if they are missing and `kind` is `Auto`.
    fn open_ofd(store: &Store, kind: LockKind) -> Result<Option<Descriptions>> {
        let file = store.lock_description()?;
        match record_lock::probe(&file, Owner::Description) {
            Ok(()) => Ok(Some(Descriptions::new(store.path(), file))),
            // No OFD commands here (Linux before 3.15, or a filesystem's own
            // lock implementation without them).
            Err(Errno::EINVAL) if kind == LockKind::Auto => Ok(None),
            Err(Errno::EINVAL) => Err(Error::Coordination {
                strategy: FcntlCoordinator::STRATEGY,
                detail: format!(
                    "open-file-description locks are not available for {} (Linux 3.15 or later, on a \
                     filesystem that supports them); use LockKind::Auto to fall back to classic locks",
                    store.path().display()
                ),
            }),
            Err(e) => Err(record_lock::explain(FcntlCoordinator::STRATEGY, store.path(), e)),
        }
    }

    /// Classic locks on the lock file named after the store, shared by this
    /// process's classic coordinators of it.
    fn open_classic(store: &Store) -> Result<(Arc<ClassicLockFile>, PathBuf)> {
        let lock_path = classic_lock_path(store)?;
        // Held throughout, so the decision is consistent with other coordinators
        // being made at the same time (see classic.rs).
        let mut table = classic::table();
        if let Some(shared) = table.find_path(&lock_path) {
            // This process already locks this file; opening and later closing
            // another descriptor would drop those locks.
            return Ok((shared, lock_path));
        }
        let file = open_lock_file(&lock_path)?;
        record_lock::probe(&file, Owner::Process)
            .map_err(|e| record_lock::explain(FcntlCoordinator::STRATEGY, &lock_path, e))?;
        let shared = table.insert(file, &lock_path)?;
        Ok((shared, lock_path))
    }
}

impl WriteCoordinator for FcntlCoordinator {
    fn strategy(&self) -> Strategy {
        Self::STRATEGY
    }

    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
        let spans = Spans::of(scope, self.granularity);
        match &self.backend {
            Backend::Ofd(pool) => {
                let (index, file) = pool.check_out()?;
                let taken = self.lock_spans(&file, Owner::Description, access, spans, wait);
                if matches!(taken, Ok(true)) {
                    return Ok(Some(Ticket { private: index as u64, ..Ticket::new(access, scope) }));
                }
                pool.check_in(index); // holds nothing: lock_spans released what it took
                taken.map(|_| None)
            }
            Backend::Classic(shared) => {
                // Exclusive even for shared access: see classic.rs.
                if !shared.gate.acquire(Access::Exclusive, wait) {
                    return Ok(None);
                }
                let taken = self.lock_spans(&shared.file, Owner::Process, access, spans, wait);
                if matches!(taken, Ok(true)) {
                    return Ok(Some(Ticket::new(access, scope)));
                }
                // SAFETY: taken exclusively just above, handed back once.
                unsafe { shared.gate.release(Access::Exclusive) };
                taken.map(|_| None)
            }
        }
    }

    unsafe fn release(&self, ticket: Ticket) {
        match &self.backend {
            Backend::Ofd(pool) => {
                let index = ticket.private as usize;
                // A description that could not be unlocked (never seen: unlocking
                // the whole file needs no memory) is not reused, so no later
                // acquisition inherits its lock; it is closed with the coordinator.
                if record_lock::unlock_all(&pool.get(index), Owner::Description).is_ok() {
                    pool.check_in(index);
                }
            }
            Backend::Classic(shared) => {
                // Unlock before opening the gate: the next holder of this process
                // shares the descriptor, and our unlock must not drop its locks.
                let _ = record_lock::unlock_all(&shared.file, Owner::Process);
                // SAFETY: the caller guarantees `ticket` is outstanding; classic
                // tickets are issued with the gate held exclusively until here.
                unsafe { shared.gate.release(Access::Exclusive) }
            }
        }
    }

    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }

    fn locks_whole_store(&self) -> bool {
        self.granularity == Granularity::WholeFile
    }

    fn bound_store(&self) -> Option<StoreId> {
        Some(self.store)
    }
}
