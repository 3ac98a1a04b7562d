//! One writer process, chosen by an exclusive lease.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use super::{Access, ContentionCounters, LocalGate, LockScope, Ticket, Wait, WriteCoordinator};
use crate::lock_file::{lock_path, open_lock_file, read_pid, write_pid};
use crate::{Error, RepairReport, Result, Store, StoreId, Strategy};

/// The recommended strategy: exactly one process writes, everyone else reads.
///
/// Creating a `SingleWriter` takes an exclusive, non-blocking `flock` on
/// `<store>.lock` and holds it until the `SingleWriter` is dropped (or the
/// process dies, when the kernel releases it). A second writer fails at once
/// with [`Error::WriterBusy`] naming the holder's pid. Readers never touch the
/// lease, so they are never blocked.
///
/// Per write it costs no system call: threads of the owning process take turns
/// on an in-process lock (one compare-and-swap when uncontended).
///
/// Because no other writer can exist, creating it also repairs any slot a
/// crashed earlier writer left mid-write; see [`repair_report`](Self::repair_report).
///
/// Choose it when one process (a server, an ingest job) can own all writes; see
/// `maph-server` for writes arriving over HTTP.
///
/// A caveat of every `flock`-based lease: a child process forked while the
/// lease is held shares the lock's open file description until it execs (Rust
/// opens files close-on-exec) or exits. If one thread drops the `SingleWriter`
/// while another is between `fork` and `exec`, the lease stays taken for that
/// moment, and a new writer gets [`Error::WriterBusy`] with no pid; retry.
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
/// assert!(matches!(SingleWriter::new(&again), Err(Error::WriterBusy { .. })));
/// # Ok::<(), maph_core::Error>(())
/// ```
#[derive(Debug)]
pub struct SingleWriter {
    _lease: File,
    lease_path: PathBuf,
    store: StoreId,
    gate: LocalGate,
    counters: ContentionCounters,
    repaired: RepairReport,
}

impl SingleWriter {
    /// The strategy tag of single-writer stores.
    pub const STRATEGY: Strategy = Strategy::SINGLE_WRITER;

    /// Takes the writer lease of `store` (opened read-write), then repairs any
    /// slot left mid-write by a writer that died.
    pub fn new(store: &Store) -> Result<SingleWriter> {
        store.check_writer(Self::STRATEGY)?;
        let lease_path = lock_path(store.path());
        let mut lease = open_lock_file(&lease_path)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(lease.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(if err.kind() == std::io::ErrorKind::WouldBlock {
                Error::WriterBusy { pid: read_pid(&lease_path) }
            } else {
                Error::io(format!("could not lock {} (does the filesystem support flock?)", lease_path.display()), err)
            });
        }
        write_pid(&mut lease)?;
        let repaired = store.repair_dead_lanes()?;
        Ok(SingleWriter {
            _lease: lease,
            lease_path,
            store: store.id(),
            gate: LocalGate::new(),
            counters: ContentionCounters::new(),
            repaired,
        })
    }

    /// Moves the lease to `store`, a new file at the same path (after
    /// [`Store::swap_in`]): the lease file is the same, so it stays held
    /// throughout and no other writer can slip in between.
    pub fn transfer_to(self, store: &Store) -> Result<SingleWriter> {
        store.check_writer(Self::STRATEGY)?;
        if lock_path(store.path()) != self.lease_path {
            return Err(Error::InvalidConfig(format!(
                "the lease is for {}, which is not the lock file of {}",
                self.lease_path.display(),
                store.path().display()
            )));
        }
        let repaired = store.repair_dead_lanes()?;
        Ok(SingleWriter { store: store.id(), repaired, ..self })
    }

    /// What opening repaired: slots a crashed writer left mid-write.
    pub fn repair_report(&self) -> &RepairReport {
        &self.repaired
    }

    /// The lease file this writer holds.
    pub fn lease_path(&self) -> &std::path::Path {
        &self.lease_path
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
