//! One served store: its current mapping (for reads on any thread) and the
//! queue to its writer thread (for writes).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{bounded, Sender, TrySendError};
use maph_core::{ContentionStats, Error, Mode, SingleWriter, Store};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::optimize::OptimizeReport;
use crate::writer::{Job, WriteOp, WriteOutcome, WriterLoop};
use crate::StoreName;

/// State the request handlers and the writer thread share.
pub(crate) struct Shared {
    pub name: StoreName,
    /// The mapping reads use. The writer thread replaces it after an optimize;
    /// a reader holding the old `Arc` finishes on the old mapping, which holds
    /// the same entries (writes wait while the writer thread rebuilds).
    pub current: RwLock<Arc<Store>>,
    pub stats: WriterStats,
}

/// Counters of the writer thread, for `GET /stores/{name}/stats`.
#[derive(Default)]
pub(crate) struct WriterStats {
    commits: AtomicU64,
    writes: AtomicU64,
    largest_group: AtomicU64,
    pub optimizations: AtomicU64,
    contention: Mutex<ContentionStats>,
}

impl WriterStats {
    pub fn record_commit(&self, writes: usize) {
        // Relaxed: independent statistics, read only for display.
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
        self.largest_group.fetch_max(writes as u64, Ordering::Relaxed);
    }

    pub fn publish_contention(&self, stats: ContentionStats) {
        *self.contention.lock() = stats;
    }

    pub fn snapshot(&self) -> WriterStatsSnapshot {
        let contention = *self.contention.lock();
        WriterStatsSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
            optimizations: self.optimizations.load(Ordering::Relaxed),
            lock_acquisitions: contention.acquisitions,
            lock_contended: contention.contended,
            lock_wait_total_us: contention.total_wait.as_micros() as u64,
            lock_wait_longest_us: contention.longest_wait.as_micros() as u64,
        }
    }
}

/// The writer thread's figures as the stats endpoint shows them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct WriterStatsSnapshot {
    /// Commits made (a group commit counts once).
    pub commits: u64,
    /// Writes committed.
    pub writes: u64,
    /// Most writes committed together.
    pub largest_group: u64,
    /// Optimizes completed.
    pub optimizations: u64,
    /// Acquisitions of the writer's lock.
    pub lock_acquisitions: u64,
    /// Acquisitions that waited (always 0: only the writer thread writes).
    pub lock_contended: u64,
    /// Time spent waiting for the lock, summed, in microseconds.
    pub lock_wait_total_us: u64,
    /// The longest wait for the lock, in microseconds.
    pub lock_wait_longest_us: u64,
}

/// A store the server serves: the writer lease is held by its writer thread
/// for as long as the store is served.
pub(crate) struct ServedStore {
    pub shared: Arc<Shared>,
    pub path: PathBuf,
    queue: Sender<Job>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ServedStore {
    /// Opens the store at `path` for writing, takes its writer lease (failing
    /// with `WriterBusy` if another process holds it) and starts its writer thread.
    pub fn open(name: StoreName, path: &Path, queue_capacity: usize, max_group: usize) -> Result<ServedStore, Error> {
        let store = Arc::new(Store::open(path, Mode::ReadWrite)?);
        let lease = SingleWriter::new(&store)?;
        let repaired = lease.repair_report();
        if !repaired.is_clean() {
            tracing::warn!(store = %name, finished = repaired.finished.len(), cleared = repaired.cleared.len(),
                "repaired slots a crashed writer left mid-write");
        }
        let shared =
            Arc::new(Shared { name: name.clone(), current: RwLock::new(store.clone()), stats: WriterStats::default() });
        let (queue, jobs) = bounded(queue_capacity.max(1));
        let writer =
            WriterLoop { shared: shared.clone(), store, lease: Some(lease), jobs, max_group: max_group.max(1) };
        let thread = std::thread::Builder::new()
            .name(format!("maph-writer-{name}"))
            .spawn(move || writer.run())
            .map_err(|e| Error::io("could not start a writer thread", e))?;
        Ok(ServedStore { shared, path: path.to_path_buf(), queue, thread: Mutex::new(Some(thread)) })
    }

    /// The name it is served under.
    pub fn name(&self) -> &StoreName {
        &self.shared.name
    }

    /// The mapping to read from now.
    pub fn current(&self) -> Arc<Store> {
        self.shared.current.read().clone()
    }

    /// Queues `op` and waits for its own result.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, ApiError> {
        self.ask(|reply| Job::Write { op, reply }).await
    }

    /// Rebuilds and swaps the store (on the writer thread, between writes).
    pub async fn optimize(&self) -> Result<OptimizeReport, ApiError> {
        self.ask(|reply| Job::Optimize { reply }).await
    }

    async fn ask<T>(&self, make: impl FnOnce(crate::writer::Reply<T>) -> Job) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(make(reply)) {
            Ok(()) => {}
            Err(TrySendError::Disconnected(_)) => return Err(ApiError::shutting_down()),
            Err(TrySendError::Full(job)) => {
                // The queue is full: wait for room on a blocking thread, never on
                // a runtime worker (that would stall every other request).
                let queue = self.queue.clone();
                let sent = tokio::task::spawn_blocking(move || queue.send(job).is_ok())
                    .await
                    .map_err(|e| ApiError::internal(format!("the write queue failed: {e}")))?;
                if !sent {
                    return Err(ApiError::shutting_down());
                }
            }
        }
        match answer.await {
            Ok(result) => result.map_err(ApiError::from),
            Err(_) => Err(ApiError::shutting_down()),
        }
    }

    /// Lets the writer thread finish every queued write, flush and stop; waits
    /// for it. Blocking: call it off the async runtime.
    pub fn close(&self) -> Result<(), Error> {
        let Some(thread) = self.thread.lock().take() else { return Ok(()) };
        let (reply, answer) = oneshot::channel();
        let flushed = if self.queue.send(Job::Shutdown { reply }).is_ok() {
            answer.blocking_recv().unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        if thread.join().is_err() {
            return Err(Error::io(
                format!("the writer thread of {} panicked", self.shared.name),
                std::io::Error::other("writer thread panicked"),
            ));
        }
        flushed
    }
}

impl Drop for ServedStore {
    fn drop(&mut self) {
        // A server dropped without close (a test, a panic) still stops its
        // writer thread cleanly; the thread flushes when its queue disconnects.
        if let Some(thread) = self.thread.get_mut().take() {
            let (dummy, _) = bounded(0);
            drop(std::mem::replace(&mut self.queue, dummy));
            let _ = thread.join();
        }
    }
}
