//! The single-process workloads: the columns of the strategy table, written
//! once and run by criterion against every row.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};

use crate::keys::permutation;
use crate::subject::Subject;

/// Operations in a batch column (the reference's "Batch writes (100)").
pub const BATCH: usize = 100;

/// A column of the strategy table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Column {
    /// One key stored: `Store::set` (locks the key's window where the coordinator can).
    #[serde(rename = "write")]
    Write,
    /// One key read, lock-free (maph) or in a read transaction (peers).
    #[serde(rename = "read")]
    Read,
    /// One key read under the strategy's shared lock (the reference's flock reader).
    #[serde(rename = "read-shared-lock")]
    LockedRead,
    /// 100 keys stored in one write: one lock acquisition, or one transaction.
    #[serde(rename = "write-100")]
    Write100,
    /// 100 keys read, lock-free (maph) or in one read transaction (peers).
    #[serde(rename = "read-100")]
    Read100,
    /// The coordinator's lock on one key's window taken and given back, with
    /// nothing written: the lock's own cost, comparable with limits.c's floor.
    #[serde(rename = "lock-unlock")]
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

    /// The column whose [`id`](Self::id) is `id`.
    pub fn from_id(id: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.id() == id)
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

/// The data every row is measured on: the same keys, value and order for all.
#[derive(Clone, Debug)]
pub struct Keyspace {
    keys: Vec<Vec<u8>>,
    value: Vec<u8>,
    order: Vec<u32>,
}

impl Keyspace {
    /// `count` keys like `user:00000042` (at least one batch), one value of
    /// `value_size` bytes, and a random order of the keys fixed by `seed`.
    pub fn new(count: usize, value_size: usize, seed: u64) -> Keyspace {
        let count = count.max(BATCH);
        let keys = (0..count).map(key_of).collect();
        let value = (0..value_size).map(|i| b'a' + (i % 26) as u8).collect();
        Keyspace { keys, value, order: permutation(count, seed) }
    }

    /// The keys, in key order.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The value every write stores.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The keys in the random order the timed loops walk them.
    pub fn walk(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.order.iter().map(|&i| self.keys[i as usize].as_slice())
    }

    /// The batches of [`BATCH`] keys the batch columns use: consecutive runs of
    /// the random order, so each is a random subset in random order.
    pub fn batches(&self) -> Vec<Vec<&[u8]>> {
        let walk: Vec<&[u8]> = self.walk().collect();
        walk.chunks_exact(BATCH).map(<[&[u8]]>::to_vec).collect()
    }

    /// Writes every key once, in key order, a batch at a time, so reads hit and
    /// writes overwrite (the steady state).
    pub fn populate(&self, subject: &mut dyn Subject) -> anyhow::Result<()> {
        for chunk in self.keys.chunks(BATCH) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            subject.set_batch(&refs, &self.value)?;
        }
        Ok(())
    }

    /// Runs `column` once, checking that it works (and that reads find their keys)
    /// before criterion times it.
    pub fn probe(&self, subject: &mut dyn Subject, column: Column) -> anyhow::Result<()> {
        let mut out = Vec::new();
        let key = self.walk().next().expect("at least one batch of keys");
        let batches = self.batches();
        let batch = &batches[0];
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

/// The key of index `i` in a keyspace: 13 bytes below 10^8 keys.
pub fn key_of(i: usize) -> Vec<u8> {
    format!("user:{i:08}").into_bytes()
}

/// Has criterion measure `column` of the row `row_id` on `subject`, walking the
/// keyspace in its random order so every iteration touches another key.
///
/// Failures during measurement panic with the row and column named (each column
/// was [`probe`](Keyspace::probe)d first, so they mean something broke mid-run).
pub fn bench_column(c: &mut Criterion, row_id: &str, subject: &mut dyn Subject, keyspace: &Keyspace, column: Column) {
    let walk: Vec<&[u8]> = keyspace.walk().collect();
    let batches = keyspace.batches();
    let value = keyspace.value();
    let mut next = 0usize;
    let mut out = Vec::with_capacity(value.len());
    let mut group = c.benchmark_group(row_id);
    group.throughput(Throughput::Elements(column.ops() as u64));
    group.bench_function(column.id(), |b| match column {
        Column::Write => b.iter(|| {
            next = (next + 1) % walk.len();
            check(subject.set(walk[next], value), row_id, column)
        }),
        Column::Read => b.iter(|| {
            next = (next + 1) % walk.len();
            black_box(check(subject.get(walk[next], &mut out), row_id, column))
        }),
        Column::LockedRead => b.iter(|| {
            next = (next + 1) % walk.len();
            black_box(check(subject.get_locked(walk[next], &mut out), row_id, column))
        }),
        Column::Write100 => b.iter(|| {
            next = (next + 1) % batches.len();
            check(subject.set_batch(&batches[next], value), row_id, column)
        }),
        Column::LockUnlock => b.iter(|| {
            next = (next + 1) % walk.len();
            check(subject.lock_unlock(walk[next]), row_id, column)
        }),
        Column::Read100 => b.iter(|| {
            next = (next + 1) % batches.len();
            black_box(check(subject.get_batch(&batches[next], &mut out), row_id, column))
        }),
    });
    group.finish();
}

/// The value of an operation criterion is timing; a failure means the run is broken.
fn check<T>(result: anyhow::Result<T>, row_id: &str, column: Column) -> T {
    result.unwrap_or_else(|e| panic!("{row_id} / {}: {e:#}", column.id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_visits_every_key_once_in_a_random_order() {
        let ks = Keyspace::new(1000, 16, 1);
        let walk: Vec<&[u8]> = ks.walk().collect();
        assert_eq!(walk.len(), 1000);
        let mut sorted = walk.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
        assert_ne!(walk[..10], ks.keys()[..10].iter().map(Vec::as_slice).collect::<Vec<_>>()[..]);
        assert_eq!(ks.batches().len(), 10);
        assert_eq!(ks.value().len(), 16);
        assert_eq!(key_of(42), b"user:00000042");
        for c in Column::ALL {
            assert_eq!(Column::from_id(c.id()), Some(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.id()));
        }
    }
}
