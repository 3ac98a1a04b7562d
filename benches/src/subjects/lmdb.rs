//! LMDB through `heed`: the peer a user would most likely choose instead of maph.
//!
//! Configured the way a fair comparison needs: `NO_SYNC`, so a commit does not
//! wait for the disk (maph never fsyncs a write either; both leave durability
//! to the page cache), and `WRITE_MAP`, so a commit stores into the mapping as
//! maph does instead of writing its pages with system calls. The row without
//! `WRITE_MAP` is kept, labelled, to show what it costs. LMDB serialises
//! writers itself, across processes, with a mutex in its lock file: that is its
//! write coordination, and its cost is in every write figure.

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};

use crate::rows::RowEnv;
use crate::subject::{encode_counter, next_counter, timed_if, Increment, Subject};

/// How LMDB commits write their pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LmdbWrites {
    /// `WRITE_MAP`: into the shared mapping, like maph.
    Mapped,
    /// Without `WRITE_MAP`: with `pwrite(2)` at each commit (LMDB's default).
    Syscalls,
}

/// An LMDB environment with one unnamed database of byte keys and values.
pub struct LmdbSubject {
    env: Env,
    db: Database<Bytes, Bytes>,
}

impl LmdbSubject {
    /// Creates the environment of `env`'s row.
    pub fn create(env: &RowEnv, writes: LmdbWrites) -> anyhow::Result<()> {
        LmdbSubject::open(env, writes).map(drop)
    }

    /// Opens (creating if needed) the environment in the row's `lmdb` directory.
    pub fn open(env: &RowEnv, writes: LmdbWrites) -> anyhow::Result<LmdbSubject> {
        let dir = env.dir.join("lmdb");
        std::fs::create_dir_all(&dir)?;
        // Address space for the data many times over (LMDB reserves it; with
        // WRITE_MAP the file is extended to it sparsely, not written).
        let per_key = 64 + 16 + env.dataset.value_size;
        let map_size = (env.dataset.keys.max(100_000) * per_key * 4).next_power_of_two().max(1 << 30);
        let mut options = EnvOpenOptions::new();
        options.map_size(map_size).max_readers(126);
        let flags = match writes {
            LmdbWrites::Mapped => EnvFlags::NO_SYNC | EnvFlags::WRITE_MAP,
            LmdbWrites::Syscalls => EnvFlags::NO_SYNC,
        };
        // SAFETY: NO_SYNC only gives up durability across a power loss, which
        // this benchmark does not need (maph does not fsync either). WRITE_MAP
        // lets a stray write through the mapping corrupt the database; nothing
        // but heed writes to it, and the directory is private to this run.
        let env = unsafe {
            options.flags(flags);
            options.open(&dir)?
        };
        let mut wtxn = env.write_txn()?;
        let db = env.create_database::<Bytes, Bytes>(&mut wtxn, None)?;
        wtxn.commit()?;
        Ok(LmdbSubject { env, db })
    }
}

impl Subject for LmdbSubject {
    fn set(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.db.put(&mut wtxn, key, value)?;
        wtxn.commit()?;
        Ok(())
    }

    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        let rtxn = self.env.read_txn()?;
        out.clear();
        // Copy the value out, as maph's `get_into` does, so both pay for it.
        Ok(self.db.get(&rtxn, key)?.map(|v| out.extend_from_slice(v)).is_some())
    }

    fn set_batch(&mut self, keys: &[&[u8]], value: &[u8]) -> anyhow::Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for key in keys {
            self.db.put(&mut wtxn, key, value)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn get_batch(&mut self, keys: &[&[u8]], out: &mut Vec<u8>) -> anyhow::Result<usize> {
        let rtxn = self.env.read_txn()?;
        let mut found = 0;
        for key in keys {
            if let Some(v) = self.db.get(&rtxn, key)? {
                out.clear();
                out.extend_from_slice(v);
                found += 1;
            }
        }
        Ok(found)
    }

    fn lock_unlock(&mut self, _key: &[u8]) -> anyhow::Result<()> {
        self.env.write_txn()?.abort();
        Ok(())
    }

    fn increment(&mut self, key: &[u8], time_lock: bool) -> anyhow::Result<Increment> {
        // Beginning a write transaction takes LMDB's writer mutex.
        let (wtxn, lock_wait_ns) = timed_if(time_lock, || self.env.write_txn());
        let mut wtxn = wtxn?;
        let (next, damaged) = next_counter(self.db.get(&wtxn, key)?);
        self.db.put(&mut wtxn, key, &encode_counter(next))?;
        wtxn.commit()?;
        Ok(Increment { lock_wait_ns, damaged })
    }
}
