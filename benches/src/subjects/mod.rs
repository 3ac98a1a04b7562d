//! The implementations of [`Subject`](crate::Subject): maph (any coordinator) and the peers.

mod lmdb;
mod maph;
mod redb;
mod shard;

pub use self::lmdb::{LmdbSubject, LmdbWrites};
pub use self::maph::{MaphReader, MaphSubject};
pub use self::redb::RedbSubject;
pub use self::shard::{ShardSubject, SHARDS};
