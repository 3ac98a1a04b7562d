//! One served store: its current mapping (for reads on any thread) and the
//! queue to its writer thread (for writes).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{bounded, Sender, TrySendError};
use maph_core::{Error, Mode, SingleWriter, Store};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::metrics::StoreMetrics;
use crate::rebuild::OptimizeReport;
use crate::writer::{Growth, Job, WriteOp, WriteOutcome, WriterLoop};
use crate::StoreName;

/// The file a store is served from, mapped twice: the writer's handle, whose
/// reads wait for a slot mid-write up to the server's read patience, and a
/// read-only handle that never waits, for reads on async worker threads.
pub(crate) struct Mapping {
    /// The writer thread's handle (also used for reads that may wait, on
    /// blocking threads only).
    pub store: Arc<Store>,
    /// Zero patience: a read that meets a slot mid-write fails at once with
    /// `SlotBusy` (after a few spins) instead of blocking its thread. `None`
    /// if the second mapping could not be made: every read then goes to a
    /// blocking thread, slower but never stale.
    quick: Option<Store>,
}

impl Mapping {
    /// Maps `store`'s file a second time for quick reads.
    pub fn open(store: Arc<Store>) -> Mapping {
        let quick = match Store::open(store.path(), Mode::ReadOnly) {
            Ok(quick) => Some(quick.with_read_patience(Duration::ZERO)),
            Err(e) => {
                tracing::error!(file = %store.path().display(), error = %e,
                    "could not map the store a second time; reads go to blocking threads");
                None
            }
        };
        Mapping { store, quick }
    }
}

/// State the request handlers and the writer thread share.
pub(crate) struct Shared {
    pub name: StoreName,
    /// The mapping reads use. The writer thread replaces it after a rebuild;
    /// a reader holding the old `Arc` finishes on the old mapping, which holds
    /// the same entries as the new file had when it was swapped in.
    pub current: RwLock<Arc<Mapping>>,
    pub metrics: Arc<StoreMetrics>,
}

impl Shared {
    pub fn new(name: StoreName, mapping: Mapping, metrics: Arc<StoreMetrics>) -> Shared {
        Shared { name, current: RwLock::new(Arc::new(mapping)), metrics }
    }

    /// The mapping to read from now.
    pub fn mapping(&self) -> Arc<Mapping> {
        self.current.read().clone()
    }
}

/// How every served store is run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreSettings {
    pub queue_capacity: usize,
    pub max_group: usize,
    pub growth: Growth,
    pub read_patience: Duration,
}

/// A store the server serves: the writer lease is held by its writer thread
/// for as long as the store is served.
pub(crate) struct ServedStore {
    pub shared: Arc<Shared>,
    queue: Sender<Job>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ServedStore {
    /// Opens the store at `path` for writing, takes its writer lease (failing
    /// with `WriterBusy` if another process holds it) and starts its writer thread.
    pub fn open(name: StoreName, path: &std::path::Path, settings: StoreSettings) -> Result<ServedStore, Error> {
        let store = Arc::new(Store::open(path, Mode::ReadWrite)?.with_read_patience(settings.read_patience));
        let lease = SingleWriter::new(&store)?;
        let repaired = lease.repair_report();
        if !repaired.is_clean() {
            tracing::warn!(store = %name, finished = repaired.finished.len(), cleared = repaired.cleared.len(),
                "repaired slots a crashed writer left mid-write");
        }
        let mapping = Mapping::open(store.clone());
        let shared = Arc::new(Shared::new(name.clone(), mapping, Arc::new(StoreMetrics::default())));
        let (queue, jobs) = bounded(settings.queue_capacity.max(1));
        let writer = WriterLoop::new(
            shared.clone(),
            store,
            lease,
            jobs,
            settings.max_group,
            settings.growth,
            settings.read_patience,
        );
        let thread = std::thread::Builder::new()
            .name(format!("maph-writer-{name}"))
            .spawn(move || writer.run())
            .map_err(|e| Error::io("could not start a writer thread", e))?;
        Ok(ServedStore { shared, queue, thread: Mutex::new(Some(thread)) })
    }

    /// The name it is served under.
    pub fn name(&self) -> &StoreName {
        &self.shared.name
    }

    /// The mapping to read from now.
    pub fn mapping(&self) -> Arc<Mapping> {
        self.shared.mapping()
    }

    /// The value of `key`. Read lock-free on the calling (async) thread; only a
    /// read that meets a slot mid-write waits, and it waits on a blocking thread.
    pub async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, ApiError> {
        self.shared.metrics.count_reads(1);
        let mapping = self.mapping();
        match mapping.quick.as_ref().map(|quick| quick.get(&key)) {
            Some(Err(Error::SlotBusy { .. })) | None => self.read_waiting(mapping, move |store| store.get(&key)).await,
            Some(other) => other.map_err(ApiError::from),
        }
    }

    /// The values of `keys`, in one lock-free pass over one mapping (retried on
    /// a blocking thread if a slot is mid-write).
    pub async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, ApiError> {
        self.shared.metrics.count_reads(keys.len());
        let mapping = self.mapping();
        let pass = |store: &Store, keys: &[Vec<u8>]| keys.iter().map(|k| store.get(k)).collect::<Result<Vec<_>, _>>();
        match mapping.quick.as_ref().map(|quick| pass(quick, &keys)) {
            Some(Err(Error::SlotBusy { .. })) | None => {
                self.read_waiting(mapping, move |store| pass(store, &keys)).await
            }
            Some(other) => other.map_err(ApiError::from),
        }
    }

    /// Runs a read that met a slot mid-write again on a blocking thread, where
    /// it may wait; counted in the metrics while it waits.
    async fn read_waiting<T: Send + 'static>(
        &self,
        mapping: Arc<Mapping>,
        read: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        let metrics = self.shared.metrics.clone();
        metrics.read_waits.fetch_add(1, Ordering::Relaxed);
        metrics.reads_waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = WaitingRead(metrics);
        on_blocking_thread(mapping, move |store| {
            let _waiting = waiting; // counted until the read ends, even if the client left
            read(store)
        })
        .await
    }

    /// Runs a long read (a scan of every slot) on a blocking thread.
    pub async fn scan<T: Send + 'static>(
        &self,
        scan: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        on_blocking_thread(self.mapping(), move |store| Ok(scan(store))).await
    }

    /// Queues `op` and waits for its own result.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, ApiError> {
        self.ask(|reply| Job::Write { op, reply }).await
    }

    /// Queues `ops` as one commit and waits for its result.
    pub async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, ApiError> {
        self.ask(|reply| Job::Batch { ops, reply }).await
    }

    /// Rebuilds the store sized for its keys and swaps it in.
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
        answer.await.unwrap_or_else(|_| Err(ApiError::shutting_down()))
    }

    /// Lets the writer thread finish every queued write, flush and stop; waits
    /// for it. Blocking: call it off the async runtime.
    pub fn close(&self) -> Result<(), ApiError> {
        let Some(thread) = self.thread.lock().take() else { return Ok(()) };
        let (reply, answer) = oneshot::channel();
        let flushed = if self.queue.send(Job::Shutdown { reply }).is_ok() {
            answer.blocking_recv().unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        if thread.join().is_err() {
            return Err(ApiError::internal(format!("the writer thread of {} panicked", self.shared.name)));
        }
        flushed
    }
}

async fn on_blocking_thread<T: Send + 'static>(
    mapping: Arc<Mapping>,
    read: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || read(&mapping.store))
        .await
        .map_err(|e| ApiError::internal(format!("a read failed: {e}")))?
        .map_err(ApiError::from)
}

/// Counts one read waiting on a blocking thread until dropped.
struct WaitingRead(Arc<StoreMetrics>);

impl Drop for WaitingRead {
    fn drop(&mut self) {
        self.0.reads_waiting.fetch_sub(1, Ordering::Relaxed);
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
