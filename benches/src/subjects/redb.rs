//! redb: the pure-Rust embedded database, as a single-process peer.
//!
//! Commits use `Durability::None` (no fsync), matching maph and the LMDB row.
//! A redb file can be open in one process only, so redb has no multi-process
//! contention row: the report says so instead of inventing one.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::subject::{encode_counter, next_counter, timed_if, Increment, Subject};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

/// A redb database with one table of byte keys and values.
pub struct RedbSubject {
    db: Database,
}

impl RedbSubject {
    /// Creates the database file at `path`.
    pub fn create(path: &Path) -> anyhow::Result<()> {
        RedbSubject::open(path).map(drop)
    }

    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> anyhow::Result<RedbSubject> {
        let db = Database::create(path)?;
        let mut wtxn = db.begin_write()?;
        wtxn.set_durability(Durability::None)?;
        wtxn.open_table(TABLE)?;
        wtxn.commit()?;
        Ok(RedbSubject { db })
    }

    fn write_txn(&self) -> anyhow::Result<redb::WriteTransaction> {
        let mut wtxn = self.db.begin_write()?;
        wtxn.set_durability(Durability::None)?;
        Ok(wtxn)
    }
}

impl Subject for RedbSubject {
    fn set(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let wtxn = self.write_txn()?;
        wtxn.open_table(TABLE)?.insert(key, value)?;
        wtxn.commit()?;
        Ok(())
    }

    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        let rtxn = self.db.begin_read()?;
        let table = rtxn.open_table(TABLE)?;
        out.clear();
        Ok(table.get(key)?.map(|v| out.extend_from_slice(v.value())).is_some())
    }

    fn set_batch(&mut self, keys: &[&[u8]], value: &[u8]) -> anyhow::Result<()> {
        let wtxn = self.write_txn()?;
        {
            let mut table = wtxn.open_table(TABLE)?;
            for key in keys {
                table.insert(*key, value)?;
            }
        }
        wtxn.commit()?;
        Ok(())
    }

    fn get_batch(&mut self, keys: &[&[u8]], out: &mut Vec<u8>) -> anyhow::Result<usize> {
        let rtxn = self.db.begin_read()?;
        let table = rtxn.open_table(TABLE)?;
        let mut found = 0;
        for key in keys {
            if let Some(v) = table.get(*key)? {
                out.clear();
                out.extend_from_slice(v.value());
                found += 1;
            }
        }
        Ok(found)
    }

    fn lock_unlock(&mut self, _key: &[u8]) -> anyhow::Result<()> {
        self.write_txn()?.abort()?;
        Ok(())
    }

    fn increment(&mut self, key: &[u8], time_lock: bool) -> anyhow::Result<Increment> {
        let (wtxn, lock_wait_ns) = timed_if(time_lock, || self.write_txn());
        let wtxn = wtxn?;
        let damaged;
        {
            let mut table = wtxn.open_table(TABLE)?;
            let (next, was_damaged) = {
                let old = table.get(key)?;
                next_counter(old.as_ref().map(|v| v.value()))
            };
            damaged = was_damaged;
            table.insert(key, encode_counter(next).as_slice())?;
        }
        wtxn.commit()?;
        Ok(Increment { lock_wait_ns, damaged })
    }
}
