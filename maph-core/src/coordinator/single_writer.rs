//! One writer process, chosen by an exclusive lease.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{poll_until, Access, Backoff, ContentionCounters, LocalGate, LockScope, Ticket, Wait, WriteCoordinator};
use crate::format::OFF_WRITER_PID;
use crate::shared_memory::SharedRegion;
use crate::sync::Ordering;
use crate::{Error, RepairReport, Result, Store, StoreId, Strategy};

/// How long a new writer waits for a lease that no live process claims (a copy
/// lingering in a child another thread forked and has not yet exec'd, or a
/// holder that is exiting) before it reports [`Error::WriterBusy`].
const LINGERING_LEASE: Duration = Duration::from_secs(2);

/// The recommended strategy: exactly one process writes, everyone else reads.
///
/// Creating a `SingleWriter` takes an exclusive, non-blocking `flock` on the
/// store file itself (through an open file description of its own, see
/// [`Store::lock_description`]) and holds it until the `SingleWriter` is
/// dropped (or the process dies, when the kernel releases it). Every path that
/// reaches the file (a symlink, a hard link, `dir/../dir/x.maph`, a bind mount
/// in a container) reaches the same lease. A second writer fails at once with
/// [`Error::WriterBusy`] naming the holder's pid, which the holder records in
/// the store header. Readers never touch the lease, so they are never blocked.
///
/// Per write it costs no system call: threads of the owning process take turns
/// on an in-process lock (one compare-and-swap when uncontended). Shared access
/// ([`lock_shared`](WriteCoordinator::lock_shared)) takes the same lock shared,
/// so it excludes this process's writes and gives a consistent view of several
/// keys.
///
/// Because no other writer can exist, creating it also repairs what a writer
/// that died left mid-commit: exactly the slots its write-intent lane lists
/// (see `docs/FORMAT.md`), so after a clean close it reads nothing of the
/// store; see [`repair_report`](Self::repair_report). Damage that no writer
/// left (bit rot, a stray write) is found by [`Store::verify`] and cleared by
/// [`Store::repair`].
///
/// Choose it when one process (a server, an ingest job) can own all writes; see
/// `maph-server` for writes arriving over HTTP.
///
/// A child process forked while the lease is held shares the lock's open file
/// description until it execs (maph opens files close-on-exec) or exits. A new
/// writer that finds the lease taken while no live process is recorded as its
/// holder waits up to two seconds for such a copy to go before reporting
/// [`Error::WriterBusy`] with no pid.
///
/// ```
/// use maph_core::{Config, Error, Mode, SingleWriter, Store};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("single.maph");
/// Store::create(&path, Config::new(128))?;
/// let store = Store::open(&path, Mode::ReadWrite)?;
/// let writer = SingleWriter::new(&store)?;
/// store.set(&writer, b"greeting", b"hello")?;
///
/// // A second writer (here in the same process, normally another one) is refused.
/// let again = Store::open(&path, Mode::ReadWrite)?;
/// assert!(matches!(SingleWriter::new(&again), Err(Error::WriterBusy { pid: Some(_) })));
/// # Ok::<(), maph_core::Error>(())
/// ```
pub struct SingleWriter {
    /// An open file description of the store file, holding the exclusive flock.
    _lease: File,
    /// The first page of the store, mapped through the lease: where the holder
    /// records its pid (the `SingleWriter` may outlive the `Store` it was made from).
    header: SharedRegion,
    pid: u64,
    store: StoreId,
    gate: LocalGate,
    counters: ContentionCounters,
    repaired: RepairReport,
}

impl std::fmt::Debug for SingleWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleWriter")
            .field("store", &self.store)
            .field("gate", &self.gate)
            .field("repaired", &self.repaired)
            .finish()
    }
}

impl SingleWriter {
    /// The strategy tag of single-writer stores.
    pub const STRATEGY: Strategy = Strategy::SINGLE_WRITER;

    /// Takes the writer lease of `store` (opened read-write), then repairs what
    /// a writer that died mid-commit left (its write-intent lane).
    ///
    /// To replace a store with a rebuilt one while keeping writers out
    /// (`Store::swap_in`), take the replacement's lease *before* swapping it in,
    /// and drop the old one after: the lease belongs to the file, not the path.
    pub fn new(store: &Store) -> Result<SingleWriter> {
        store.check_writer(Self::STRATEGY)?;
        let lease = store.lock_description()?;
        take_lease(&lease, store)?;
        let header = SharedRegion::map(&lease, crate::format::COUNTERS_OFFSET, true)?;
        let pid = u64::from(std::process::id());
        // Relaxed: a diagnostic for `WriterBusy`; the flock is the lease.
        header.word(OFF_WRITER_PID).store(pid, Ordering::Relaxed);
        let repaired = store.repair_dead_lanes()?;
        Ok(SingleWriter {
            _lease: lease,
            header,
            pid,
            store: store.id(),
            gate: LocalGate::new(),
            counters: ContentionCounters::new(),
            repaired,
        })
    }

    /// What taking the lease repaired: the slots a writer that died mid-commit
    /// left (none, and nothing read, after a clean close).
    pub fn repair_report(&self) -> &RepairReport {
        &self.repaired
    }
}

/// Takes the exclusive flock on `lease` without blocking. If it is taken, names
/// the live holder, or waits a little for a lease no live process claims.
fn take_lease(lease: &File, store: &Store) -> Result<()> {
    let try_once = || {
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(lease.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.kind() {
            std::io::ErrorKind::WouldBlock => Ok(false),
            std::io::ErrorKind::Interrupted => Ok(false),
            _ => Err(Error::io(
                format!("could not lock {} (does the filesystem support flock?)", store.path().display()),
                err,
            )),
        }
    };
    if try_once()? {
        return Ok(());
    }
    if let Some(pid) = store.lease_holder() {
        return Err(Error::WriterBusy { pid: Some(pid) });
    }
    let deadline = Wait::Until(Instant::now() + LINGERING_LEASE);
    match poll_until(deadline, Backoff::new(), || Ok(try_once()?.then_some(())))? {
        Some(()) => Ok(()),
        None => Err(Error::WriterBusy { pid: store.lease_holder() }),
    }
}

impl Drop for SingleWriter {
    fn drop(&mut self) {
        // Before the lease goes (with `_lease`, after this): no process is named
        // as the writer once none is. Only our own record is cleared.
        let _ = self.header.word(OFF_WRITER_PID).compare_exchange(self.pid, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

impl WriteCoordinator for SingleWriter {
    fn strategy(&self) -> Strategy {
        Self::STRATEGY
    }

    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
        // No other process can write, so both kinds of access only have to
        // exclude this process's threads: the gate, taken for `access`. A
        // shared guard then gives a consistent view of several keys.
        Ok(self.gate.acquire(access, wait).then(|| Ticket::new(access, scope)))
    }

    unsafe fn release(&self, ticket: Ticket) {
        // SAFETY: the caller guarantees this ticket is held, and every ticket is
        // issued after taking the gate for its access.
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
