//! The single-process workloads: the columns of the strategy table, written
//! once and run by criterion against every row.

use std::hint::black_box;

use criterion::{Criterion, Throughput};

use crate::subject::Subject;

/// Operations in a batch column (the reference's "Batch writes (100)").
pub const BATCH: usize = 100;

/// A column of the strategy table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// One key stored: `Store::set` (locks the key's window where the coordinator can).
    Write,
    /// One key read, lock-free (maph) or in a read transaction (peers).
    Read,
    /// One key read under the strategy's shared lock (the reference's flock reader).
    LockedRead,
    /// 100 keys stored in one write: one lock acquisition, or one transaction.
    Write100,
    /// 100 keys read, lock-free (maph) or in one read transaction (peers).
    Read100,
    /// The coordinator's lock on one key's window taken and given back, with
    /// nothing written: the lock's own cost, comparable with limits.c's floor.
    LockUnlock,
}

impl Column {
    /// Every column, in table order.
    pub const ALL: [Column; 6] =
        [Column::Write, Column::Read, Column::LockedRead, Column::Write100, Column::Read100, Column::LockUnlock];

    /// The criterion function id.
    pub fn id(self) -> &'static str {
        match self {
            Column::Write => "write",
            Column::Read => "read",
            Column::LockedRead => "read-shared-lock",
            Column::Write100 => "write-100",
            Column::Read100 => "read-100",
            Column::LockUnlock => "lock-unlock",
        }
    }

    /// The table heading.
    pub fn title(self) -> &'static str {
        match self {
            Column::Write => "write",
            Column::Read => "read",
            Column::LockedRead => "read, shared lock",
            Column::Write100 => "100 writes, one commit",
            Column::Read100 => "100 reads",
            Column::LockUnlock => "lock + unlock",
        }
    }

    /// The same operation without the lock: what a locked read is compared with.
    pub fn without_lock(self) -> Column {
        match self {
            Column::LockedRead => Column::Read,
            other => other,
        }
    }

    /// Operations per measured iteration.
    pub fn ops(self) -> usize {
        match self {
            Column::Write | Column::Read | Column::LockedRead | Column::LockUnlock => 1,
            Column::Write100 | Column::Read100 => BATCH,
        }
    }
}

/// The data every row is measured on: the same keys and value for all.
#[derive(Clone, Debug)]
pub struct Keyspace {
    keys: Vec<Vec<u8>>,
    value: Vec<u8>,
}

impl Keyspace {
    /// `count` keys like `user:00000042` and one 64-byte value.
    pub fn new(count: usize) -> Keyspace {
        let keys = (0..count.max(BATCH)).map(|i| format!("user:{i:08}").into_bytes()).collect();
        let value = (0..64u8).map(|i| b'a' + i % 26).collect();
        Keyspace { keys, value }
    }

    /// The keys.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The value every write stores.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Writes every key once, so reads hit and writes overwrite (the steady state).
    pub fn populate(&self, subject: &mut dyn Subject) -> anyhow::Result<()> {
        for chunk in self.keys.chunks(BATCH) {
            subject.set_batch(chunk, &self.value)?;
        }
        Ok(())
    }

    /// Runs `column` once, checking that it works (and that reads find their keys)
    /// before criterion times it.
    pub fn probe(&self, subject: &mut dyn Subject, column: Column) -> anyhow::Result<()> {
        let mut out = Vec::new();
        let key = &self.keys[0];
        let batch = &self.keys[..BATCH];
        let found = match column {
            Column::Write => return subject.set(key, &self.value),
            Column::Write100 => return subject.set_batch(batch, &self.value),
            Column::LockUnlock => return subject.lock_unlock(key),
            Column::Read => usize::from(subject.get(key, &mut out)?),
            Column::LockedRead => usize::from(subject.get_locked(key, &mut out)?),
            Column::Read100 => subject.get_batch(batch, &mut out)?,
        };
        anyhow::ensure!(found == column.ops(), "{}: found {found} of {} keys just written", column.id(), column.ops());
        anyhow::ensure!(out == self.value, "{}: read back another value than was written", column.id());
        Ok(())
    }
}

/// Has criterion measure `column` of the row `row_id` on `subject`, walking the
/// keyspace round-robin so every iteration touches another key.
///
/// Failures during measurement panic with the row and column named (each column
/// was [`probe`](Keyspace::probe)d first, so they mean something broke mid-run).
pub fn bench_column(c: &mut Criterion, row_id: &str, subject: &mut dyn Subject, keyspace: &Keyspace, column: Column) {
    let keys = keyspace.keys();
    let value = keyspace.value();
    let batches = keys.len() / BATCH;
    let mut next = 0usize;
    let mut out = Vec::with_capacity(value.len());
    let mut group = c.benchmark_group(row_id);
    group.throughput(Throughput::Elements(column.ops() as u64));
    group.bench_function(column.id(), |b| match column {
        Column::Write => b.iter(|| {
            next = (next + 1) % keys.len();
            check(subject.set(&keys[next], value), row_id, column)
        }),
        Column::Read => b.iter(|| {
            next = (next + 1) % keys.len();
            black_box(check(subject.get(&keys[next], &mut out), row_id, column))
        }),
        Column::LockedRead => b.iter(|| {
            next = (next + 1) % keys.len();
            black_box(check(subject.get_locked(&keys[next], &mut out), row_id, column))
        }),
        Column::Write100 => b.iter(|| {
            next = (next + 1) % batches;
            check(subject.set_batch(&keys[next * BATCH..(next + 1) * BATCH], value), row_id, column)
        }),
        Column::LockUnlock => b.iter(|| {
            next = (next + 1) % keys.len();
            check(subject.lock_unlock(&keys[next]), row_id, column)
        }),
        Column::Read100 => b.iter(|| {
            next = (next + 1) % batches;
            black_box(check(subject.get_batch(&keys[next * BATCH..(next + 1) * BATCH], &mut out), row_id, column))
        }),
    });
    group.finish();
}

/// The value of an operation criterion is timing; a failure means the run is broken.
fn check<T>(result: anyhow::Result<T>, row_id: &str, column: Column) -> T {
    result.unwrap_or_else(|e| panic!("{row_id} / {}: {e:#}", column.id()))
}
