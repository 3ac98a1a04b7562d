//! The rows of the table: every strategy and peer the benchmark knows, and how
//! to build each one. **This is the one place a new coordinator plugs in**: add
//! a [`Row`] to [`all`] whose `open` builds a [`MaphSubject`] with the new
//! coordinator; every workload, the contention runs and the report pick it up.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{Config, Mode, SingleWriter, Store, Strategy, Uncoordinated};
use maph_lock_fcntl::FcntlCoordinator;
use maph_lock_flock::FlockCoordinator;
use maph_lock_futex::FutexCoordinator;

use crate::leased::Leased;
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
    /// Creates the row's empty store in `env.dir`.
    pub create: fn(&RowEnv) -> anyhow::Result<()>,
    /// Opens the created store as a subject for `role`.
    pub open: fn(&RowEnv, Role) -> anyhow::Result<Box<dyn Subject>>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("id", &self.id).finish()
    }
}

impl Row {
    /// Why this row cannot run here, if it cannot (it needs Redis and there is none).
    pub fn unavailable(&self, redis_url: Option<&str>, redis_problem: &str) -> Option<String> {
        (self.needs_redis && redis_url.is_none()).then(|| redis_problem.to_string())
    }
}

/// Stripes of the striped futex row: 4096 slots each.
pub const FUTEX_STRIPES: u32 = 16;

/// Writes per lease of the leased Redis row: the token is taken once per 100
/// writes (in contention runs, given back after them so others get a turn).
pub const WRITES_PER_LEASE: u64 = 100;

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
            create: |env| create_maph(env, Strategy::SINGLE_WRITER),
            open: |env, _| open_maph(env, |store| Ok(SingleWriter::new(store)?)),
        },
        Row {
            id: BASELINE,
            label: "uncoordinated (UNSAFE)",
            provider: "maph-core",
            safe: false,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            create: |env| create_maph(env, Strategy::UNCOORDINATED),
            open: |env, _| open_maph(env, |_| Ok(Uncoordinated::new())),
        },
        // ---- Coordinator crates. A new one plugs in here: a Row whose `open`
        // wraps its coordinator in a MaphSubject (and a Cargo.toml dependency).
        Row {
            id: "flock",
            label: "flock",
            provider: "maph-lock-flock",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            create: |env| create_maph(env, FlockCoordinator::STRATEGY),
            open: |env, _| open_maph(env, |store| Ok(FlockCoordinator::new(store)?)),
        },
        Row {
            id: "fcntl-whole",
            label: "fcntl whole-file",
            provider: "maph-lock-fcntl",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            create: |env| create_maph(env, FcntlCoordinator::STRATEGY),
            open: |env, _| open_maph(env, |store| Ok(FcntlCoordinator::new(store)?)),
        },
        Row {
            id: "fcntl-range",
            label: "fcntl byte-range",
            provider: "maph-lock-fcntl",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            create: |env| create_maph(env, FcntlCoordinator::STRATEGY),
            open: |env, _| open_maph(env, |store| Ok(FcntlCoordinator::byte_range(store)?)),
        },
        Row {
            id: "redis-op",
            label: "Redis token per operation",
            provider: "maph-coord-redis",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: true,
            create: |env| create_maph(env, RedisCoordinator::STRATEGY),
            open: |env, _| open_maph(env, |store| Ok(RedisCoordinator::new(store, redis_config(env)?)?)),
        },
        Row {
            id: "redis-lease",
            label: "Redis token leased (100 writes)",
            provider: "maph-coord-redis",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: true,
            create: |env| create_maph(env, RedisCoordinator::STRATEGY),
            open: |env, _| {
                let store = Store::open(env.store_path(), Mode::ReadWrite)?;
                let token = RedisCoordinator::new(&store, redis_config(env)?)?;
                let lease = Leased::new(token, WRITES_PER_LEASE);
                Ok(Box::new(MaphSubject::new(store, lease).on_idle(Leased::give_back)))
            },
        },
        Row {
            id: "shard",
            label: "partitioning (8 shards)",
            provider: "maph-shard",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
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
            create: |env| create_maph(env, FutexCoordinator::STRATEGY),
            open: |env, _| open_maph(env, |store| Ok(FutexCoordinator::global(store.clone())?)),
        },
        Row {
            id: "futex-striped",
            label: "in-file futex (16 stripes)",
            provider: "maph-lock-futex",
            safe: true,
            peer: false,
            writers: Writers::Many,
            needs_redis: false,
            create: |env| create_maph(env, FutexCoordinator::STRATEGY),
            open: |env, _| open_maph(env, |store| Ok(FutexCoordinator::striped(store.clone(), FUTEX_STRIPES)?)),
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
            create: |env| RedbSubject::open(&env.dir.join("bench.redb")).map(drop),
            open: |env, _| Ok(Box::new(RedbSubject::open(&env.dir.join("bench.redb"))?)),
        },
    ]
}

/// The row with id `id`.
pub fn find(id: &str) -> Option<Row> {
    all().into_iter().find(|r| r.id == id)
}

/// Creates an empty maph store for `strategy` at the row's store path.
pub fn create_maph(env: &RowEnv, strategy: Strategy) -> anyhow::Result<()> {
    create_maph_at(&env.store_path(), strategy)
}

/// Opens the row's store read-write and measures it through the coordinator
/// `make` builds for it: every maph row opens the same way.
fn open_maph<C: maph_core::WriteCoordinator + 'static>(
    env: &RowEnv,
    make: impl FnOnce(&Arc<Store>) -> anyhow::Result<C>,
) -> anyhow::Result<Box<dyn Subject>> {
    let store = Arc::new(Store::open(env.store_path(), Mode::ReadWrite)?);
    let coordinator = make(&store)?;
    Ok(Box::new(MaphSubject::new(store, coordinator)))
}

/// Creates an empty maph store for `strategy` at `path`, with the benchmark's geometry.
pub fn create_maph_at(path: &Path, strategy: Strategy) -> anyhow::Result<()> {
    Store::create(path, Config::new(SLOTS).strategy(strategy).hash_seed(0x6d61_7068))?;
    Ok(())
}

/// The Redis configuration of a row: the run's server, and a token named after
/// the row's directory, so rows and runs never share a token.
fn redis_config(env: &RowEnv) -> anyhow::Result<RedisConfig> {
    let url = env.redis_url.clone().ok_or_else(|| anyhow::anyhow!("this row needs a Redis server"))?;
    let name =
        env.dir.file_name().map_or_else(|| "maph-bench".into(), |n| format!("maph-bench-{}", n.to_string_lossy()));
    Ok(RedisConfig::new(url).name(name))
}
