//! The writer thread: the one place a served store is written.
//!
//! Requests queue their writes on a bounded channel. The thread takes the first
//! write, then every write already waiting behind it (up to a group limit), and
//! commits them all in one `store.write` (group commit): one lock, one commit,
//! many requests. Each request still gets its own answer. If the group fails
//! (one key's probe window is full, say), nothing of it was written, and the
//! thread retries the requests one by one so only the one at fault fails. A
//! batch request is one commit of its own writes, all or nothing.
//!
//! The thread also grows the store: once its keys pass a share of its slots it
//! starts a rebuild into a larger file in the background (see `rebuild.rs`),
//! goes on committing, and swaps the new file in between two commits. A write
//! that meets a full probe window before that waits for the growth instead of
//! failing: only a store that cannot grow (no disk space, the server's size
//! limit) answers 507.
//!
//! Control jobs (optimize, shutdown) end a group and run in queue order, so a
//! write queued before a shutdown is committed and flushed before it ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use crossbeam::channel::{never, Receiver};
use maph_core::{Error, SingleWriter, Store, WriteCoordinator, WriteTxn};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::rebuild::{self, OptimizeReport, Purpose, Rebuild, Swapped};
use crate::served::{Mapping, Shared};

/// One write a request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Store `value` under `key`.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Remove {
        /// The key.
        key: Vec<u8>,
    },
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The key was new.
    Created,
    /// The key existed; its value was replaced.
    Updated,
    /// The key existed and was removed.
    Removed,
    /// The key to remove was not there; nothing changed.
    Absent,
}

/// Answer channel of one job.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// What the writer thread is asked to do.
pub(crate) enum Job {
    /// One write, which may share a commit with others.
    Write {
        op: WriteOp,
        reply: Reply<WriteOutcome>,
    },
    /// Writes committed together, all or nothing.
    Batch {
        ops: Vec<WriteOp>,
        reply: Reply<Vec<WriteOutcome>>,
    },
    Optimize {
        reply: Reply<OptimizeReport>,
    },
    Shutdown {
        reply: Reply<()>,
    },
}

/// How the writer thread grows its store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Growth {
    /// Largest file a store may grow to.
    pub max_store_bytes: u64,
}

/// After a growth failed, the next automatic attempt waits this long (a write
/// that finds no room still tries at once).
const GROWTH_RETRY: Duration = Duration::from_secs(1);
/// Growths a single write may wait for before it is answered 507.
const GROWTHS_PER_WRITE: u32 = 3;

/// The writer thread's state: the current store file and the lease on it.
pub(crate) struct WriterLoop {
    pub shared: Arc<Shared>,
    pub store: Arc<Store>,
    /// `None` only if a failed swap lost the lease.
    pub lease: Option<SingleWriter>,
    pub jobs: Receiver<Job>,
    pub max_group: usize,
    pub growth: Growth,
    pub read_patience: Duration,
    rebuild: Option<Rebuild>,
    /// Optimizes asked for while a rebuild ran: answered by the next one.
    optimizes_waiting: Vec<Reply<OptimizeReport>>,
    /// Optimizes answered when the running rebuild swaps in.
    optimizes_running: Vec<Reply<OptimizeReport>>,
    next_growth: Instant,
    warned_at_limit: bool,
}

/// One request's writes waiting for their commit.
struct Pending {
    ops: Vec<WriteOp>,
    reply: PendingReply,
}

enum PendingReply {
    One(Reply<WriteOutcome>),
    Many(Reply<Vec<WriteOutcome>>),
}

impl Pending {
    fn answer(self, result: Result<Vec<WriteOutcome>, ApiError>) {
        match self.reply {
            PendingReply::One(reply) => {
                let _ = reply.send(result.map(|outcomes| outcomes[0]));
            }
            PendingReply::Many(reply) => {
                let _ = reply.send(result);
            }
        }
    }
}

impl WriterLoop {
    pub fn new(
        shared: Arc<Shared>,
        store: Arc<Store>,
        lease: SingleWriter,
        jobs: Receiver<Job>,
        max_group: usize,
        growth: Growth,
        read_patience: Duration,
    ) -> WriterLoop {
        WriterLoop {
            shared,
            store,
            lease: Some(lease),
            jobs,
            max_group: max_group.max(1),
            growth,
            read_patience,
            rebuild: None,
            optimizes_waiting: Vec::new(),
            optimizes_running: Vec::new(),
            next_growth: Instant::now(),
            warned_at_limit: false,
        }
    }

    /// Runs until a shutdown job arrives or every sender is gone; flushes the
    /// store on the way out.
    pub fn run(mut self) {
        let name = self.shared.name.clone();
        loop {
            let rebuild_done = self.rebuild.as_ref().map_or_else(never, |r| r.done().clone());
            crossbeam::channel::select! {
                recv(self.jobs) -> job => match job {
                    Ok(job) => if self.handle(job) { return },
                    Err(_) => break,
                },
                recv(rebuild_done) -> copied => {
                    let copied = copied.unwrap_or_else(|_| Err(Error::io("the rebuild thread ended",
                        std::io::Error::other("rebuild thread died"))));
                    self.finish_rebuild(copied);
                }
            }
        }
        self.stop_rebuilding();
        if let Err(e) = self.store.flush() {
            tracing::error!(store = %name, error = %e, "flush at close failed");
        }
    }

    /// Handles one job (and the writes queued right behind it); true to stop.
    fn handle(&mut self, first: Job) -> bool {
        let mut group = Vec::new();
        let mut control = None;
        match first {
            Job::Write { op, reply } => group.push(Pending { ops: vec![op], reply: PendingReply::One(reply) }),
            Job::Batch { ops, reply } => group.push(Pending { ops, reply: PendingReply::Many(reply) }),
            other => control = Some(other),
        }
        if control.is_none() {
            let mut writes: usize = group.iter().map(|p| p.ops.len()).sum();
            while writes < self.max_group {
                match self.jobs.try_recv() {
                    Ok(Job::Write { op, reply }) => {
                        group.push(Pending { ops: vec![op], reply: PendingReply::One(reply) });
                        writes += 1;
                    }
                    Ok(Job::Batch { ops, reply }) => {
                        writes += ops.len();
                        group.push(Pending { ops, reply: PendingReply::Many(reply) });
                    }
                    Ok(other) => {
                        control = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        match control {
            None | Some(Job::Write { .. } | Job::Batch { .. }) => false,
            Some(Job::Optimize { reply }) => {
                self.optimize(reply);
                false
            }
            Some(Job::Shutdown { reply }) => {
                self.stop_rebuilding();
                let flushed = self.store.flush();
                match &flushed {
                    Ok(()) => tracing::info!(store = %self.shared.name, "flushed and closed"),
                    Err(e) => tracing::error!(store = %self.shared.name, error = %e, "flush at shutdown failed"),
                }
                let _ = reply.send(flushed.map_err(ApiError::from));
                true
            }
        }
    }

    /// Commits `group` together; on failure, each request alone.
    fn commit_group(&mut self, group: Vec<Pending>) {
        if group.len() > 1 {
            // On failure nothing of the group was written: each request is then
            // redone on its own, in order, so only the one at fault fails.
            if let Ok(mut outcomes) = self.commit(group.iter().flat_map(|p| &p.ops)) {
                for pending in group {
                    let rest = outcomes.split_off(pending.ops.len());
                    pending.answer(Ok(std::mem::replace(&mut outcomes, rest)));
                }
                self.maybe_grow();
                return;
            }
        }
        for pending in group {
            let result = self.commit_alone(&pending.ops);
            pending.answer(result);
        }
        self.maybe_grow();
    }

    /// Commits one request's writes; waits for a growth when they find no room.
    fn commit_alone(&mut self, ops: &[WriteOp]) -> Result<Vec<WriteOutcome>, ApiError> {
        let mut growths = 0;
        loop {
            match self.commit(ops.iter()) {
                Ok(outcomes) => return Ok(outcomes),
                Err(Error::TableFull { .. }) if growths < GROWTHS_PER_WRITE => {
                    growths += 1;
                    let new_keys = ops.iter().filter(|op| matches!(op, WriteOp::Set { .. })).count() as u64;
                    self.grow_now(new_keys)?;
                }
                Err(Error::TableFull { .. }) => {
                    return Err(ApiError::new(
                        StatusCode::INSUFFICIENT_STORAGE,
                        format!(
                            "store '{}' found no room for these keys after growing {GROWTHS_PER_WRITE} times; \
                             retry, or optimize the store",
                            self.shared.name
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One commit of `ops`, counted and noted for a running rebuild.
    fn commit<'a>(&mut self, ops: impl Iterator<Item = &'a WriteOp> + Clone) -> Result<Vec<WriteOutcome>, Error> {
        let lease = self.lease.as_ref().ok_or_else(lease_lost)?;
        let mut outcomes = Vec::new();
        let committed = self.store.write(lease, |tx| {
            outcomes.clear();
            ops.clone().try_for_each(|op| apply(tx, op).map(|outcome| outcomes.push(outcome)))
        });
        self.shared.metrics.publish_contention(lease.contention());
        committed?;
        self.shared.metrics.record_commit(outcomes.len());
        if let Some(rebuild) = self.rebuild.as_mut() {
            rebuild.record(ops);
        }
        Ok(outcomes)
    }

    /// Starts a growth in the background when the store is filling up.
    fn maybe_grow(&mut self) {
        if self.rebuild.is_some() || self.lease.is_none() || Instant::now() < self.next_growth {
            return;
        }
        let (keys, slots) = (self.store.len(), self.store.slot_count());
        if !rebuild::wants_growth(keys, slots) {
            return;
        }
        match self.growth_target(keys) {
            Ok(target) => self.start_rebuild(target, Purpose::Grow),
            Err(e) => {
                if !self.warned_at_limit {
                    tracing::warn!(store = %self.shared.name, error = %e.message, "the store cannot grow");
                    self.warned_at_limit = true;
                }
                self.next_growth = Instant::now() + GROWTH_RETRY;
            }
        }
    }

    /// Slots to grow to for `keys` keys, within the server's size limit.
    fn growth_target(&self, keys: u64) -> Result<u64, ApiError> {
        let layout = self.store.layout();
        let wanted = rebuild::grown_slots(keys, layout.slot_count);
        if rebuild::file_bytes(&layout, wanted) <= self.growth.max_store_bytes {
            return Ok(wanted);
        }
        // As large as the limit allows, if that is still larger.
        let per_slot = u64::from(layout.slot_size);
        let header = rebuild::file_bytes(&layout, 0);
        let largest = self.growth.max_store_bytes.saturating_sub(header) / per_slot;
        if largest > layout.slot_count {
            return Ok(largest);
        }
        Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            format!(
                "store '{}' is full: growing it past {} slots would pass this server's limit of {} bytes \
                 per store (--max-store-bytes)",
                self.shared.name, layout.slot_count, self.growth.max_store_bytes
            ),
        ))
    }

    fn start_rebuild(&mut self, slots: u64, purpose: Purpose) {
        match Rebuild::start(self.store.clone(), slots, purpose) {
            Ok(rebuild) => {
                tracing::info!(store = %self.shared.name, ?purpose, slots_before = self.store.slot_count(),
                    slots_after = slots, "rebuilding");
                self.shared.metrics.rebuilding.store(true, Ordering::Relaxed);
                self.rebuild = Some(rebuild);
            }
            Err(e) => self.rebuild_failed(purpose, e.into()),
        }
    }

    /// Makes room now: finishes the running rebuild, or grows, and waits.
    fn grow_now(&mut self, new_keys: u64) -> Result<(), ApiError> {
        if self.rebuild.is_none() {
            let target = self.growth_target(self.store.len().saturating_add(new_keys))?;
            self.start_rebuild(target, Purpose::Grow);
        }
        let Some(mut running) = self.rebuild.take() else {
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!("store '{}' is full and could not grow (see the server log)", self.shared.name),
            ));
        };
        let copied = running.wait();
        self.rebuild = Some(running);
        if self.finish_rebuild(copied) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!("store '{}' is full and growing it failed (see the server log)", self.shared.name),
            ))
        }
    }

    /// Completes the running rebuild with its finished copy and swaps it in.
    /// Returns whether the new file is in place.
    fn finish_rebuild(&mut self, copied: Result<rebuild::Copied, Error>) -> bool {
        let Some(running) = self.rebuild.take() else { return false };
        self.shared.metrics.rebuilding.store(false, Ordering::Relaxed);
        let purpose = running.purpose;
        let ready = match copied.and_then(|copied| running.complete(copied)) {
            Ok(ready) => ready,
            Err(e) => {
                self.rebuild_failed(purpose, e.into());
                return false;
            }
        };
        let report = ready.report.clone();
        let Some(lease) = self.lease.take() else {
            ready.discard();
            self.rebuild_failed(purpose, lease_lost().into());
            return false;
        };
        match rebuild::swap(&self.store, lease, ready, self.read_patience) {
            Swapped::Done { store, lease } => {
                let store = Arc::new(store);
                *self.shared.current.write() = Arc::new(Mapping::open(store.clone()));
                self.store = store;
                self.lease = Some(lease);
                let counter = match purpose {
                    Purpose::Grow => &self.shared.metrics.growths,
                    Purpose::Optimize => &self.shared.metrics.optimizations,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::info!(store = %self.shared.name, ?purpose, keys = report.keys,
                    slots_before = report.slots_before, slots_after = report.slots_after, "swapped in");
                for reply in self.optimizes_running.drain(..) {
                    let _ = reply.send(Ok(report.clone()));
                }
                self.next_rebuild();
                true
            }
            Swapped::Refused { lease, error } => {
                self.lease = Some(lease);
                self.rebuild_failed(purpose, error.into());
                false
            }
        }
    }

    fn rebuild_failed(&mut self, purpose: Purpose, error: ApiError) {
        tracing::error!(store = %self.shared.name, ?purpose, error = %error.message, "rebuild failed");
        self.shared.metrics.rebuilding.store(false, Ordering::Relaxed);
        if purpose == Purpose::Grow {
            self.shared.metrics.growth_failures.fetch_add(1, Ordering::Relaxed);
            self.next_growth = Instant::now() + GROWTH_RETRY;
        }
        for reply in self.optimizes_running.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        self.next_rebuild();
    }

    /// Starts the optimize asked for while another rebuild ran, if any.
    fn next_rebuild(&mut self) {
        if self.rebuild.is_none() && !self.optimizes_waiting.is_empty() {
            self.optimizes_running.append(&mut self.optimizes_waiting);
            let slots = rebuild::optimized_slots(self.store.len(), &self.store.layout());
            self.start_rebuild(slots, Purpose::Optimize);
        }
    }

    /// Rebuilds the store into a file sized for its keys; answers when it is
    /// swapped in. Writes go on meanwhile.
    fn optimize(&mut self, reply: Reply<OptimizeReport>) {
        if self.lease.is_none() {
            let _ = reply.send(Err(lease_lost().into()));
            return;
        }
        self.optimizes_waiting.push(reply);
        self.next_rebuild();
    }

    /// Abandons a running rebuild (shutting down); its optimizes are told.
    fn stop_rebuilding(&mut self) {
        if let Some(running) = self.rebuild.take() {
            running.abandon();
        }
        for reply in self.optimizes_running.drain(..).chain(self.optimizes_waiting.drain(..)) {
            let _ = reply.send(Err(ApiError::shutting_down()));
        }
        self.shared.metrics.rebuilding.store(false, Ordering::Relaxed);
    }
}

/// Records one write in `tx` and says what it will do.
fn apply(tx: &mut WriteTxn<'_>, op: &WriteOp) -> Result<WriteOutcome, Error> {
    match op {
        WriteOp::Set { key, value } => {
            let existed = tx.get(key)?.is_some();
            tx.set(key, value)?;
            Ok(if existed { WriteOutcome::Updated } else { WriteOutcome::Created })
        }
        WriteOp::Remove { key } => {
            if tx.get(key)?.is_none() {
                return Ok(WriteOutcome::Absent);
            }
            tx.remove(key)?;
            Ok(WriteOutcome::Removed)
        }
    }
}

fn lease_lost() -> Error {
    Error::LeaseLost {
        strategy: SingleWriter::STRATEGY,
        detail: "the server could not move its writer lease to the rebuilt store; restart the server".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::StoreMetrics;
    use maph_core::{Config, Mode};

    /// Queues `jobs` before the writer thread starts, so they are all waiting
    /// when it looks: the group is then deterministic. Runs the loop to the end.
    fn run_queued(
        config: Config,
        ops: Vec<WriteOp>,
        max_store_bytes: u64,
    ) -> (Vec<Result<WriteOutcome, ApiError>>, Arc<Shared>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.maph");
        Store::create(&path, config).unwrap();
        let store = Arc::new(Store::open(&path, Mode::ReadWrite).unwrap());
        let lease = SingleWriter::new(&store).unwrap();
        let name = crate::StoreName::parse("w").unwrap();
        let mapping = Mapping::open(store.clone());
        let shared = Arc::new(Shared::new(name, mapping, Arc::new(StoreMetrics::default())));
        let (queue, jobs) = crossbeam::channel::bounded(ops.len() + 1);
        let answers: Vec<_> = ops
            .into_iter()
            .map(|op| {
                let (reply, answer) = oneshot::channel();
                queue.send(Job::Write { op, reply }).unwrap();
                answer
            })
            .collect();
        drop(queue); // the loop ends once it has drained the queue
        let growth = Growth { max_store_bytes };
        WriterLoop::new(shared.clone(), store, lease, jobs, 64, growth, Duration::from_millis(500)).run();
        let results = answers.into_iter().map(|a| a.blocking_recv().unwrap()).collect();
        (results, shared)
    }

    fn set(key: &str, value: &str) -> WriteOp {
        WriteOp::Set { key: key.into(), value: value.into() }
    }

    fn remove(key: &str) -> WriteOp {
        WriteOp::Remove { key: key.into() }
    }

    #[test]
    fn queued_writes_commit_as_one_group_with_their_own_outcomes() {
        let ops = vec![set("a", "1"), set("b", "2"), set("a", "3"), remove("b"), remove("never")];
        let (results, shared) = run_queued(Config::new(640), ops, u64::MAX);
        let outcomes: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        use WriteOutcome::*;
        assert_eq!(outcomes, vec![Created, Created, Updated, Removed, Absent]);
        let stats = shared.metrics.snapshot();
        assert_eq!((stats.commits, stats.writes, stats.largest_group), (1, 5, 5));
        let store = shared.mapping().store.clone();
        assert_eq!(store.generation(), 1, "one commit for the whole group");
        assert_eq!(store.get(b"a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(store.get(b"b").unwrap(), None);
    }

    #[test]
    fn one_failing_write_does_not_fail_the_rest_of_its_group() {
        let too_big = WriteOp::Set { key: b"huge".to_vec(), value: vec![b'x'; 10_000] };
        let ops = vec![set("k1", "1"), set("k2", "2"), too_big, remove("k1"), set("k2", "22")];
        let (results, shared) = run_queued(Config::new(640), ops, u64::MAX);
        assert_eq!(results[0].as_ref().unwrap(), &WriteOutcome::Created);
        assert_eq!(results[1].as_ref().unwrap(), &WriteOutcome::Created);
        assert_eq!(results[2].as_ref().unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(results[3].as_ref().unwrap(), &WriteOutcome::Removed);
        assert_eq!(results[4].as_ref().unwrap(), &WriteOutcome::Updated);
        let store = shared.mapping().store.clone();
        assert_eq!(store.get(b"k1").unwrap(), None);
        assert_eq!(store.get(b"k2").unwrap(), Some(b"22".to_vec()));
        // The four writes that succeeded were each committed alone.
        assert_eq!(shared.metrics.snapshot().writes, 4);
    }

    #[test]
    fn a_full_store_grows_instead_of_refusing() {
        // Two slots: the third distinct key finds no room until the store grows.
        let ops: Vec<_> = (0..40).map(|i| set(&format!("k{i}"), "v")).collect();
        let (results, shared) = run_queued(Config::new(2).max_probes(2), ops, u64::MAX);
        assert!(results.iter().all(|r| r.as_ref() == Ok(&WriteOutcome::Created)), "{results:?}");
        let store = shared.mapping().store.clone();
        assert_eq!(store.len(), 40);
        assert!(store.slot_count() >= 80, "grown to {}", store.slot_count());
        assert!(shared.metrics.snapshot().growths >= 1);
    }

    #[test]
    fn a_store_at_the_size_limit_answers_507() {
        let config = Config::new(2).max_probes(2);
        let limit = rebuild::file_bytes(&config_layout(config), 2);
        let ops = vec![set("k1", "1"), set("k2", "2"), set("k3", "3"), set("k1", "updated")];
        let (results, shared) = run_queued(config, ops, limit);
        assert!(results[0].is_ok() && results[1].is_ok());
        let refused = results[2].as_ref().unwrap_err();
        assert_eq!(refused.status, StatusCode::INSUFFICIENT_STORAGE);
        assert!(refused.message.contains("--max-store-bytes"), "{}", refused.message);
        assert_eq!(results[3].as_ref().unwrap(), &WriteOutcome::Updated, "a present key is still updated");
        assert_eq!(shared.mapping().store.len(), 2);
    }

    fn config_layout(config: Config) -> maph_core::Layout {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.maph");
        Store::create(&path, config).unwrap();
        Store::open(&path, Mode::ReadOnly).unwrap().layout()
    }
}
