//! LMDB through `heed`: the peer a user would most likely choose instead of maph.
//!
//! Configured the way a fair comparison needs: `NO_SYNC`, so a commit does not
//! wait for the disk (maph never fsyncs a write either; both leave durability
//! to the page cache). LMDB serialises writers itself, across processes, with a
//! mutex in its lock file: that is its write coordination, and its cost is in
//! every write figure.

use std::path::Path;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};

use crate::subject::{encode_counter, next_counter, timed, Increment, Subject};

/// Map size: room for the benchmark's keys many times over (LMDB reserves
/// address space, not disk).
const MAP_SIZE: usize = 1 << 30;

/// An LMDB environment with one unnamed database of byte keys and values.
pub struct LmdbSubject {
    env: Env,
    db: Database<Bytes, Bytes>,
}

impl LmdbSubject {
    /// Opens (creating if needed) the environment in the directory `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<LmdbSubject> {
        std::fs::create_dir_all(dir)?;
        let mut options = EnvOpenOptions::new();
        options.map_size(MAP_SIZE).max_readers(126);
        // SAFETY: NO_SYNC only gives up durability across a power loss, which
        // this benchmark does not need (maph does not fsync either); the
        // environment is opened once per process and the directory is private
        // to this run, so nothing else modifies the files under the mapping.
        let env = unsafe {
            options.flags(EnvFlags::NO_SYNC);
            options.open(dir)?
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

    fn set_batch(&mut self, keys: &[Vec<u8>], value: &[u8]) -> anyhow::Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for key in keys {
            self.db.put(&mut wtxn, key, value)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn get_batch(&mut self, keys: &[Vec<u8>], out: &mut Vec<u8>) -> anyhow::Result<usize> {
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

    fn increment(&mut self, key: &[u8]) -> anyhow::Result<Increment> {
        // Beginning a write transaction takes LMDB's writer mutex.
        let (wtxn, lock_wait) = timed(|| self.env.write_txn());
        let mut wtxn = wtxn?;
        let (next, damaged) = next_counter(self.db.get(&wtxn, key)?);
        self.db.put(&mut wtxn, key, &encode_counter(next))?;
        wtxn.commit()?;
        Ok(Increment { lock_wait, damaged })
    }
}
