//! A write of several keys of one shard, applied together.

use maph_core::WriteTxn;

use crate::{Error, Result, Router};

/// The operations of one [`ShardedStore::write`](crate::ShardedStore::write):
/// keys of one shard, committed together when the closure returns `Ok`.
///
/// A key that routes to another shard is refused with [`Error::WrongShard`] and
/// the whole write is abandoned: atomicity across shards is impossible, because
/// each shard has its own writer and no lock spans two of them.
#[derive(Debug)]
pub struct ShardTxn<'t, 's> {
    pub(crate) tx: &'t mut WriteTxn<'s>,
    pub(crate) shard: u32,
    pub(crate) router: Router,
}

impl ShardTxn<'_, '_> {
    /// The shard this write holds.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Stores `value` under `key` (a key of this shard).
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check(key)?;
        Ok(self.tx.set(key, value)?)
    }

    /// Removes `key` (a key of this shard; a no-op if absent).
    pub fn remove(&mut self, key: &[u8]) -> Result<()> {
        self.check(key)?;
        Ok(self.tx.remove(key)?)
    }

    /// The value of `key` as this write will leave it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check(key)?;
        Ok(self.tx.get(key)?)
    }

    fn check(&self, key: &[u8]) -> Result<()> {
        let key_shard = self.router.route(key);
        if key_shard != self.shard {
            return Err(Error::WrongShard { key_shard, write_shard: self.shard });
        }
        Ok(())
    }
}
