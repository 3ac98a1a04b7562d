//! The rows of the table: every strategy and peer the benchmark knows, and how
//! to build each one. **This is the one place a new coordinator plugs in**: add
//! a [`Row`] to [`all`] whose `open` builds a [`MaphSubject`] with the new
//! coordinator; every workload, the contention runs and the report pick it up.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use maph_core::{Config, Mode, SingleWriter, Store, Strategy, Uncoordinated};
use maph_lock_fcntl::FcntlCoordinator;
use maph_lock_flock::FlockCoordinator;
use maph_lock_futex::FutexCoordinator;

use crate::subject::Subject;
use crate::subjects::{LmdbSubject, MaphSubject, RedbSubject, ShardSubject, SHARDS};

/// Slots of every maph store the benchmark makes (32 MiB at 512-byte slots):
/// the keyspace fills about 15% of it, a typical healthy load.
pub const SLOTS: u64 = 1 << 16;

/// Where a row's files live and what outside services it may use.
#[derive(Clone, Debug)]
pub struct RowEnv {
    /// A directory private to this row and this run.
    pub dir: PathBuf,
    /// The Redis server for the Redis rows, if one is available.
    pub redis_url: Option<String>,
}

impl RowEnv {
    /// The maph store file of the row.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("bench.maph")
    }
}

/// Who opens a subject: the single process of the criterion runs, or worker
/// `index` of `procs` in a contention run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The only process (criterion measurements, and checking a contention run's result).
    Alone,
    /// One of several writer processes.
    Worker {
        /// This worker's number, from 0.
        index: usize,
        /// How many workers run at once.
        procs: usize,
    },
}

/// Whether several processes may write a row's store at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writers {
    /// Any number of writer processes.
    Many,
    /// One writer process only, for the reason given.
    One(&'static str),
}

/// Whether a row exists in this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Built and measured.
    Ready,
    /// Its crate has not landed in the workspace yet; the report says so.
    NotBuilt(&'static str),
}

/// One strategy or peer: a row of the table.
#[derive(Clone, Copy)]
pub struct Row {
    /// Short stable id: criterion group name and worker argument.
    pub id: &'static str,
    /// What the table calls it.
    pub label: &'static str,
    /// The crate that provides it.
    pub provider: &'static str,
    /// False only for the uncoordinated baseline: it loses updates.
    pub safe: bool,
    /// A peer database rather than a maph strategy.
    pub peer: bool,
    /// Whether several processes may write at once.
    pub writers: Writers,
    /// Needs a Redis server.
    pub needs_redis: bool,
    /// Whether it is part of this build.
    pub status: Status,
    /// Creates the row's empty store in `env.dir`.
    pub create: fn(&RowEnv) -> anyhow::Result<()>,
    /// Opens the created store as a subject for `role`.
    pub open: fn(&RowEnv, Role) -> anyhow::Result<Box<dyn Subject>>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("id", &self.id).field("status", &self.status).finish()
    }
}

impl Row {
    /// Why this row cannot run here, if it cannot.
    pub fn unavailable(&self, redis_url: Option<&str>, redis_problem: &str) -> Option<String> {
        match self.status {
            Status::NotBuilt(why) => Some(why.to_string()),
            Status::Ready if self.needs_redis && redis_url.is_none() => Some(redis_problem.to_string()),
            Status::Ready => None,
        }
    }
}

/// Stripes of the striped futex row: 4096 slots each.
pub const FUTEX_STRIPES: u32 = 16;

/// The uncoordinated baseline's id: every ratio is taken against it.
pub const BASELINE: &str = "uncoordinated";

/// Every row, in table order.
pub fn all() -> Vec<Row> {
    vec![
        Row {
            id: "single-writer",
            label: "single writer",
            provider: "maph-core",
            safe: true,
            peer: false,
            writers: Writers::One("one process holds the writer lease; others are refused (WriterBusy)"),
            needs_redis: false,
            status: Status::Ready,
            create: |env| create_maph(env, Strategy::SINGLE_WRITER),
            open: |env, _| {
                let store = Store::open(env.store_path(), Mode::ReadWrite)?;
                let writer = SingleWriter::new(&store)?;
                Ok(Box::new(MaphSubject::new(store, writer)))
            },
        },
        Row {
            id: BASELINE,
            label: "uncoordinated (UNSAFE)",
            provider: "maph-core",
            safe: false,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            status: Status::Ready,
            create: |env| create_maph(env, Strategy::UNCOORDINATED),
            open: |env, _| {
                let store = Store::open(env.store_path(), Mode::ReadWrite)?;
                Ok(Box::new(MaphSubject::new(store, Uncoordinated::new())))
            },
        },
        // ---- Rows of coordinator crates: each replaces its `pending` entry when it lands.
        Row {
            id: "flock",
            label: "flock",
            provider: "maph-lock-flock",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            status: Status::Ready,
            create: |env| create_maph(env, FlockCoordinator::STRATEGY),
            open: |env, _| {
                let store = Store::open(env.store_path(), Mode::ReadWrite)?;
                let lock = FlockCoordinator::new(&store)?;
                Ok(Box::new(MaphSubject::new(store, lock)))
            },
        },
        Row {
            id: "fcntl-whole",
            label: "fcntl whole-file",
            provider: "maph-lock-fcntl",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            status: Status::Ready,
            create: |env| create_maph(env, FcntlCoordinator::STRATEGY),
            open: |env, _| {
                let store = Store::open(env.store_path(), Mode::ReadWrite)?;
                let lock = FcntlCoordinator::new(&store)?;
                Ok(Box::new(MaphSubject::new(store, lock)))
            },
        },
        Row {
            id: "fcntl-range",
            label: "fcntl byte-range",
            provider: "maph-lock-fcntl",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            status: Status::Ready,
            create: |env| create_maph(env, FcntlCoordinator::STRATEGY),
            open: |env, _| {
                let store = Store::open(env.store_path(), Mode::ReadWrite)?;
                let lock = FcntlCoordinator::byte_range(&store)?;
                Ok(Box::new(MaphSubject::new(store, lock)))
            },
        },
        pending("redis-op", "Redis token per operation", "maph-coord-redis"),
        pending("redis-lease", "Redis token leased", "maph-coord-redis"),
        Row {
            id: "shard",
            label: "partitioning (8 shards)",
            provider: "maph-shard",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            status: Status::Ready,
            create: |env| ShardSubject::create(&env.dir.join("shards"), SLOTS / u64::from(SHARDS)),
            open: |env, role| {
                let (index, procs) = match role {
                    Role::Alone => (0, 1),
                    Role::Worker { index, procs } => (index, procs),
                };
                Ok(Box::new(ShardSubject::open(&env.dir.join("shards"), index, procs)?))
            },
        },
        Row {
            id: "futex",
            label: "in-file futex (global)",
            provider: "maph-lock-futex",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            status: Status::Ready,
            create: |env| create_maph(env, FutexCoordinator::STRATEGY),
            open: |env, _| {
                let store = Arc::new(Store::open(env.store_path(), Mode::ReadWrite)?);
                let lock = FutexCoordinator::global(store.clone())?;
                Ok(Box::new(MaphSubject::new(store, lock)))
            },
        },
        Row {
            id: "futex-striped",
            label: "in-file futex (16 stripes)",
            provider: "maph-lock-futex",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            status: Status::Ready,
            create: |env| create_maph(env, FutexCoordinator::STRATEGY),
            open: |env, _| {
                let store = Arc::new(Store::open(env.store_path(), Mode::ReadWrite)?);
                let lock = FutexCoordinator::striped(store.clone(), FUTEX_STRIPES)?;
                Ok(Box::new(MaphSubject::new(store, lock)))
            },
        },
        // ---- Peers.
        Row {
            id: "lmdb",
            label: "LMDB (heed, NO_SYNC)",
            provider: "heed",
            safe: true,
            peer: true,
            writers: Writers::Many,
            needs_redis: false,
            status: Status::Ready,
            create: |env| LmdbSubject::open(&env.dir.join("lmdb")).map(drop),
            open: |env, _| Ok(Box::new(LmdbSubject::open(&env.dir.join("lmdb"))?)),
        },
        Row {
            id: "redb",
            label: "redb (Durability::None)",
            provider: "redb",
            safe: true,
            peer: true,
            writers: Writers::One("a redb file can be open in one process only"),
            needs_redis: false,
            status: Status::Ready,
            create: |env| RedbSubject::open(&env.dir.join("bench.redb")).map(drop),
            open: |env, _| Ok(Box::new(RedbSubject::open(&env.dir.join("bench.redb"))?)),
        },
    ]
}

/// The row with id `id`.
pub fn find(id: &str) -> Option<Row> {
    all().into_iter().find(|r| r.id == id)
}

/// A row whose crate has not landed yet: listed, never measured.
fn pending(id: &'static str, label: &'static str, provider: &'static str) -> Row {
    Row {
        id,
        label,
        provider,
        safe: true,
        peer: false,
        writers: Writers::Many,
        needs_redis: false,
        status: Status::NotBuilt("its crate is not in the workspace yet"),
        create: |_| anyhow::bail!("this row is not built"),
        open: |_, _| anyhow::bail!("this row is not built"),
    }
}

/// Creates an empty maph store for `strategy` at the row's store path.
pub fn create_maph(env: &RowEnv, strategy: Strategy) -> anyhow::Result<()> {
    create_maph_at(&env.store_path(), strategy)
}

/// Creates an empty maph store for `strategy` at `path`, with the benchmark's geometry.
pub fn create_maph_at(path: &Path, strategy: Strategy) -> anyhow::Result<()> {
    Store::create(path, Config::new(SLOTS).strategy(strategy).hash_seed(0x6d61_7068))?;
    Ok(())
}
