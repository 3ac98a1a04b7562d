//! The writer thread: the one place a served store is written.
//!
//! Requests queue their writes on a bounded channel. The thread takes the first
//! write, then every write already waiting behind it (up to a group limit), and
//! commits them all in one `store.write` (group commit): one lock, one commit,
//! many requests. Each request still gets its own answer. If the group fails
//! (one key's probe window is full, say), nothing of it was written, and the
//! thread retries the writes one by one so only the write at fault fails.
//!
//! Control jobs (optimize, shutdown) end a group and run in queue order, so a
//! write queued before a shutdown is committed and flushed before it ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam::channel::Receiver;
use maph_core::{Error, SingleWriter, Store, WriteCoordinator, WriteTxn};
use tokio::sync::oneshot;

use crate::optimize::{rebuild, OptimizeReport};
use crate::served::Shared;

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
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What the writer thread is asked to do.
pub(crate) enum Job {
    Write { op: WriteOp, reply: Reply<WriteOutcome> },
    Optimize { reply: Reply<OptimizeReport> },
    Shutdown { reply: Reply<()> },
}

/// The writer thread's state: the current store file and the lease on it.
pub(crate) struct WriterLoop {
    pub shared: Arc<Shared>,
    pub store: Arc<Store>,
    /// `None` only if a failed optimize lost the lease (see `optimize`).
    pub lease: Option<SingleWriter>,
    pub jobs: Receiver<Job>,
    pub max_group: usize,
}

struct PendingWrite {
    op: WriteOp,
    reply: Reply<WriteOutcome>,
}

impl WriterLoop {
    /// Runs until a shutdown job arrives or every sender is gone; flushes the
    /// store on the way out.
    pub fn run(mut self) {
        let name = self.shared.name.clone();
        while let Ok(first) = self.jobs.recv() {
            let mut group = Vec::new();
            let mut control = None;
            match first {
                Job::Write { op, reply } => group.push(PendingWrite { op, reply }),
                other => control = Some(other),
            }
            if control.is_none() {
                while group.len() < self.max_group {
                    match self.jobs.try_recv() {
                        Ok(Job::Write { op, reply }) => group.push(PendingWrite { op, reply }),
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
                None => {}
                Some(Job::Write { .. }) => unreachable!("writes are grouped above"),
                Some(Job::Optimize { reply }) => {
                    let _ = reply.send(self.optimize());
                }
                Some(Job::Shutdown { reply }) => {
                    let flushed = self.store.flush();
                    match &flushed {
                        Ok(()) => tracing::info!(store = %name, "flushed and closed"),
                        Err(e) => tracing::error!(store = %name, error = %e, "flush at shutdown failed"),
                    }
                    let _ = reply.send(flushed);
                    return;
                }
            }
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(store = %name, error = %e, "flush at close failed");
        }
    }

    /// Commits `group` together; on failure, each write alone.
    fn commit_group(&mut self, group: Vec<PendingWrite>) {
        let Some(lease) = self.lease.as_ref() else {
            for write in group {
                let _ = write.reply.send(Err(lease_lost()));
            }
            return;
        };
        let mut outcomes = Vec::with_capacity(group.len());
        let together = self.store.write(lease, |tx| {
            outcomes.clear();
            for write in &group {
                outcomes.push(apply(tx, &write.op)?);
            }
            Ok(())
        });
        match together {
            Ok(()) => {
                self.shared.stats.record_commit(group.len());
                for (write, outcome) in group.into_iter().zip(outcomes) {
                    let _ = write.reply.send(Ok(outcome));
                }
            }
            Err(error) if group.len() == 1 => {
                let write = group.into_iter().next().expect("one write");
                let _ = write.reply.send(Err(error));
            }
            Err(_) => {
                // Nothing of the group was written: redo each write on its own,
                // in order, so only the one at fault reports the failure.
                for write in group {
                    let mut outcome = None;
                    let alone = self.store.write(lease, |tx| {
                        outcome = Some(apply(tx, &write.op)?);
                        Ok(())
                    });
                    if alone.is_ok() {
                        self.shared.stats.record_commit(1);
                    }
                    let _ = write.reply.send(alone.map(|()| outcome.expect("set when the write succeeded")));
                }
            }
        }
        self.shared.stats.publish_contention(lease.contention());
    }

    /// Rebuilds the store into a fresh file sized for its keys and swaps it in.
    /// Writes wait in the queue meanwhile; reads go on from the old mapping,
    /// which holds exactly the same entries until the swap.
    fn optimize(&mut self) -> Result<OptimizeReport, Error> {
        if self.lease.is_none() {
            return Err(lease_lost());
        }
        let (replacement, report) = rebuild(&self.store)?;
        // The lease belongs to a file, not a path: take the new file's lease
        // before it replaces the old one, and keep the old lease until then.
        let swapped = Store::open(&replacement, maph_core::Mode::ReadWrite).and_then(|new_store| {
            let new_lease = SingleWriter::new(&new_store)?;
            Ok((self.store.swap_in(new_store)?, new_lease))
        });
        let (new_store, new_lease) = match swapped {
            Ok(swapped) => swapped,
            Err(e) => {
                let _ = std::fs::remove_file(&replacement);
                return Err(e);
            }
        };
        // The old file is retired now; its lease can go.
        self.lease = Some(new_lease);
        let new_store = Arc::new(new_store);
        self.store = new_store.clone();
        *self.shared.current.write() = new_store;
        self.shared.stats.optimizations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(store = %self.shared.name, keys = report.keys, slots_before = report.slots_before,
            slots_after = report.slots_after, "optimized");
        Ok(report)
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
    use crate::served::WriterStats;
    use maph_core::{Config, Mode};
    use parking_lot::RwLock;

    /// Queues `ops` before the writer thread starts, so they are all waiting
    /// when it looks: the group is then deterministic. Runs the loop to the end.
    fn run_queued(config: Config, ops: Vec<WriteOp>) -> (Vec<Result<WriteOutcome, Error>>, Arc<Shared>, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.maph");
        Store::create(&path, config).unwrap();
        let store = Arc::new(Store::open(&path, Mode::ReadWrite).unwrap());
        let lease = SingleWriter::new(&store).unwrap();
        let name = crate::StoreName::parse("w").unwrap();
        let shared = Arc::new(Shared { name, current: RwLock::new(store.clone()), stats: WriterStats::default() });
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
        let writer =
            WriterLoop { shared: shared.clone(), store: store.clone(), lease: Some(lease), jobs, max_group: 64 };
        writer.run();
        let results = answers.into_iter().map(|a| a.blocking_recv().unwrap()).collect();
        (results, shared, store)
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
        let (results, shared, store) = run_queued(Config::new(64), ops);
        let outcomes: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        use WriteOutcome::*;
        assert_eq!(outcomes, vec![Created, Created, Updated, Removed, Absent]);
        let stats = shared.stats.snapshot();
        assert_eq!((stats.commits, stats.writes, stats.largest_group), (1, 5, 5));
        assert_eq!(store.generation(), 1, "one commit for the whole group");
        assert_eq!(store.get(b"a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(store.get(b"b").unwrap(), None);
    }

    #[test]
    fn one_failing_write_does_not_fail_the_rest_of_its_group() {
        // Two slots: the third distinct key cannot fit anywhere.
        let config = Config::new(2).max_probes(2);
        let too_big = WriteOp::Set { key: b"huge".to_vec(), value: vec![b'x'; 10_000] };
        let ops = vec![set("k1", "1"), set("k2", "2"), set("k3", "3"), too_big, remove("k1"), set("k2", "22")];
        let (results, shared, store) = run_queued(config, ops);
        assert_eq!(results[0].as_ref().unwrap(), &WriteOutcome::Created);
        assert_eq!(results[1].as_ref().unwrap(), &WriteOutcome::Created);
        assert!(matches!(results[2], Err(Error::TableFull { .. })), "{:?}", results[2]);
        assert!(matches!(results[3], Err(Error::ValueTooLarge { .. })), "{:?}", results[3]);
        assert_eq!(results[4].as_ref().unwrap(), &WriteOutcome::Removed);
        assert_eq!(results[5].as_ref().unwrap(), &WriteOutcome::Updated);
        assert_eq!(store.get(b"k1").unwrap(), None);
        assert_eq!(store.get(b"k2").unwrap(), Some(b"22".to_vec()));
        assert_eq!(store.get(b"k3").unwrap(), None);
        // The four writes that succeeded were each committed alone.
        assert_eq!(shared.stats.snapshot().writes, 4);
    }
}
