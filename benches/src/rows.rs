//! The rows: every strategy and peer the benchmark knows, in **one table**
//! ([`all`]). A new coordinator joins with one line there (a [`Row::maph`]
//! naming its strategy and how to build it from a store) and a Cargo.toml
//! dependency; every workload, the multi-process runs and the report pick it up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{Config, Mode, SingleWriter, Store, Strategy, Uncoordinated, WriteCoordinator};
use maph_lock_fcntl::FcntlCoordinator;
use maph_lock_flock::FlockCoordinator;
use maph_lock_futex::FutexCoordinator;

use crate::leased::Leased;
use crate::plan::Dataset;
use crate::subject::Subject;
use crate::subjects::{LmdbSubject, LmdbWrites, MaphReader, MaphSubject, RedbSubject, ShardSubject, SHARDS};

/// Every row, in table order. **The one place a strategy is added**: one line
/// each (kept on one line each, a table, hence no rustfmt).
#[rustfmt::skip]
pub fn all() -> Vec<Row> {
    use SharedLock::{Exclusive, Free, Shared};
    vec![
        Row::maph("single-writer", "single writer", "maph-core", Strategy::SINGLE_WRITER, |e, r| open_maph(e, r, |s| Ok(SingleWriter::new(s)?))).one_writer(LEASE_HELD).shared_lock(Free(NO_LOCK_FOR_READERS)),
        Row::maph(BASELINE, "uncoordinated (UNSAFE)", "maph-core", Strategy::UNCOORDINATED, |e, r| open_maph(e, r, |_| Ok(Uncoordinated::new()))).unsafe_baseline().shared_lock(Free(NO_LOCK_AT_ALL)),
        Row::maph("flock", "flock", "maph-lock-flock", FlockCoordinator::STRATEGY, |e, r| open_maph(e, r, |s| Ok(FlockCoordinator::new(s)?))).shared_lock(Shared),
        Row::maph("fcntl-whole", "fcntl whole-file", "maph-lock-fcntl", FcntlCoordinator::STRATEGY, |e, r| open_maph(e, r, |s| Ok(FcntlCoordinator::new(s)?))).shared_lock(Shared),
        Row::maph("fcntl-range", "fcntl byte-range", "maph-lock-fcntl", FcntlCoordinator::STRATEGY, |e, r| open_maph(e, r, |s| Ok(FcntlCoordinator::byte_range(s)?))).shared_lock(Shared),
        Row::maph("redis-op", "Redis token per operation", "maph-coord-redis", RedisCoordinator::STRATEGY, |e, r| open_maph(e, r, |s| Ok(RedisCoordinator::new(s, redis_config(e)?)?))).redis().shared_lock(Exclusive(REDIS_EXCLUSIVE)),
        Row::maph("redis-lease", "Redis token held for 100 acquisitions", "maph-coord-redis", RedisCoordinator::STRATEGY, open_redis_lease).redis().shared_lock(Exclusive(REDIS_EXCLUSIVE)).note(LEASE_NOTE),
        Row::custom("shard", "partitioning (8 shards)", "maph-shard", create_shard, open_shard).shared_lock(Free(NO_LOCK_FOR_READERS)).note(SHARD_NOTE),
        Row::maph("futex", "in-file futex (global)", "maph-lock-futex", FutexCoordinator::STRATEGY, |e, r| open_maph(e, r, |s| Ok(FutexCoordinator::global(s.clone())?))).shared_lock(Exclusive(FUTEX_EXCLUSIVE)),
        Row::maph("futex-striped", "in-file futex (16 stripes)", "maph-lock-futex", FutexCoordinator::STRATEGY, |e, r| open_maph(e, r, |s| Ok(FutexCoordinator::striped(s.clone(), FUTEX_STRIPES)?))).shared_lock(Exclusive(FUTEX_EXCLUSIVE)),
        // ---- Peers.
        Row::custom("lmdb", "LMDB (NO_SYNC + WRITE_MAP)", "heed", |e| LmdbSubject::create(e, LmdbWrites::Mapped), |e, _| Ok(Box::new(LmdbSubject::open(e, LmdbWrites::Mapped)?))).peer().shared_lock(Free(SNAPSHOT_READS)).note(LMDB_NOTE),
        Row::custom("lmdb-syscall", "LMDB (NO_SYNC, written by syscall)", "heed", |e| LmdbSubject::create(e, LmdbWrites::Syscalls), |e, _| Ok(Box::new(LmdbSubject::open(e, LmdbWrites::Syscalls)?))).peer().shared_lock(Free(SNAPSHOT_READS)).note(LMDB_SYSCALL_NOTE),
        Row::custom("redb", "redb (Durability::None)", "redb", |e| RedbSubject::create(&e.dir.join("bench.redb")), |e, _| Ok(Box::new(RedbSubject::open(&e.dir.join("bench.redb"))?))).peer().one_process(REDB_ONE_PROCESS).shared_lock(Free(SNAPSHOT_READS)),
    ]
}

/// The uncoordinated baseline's id: the store's own cost, the denominator of every overhead ratio.
pub const BASELINE: &str = "uncoordinated";

/// Stripes of the striped futex row: 4096 slots each at the default store size.
pub const FUTEX_STRIPES: u32 = 16;

/// Acquisitions per lease of the leased Redis row (each `set`, and each
/// commit of a batch, is one acquisition).
pub const ACQUISITIONS_PER_LEASE: u64 = 100;

const LEASE_HELD: &str = "one process holds the writer lease; others are refused (WriterBusy)";
const REDB_ONE_PROCESS: &str = "a redb file can be open in one process only";
const NO_LOCK_FOR_READERS: &str =
    "readers need no lock: shared access is granted at once, so the cell would time a no-op";
const NO_LOCK_AT_ALL: &str = "no lock at all";
const SNAPSHOT_READS: &str = "reads are snapshot transactions; there is no separate lock";
const REDIS_EXCLUSIVE: &str = "the Redis token has no shared mode: a \"shared\" read takes it exclusively";
const FUTEX_EXCLUSIVE: &str = "the futex lock has no shared mode: a \"shared\" read takes the key's stripe exclusively";
const LEASE_NOTE: &str = "the token is taken once per 100 lock acquisitions: a `set` is one acquisition, and so is a commit of 100 writes, so the \"100 writes, one commit\" cell holds one token across 100 commits (10,000 sets)";
const SHARD_NOTE: &str = "8 shard files, each under its own single-writer lease; a batch of 100 writes commits once per shard it touches (no commit spans shards)";
const LMDB_NOTE: &str =
    "NO_SYNC | WRITE_MAP: a commit stores into the mapping, as maph does, and nothing waits for the disk";
const LMDB_SYSCALL_NOTE: &str =
    "NO_SYNC without WRITE_MAP: each commit writes its pages with pwrite(2); kept to show what WRITE_MAP saves";

/// Where a row's files live and what it may use.
#[derive(Clone, Debug)]
pub struct RowEnv {
    /// A directory private to this row and this run.
    pub dir: PathBuf,
    /// The Redis server for the Redis rows, if one is available.
    pub redis_url: Option<String>,
    /// The keys, store size and value size.
    pub dataset: Dataset,
}

impl RowEnv {
    /// The maph store file of the row.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("bench.maph")
    }
}

/// Who opens a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The only process: the single-process table, and setting up or checking a multi-process run.
    Alone,
    /// Writer `index` of `writers` writer processes.
    Writer {
        /// This writer's number, from 0.
        index: usize,
        /// How many writers run at once.
        writers: usize,
    },
    /// A reader process: it never writes.
    Reader {
        /// Takes the strategy's shared lock around every read (the reference's
        /// `flock(LOCK_SH)` reader); otherwise reads lock-free.
        locked: bool,
    },
}

/// Which processes may open a row's store at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Any number of writer and reader processes.
    Many,
    /// One writer process (any number of readers), for the reason given.
    OneWriter(&'static str),
    /// One process at all, for the reason given.
    OneProcess(&'static str),
}

/// What the "read, shared lock" column means for a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedLock {
    /// The coordinator has a shared mode, taken around the read.
    Shared,
    /// The coordinator has no shared mode and takes its lock exclusively (why).
    Exclusive(&'static str),
    /// Readers take no lock, so the column is not measured (why).
    Free(&'static str),
}

/// How a row's empty store is made.
#[derive(Clone, Copy)]
pub enum Create {
    /// A maph store for this strategy, of the dataset's size.
    Maph(Strategy),
    /// The row's own function.
    Custom(fn(&RowEnv) -> anyhow::Result<()>),
}

/// How a row's subject is opened for a role.
pub type Open = fn(&RowEnv, Role) -> anyhow::Result<Box<dyn Subject>>;

/// One strategy or peer: a row of the tables.
#[derive(Clone, Copy)]
pub struct Row {
    /// Short stable id: on the command line (`--only`), in file names and results.
    pub id: &'static str,
    /// What the tables call it.
    pub label: &'static str,
    /// The crate that provides it.
    pub provider: &'static str,
    /// False only for the uncoordinated baseline: it loses updates.
    pub safe: bool,
    /// A peer database rather than a maph strategy.
    pub peer: bool,
    /// Which processes may open it at once.
    pub sharing: Sharing,
    /// What its "read, shared lock" column means.
    pub shared_lock: SharedLock,
    /// Needs a Redis server.
    pub needs_redis: bool,
    /// Said under the tables, when the row needs explaining.
    pub note: Option<&'static str>,
    /// Makes the row's empty store.
    pub create: Create,
    /// Opens the made store.
    pub open: Open,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("id", &self.id).finish()
    }
}

impl Row {
    /// A maph strategy: a store created for `strategy`, opened by `open`.
    pub const fn maph(
        id: &'static str,
        label: &'static str,
        provider: &'static str,
        strategy: Strategy,
        open: Open,
    ) -> Row {
        Row {
            id,
            label,
            provider,
            safe: true,
            peer: false,
            sharing: Sharing::Many,
            shared_lock: SharedLock::Shared,
            needs_redis: false,
            note: None,
            create: Create::Maph(strategy),
            open,
        }
    }

    /// A row with its own store format.
    pub const fn custom(
        id: &'static str,
        label: &'static str,
        provider: &'static str,
        create: fn(&RowEnv) -> anyhow::Result<()>,
        open: Open,
    ) -> Row {
        Row { create: Create::Custom(create), ..Row::maph(id, label, provider, Strategy::UNCOORDINATED, open) }
    }

    /// One writer process at a time.
    pub const fn one_writer(self, why: &'static str) -> Row {
        Row { sharing: Sharing::OneWriter(why), ..self }
    }

    /// One process at a time.
    pub const fn one_process(self, why: &'static str) -> Row {
        Row { sharing: Sharing::OneProcess(why), ..self }
    }

    /// Sets what the shared-lock column means.
    pub const fn shared_lock(self, shared_lock: SharedLock) -> Row {
        Row { shared_lock, ..self }
    }

    /// Loses updates with several writers.
    pub const fn unsafe_baseline(self) -> Row {
        Row { safe: false, ..self }
    }

    /// A peer database.
    pub const fn peer(self) -> Row {
        Row { peer: true, ..self }
    }

    /// Needs a Redis server.
    pub const fn redis(self) -> Row {
        Row { needs_redis: true, ..self }
    }

    /// A note under the tables.
    pub const fn note(self, note: &'static str) -> Row {
        Row { note: Some(note), ..self }
    }

    /// Makes the row's empty store in `env.dir`. With `settle_pages`, then
    /// reads every maph store file under it once, in order (see [`settle_pages`]).
    pub fn create_in(&self, env: &RowEnv, settle: bool) -> anyhow::Result<()> {
        std::fs::create_dir_all(&env.dir)?;
        match self.create {
            Create::Maph(strategy) => create_maph_at(&env.store_path(), strategy, env.dataset.slots)?,
            Create::Custom(create) => create(env)?,
        }
        if settle {
            settle_pages(&env.dir)?;
        }
        Ok(())
    }

    /// Why this row cannot run here, if it cannot (it needs Redis and there is none).
    pub fn unavailable(&self, redis_url: Option<&str>, redis_problem: &str) -> Option<String> {
        (self.needs_redis && redis_url.is_none()).then(|| redis_problem.to_string())
    }

    /// Why `writers` writer processes (plus `readers` reader processes) cannot
    /// run this row, if they cannot.
    pub fn refuses(&self, writers: usize, readers: usize) -> Option<&'static str> {
        match self.sharing {
            Sharing::Many => None,
            Sharing::OneWriter(why) => (writers > 1).then_some(why),
            Sharing::OneProcess(why) => (writers + readers > 1).then_some(why),
        }
    }
}

/// The row with id `id`.
pub fn find(id: &str) -> Option<Row> {
    all().into_iter().find(|r| r.id == id)
}

/// The rows named in `only` (all when empty), in table order; an unknown name is an error.
pub fn select(only: &[String]) -> anyhow::Result<Vec<Row>> {
    let rows = all();
    for id in only {
        anyhow::ensure!(
            rows.iter().any(|r| r.id == id.as_str()),
            "no strategy named {id:?}; `maph-bench list` shows them: {}",
            rows.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(rows.into_iter().filter(|r| only.is_empty() || only.iter().any(|o| o == r.id)).collect())
}

/// Reads every maph store file (`*.maph`) under `dir` once, front to back, so
/// its pages enter the page cache in order, as large folios, for every row
/// alike.
///
/// Where a store's pages land decides what a read costs once reads outrun the
/// TLB: a store whose pages were first touched in random order (by random
/// writes) sits in scattered 4 KiB folios, and identical reads of it measured
/// about 10 % slower on the development VM than of the same store touched in
/// order (docs/BENCHMARKS.md, "Identical code, different processes";
/// `maph-bench placement`). A store's history decides it (a scan of the whole
/// store, such as a start-up repair, touches its pages in order; random writes
/// do not), so without this step differences of history, not of strategy,
/// would separate the rows. Peers' files are left as their engines write them.
pub fn settle_pages(dir: &Path) -> std::io::Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            settle_pages(&path)?;
        } else if path.extension().is_some_and(|e| e == "maph") {
            let mut file = std::fs::File::open(&path)?;
            while file.read(&mut buf)? > 0 {}
        }
    }
    Ok(())
}

/// Creates an empty maph store for `strategy` with `slots` slots at `path`.
pub fn create_maph_at(path: &Path, strategy: Strategy, slots: u64) -> anyhow::Result<()> {
    Store::create(path, Config::new(slots).strategy(strategy).hash_seed(0x6d61_7068))?;
    Ok(())
}

/// Opens the row's store for `role`, every maph row the same way: a reader
/// maps it read-only and reads lock-free (a locked reader also builds the
/// coordinator, for its shared lock); everyone else writes through the
/// coordinator `make` builds.
fn open_maph<C: WriteCoordinator + 'static>(
    env: &RowEnv,
    role: Role,
    make: impl FnOnce(&Arc<Store>) -> anyhow::Result<C>,
) -> anyhow::Result<Box<dyn Subject>> {
    if role == (Role::Reader { locked: false }) {
        return Ok(Box::new(MaphReader::new(Store::open(env.store_path(), Mode::ReadOnly)?)));
    }
    let store = Arc::new(Store::open(env.store_path(), Mode::ReadWrite)?);
    let coordinator = make(&store)?;
    Ok(Box::new(MaphSubject::new(store, coordinator)))
}

fn open_redis_lease(env: &RowEnv, role: Role) -> anyhow::Result<Box<dyn Subject>> {
    if let Role::Reader { locked: false } = role {
        return open_maph(env, role, |_| Ok(Uncoordinated::new()));
    }
    let store = Store::open(env.store_path(), Mode::ReadWrite)?;
    let token = RedisCoordinator::new(&store, redis_config(env)?)?;
    let lease = Leased::new(token, ACQUISITIONS_PER_LEASE);
    Ok(Box::new(MaphSubject::new(store, lease).on_idle(Leased::give_back)))
}

fn create_shard(env: &RowEnv) -> anyhow::Result<()> {
    ShardSubject::create(&env.dir.join("shards"), (env.dataset.slots / u64::from(SHARDS)).max(64))
}

fn open_shard(env: &RowEnv, role: Role) -> anyhow::Result<Box<dyn Subject>> {
    Ok(Box::new(ShardSubject::open(&env.dir.join("shards"), role)?))
}

/// The Redis configuration of a row: the run's server, and a token named after
/// the row's directory, so rows and runs never share a token.
fn redis_config(env: &RowEnv) -> anyhow::Result<RedisConfig> {
    let url = env.redis_url.clone().ok_or_else(|| anyhow::anyhow!("this row needs a Redis server"))?;
    let name =
        env.dir.file_name().map_or_else(|| "maph-bench".into(), |n| format!("maph-bench-{}", n.to_string_lossy()));
    Ok(RedisConfig::new(url).name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_the_baseline_is_there() {
        let rows = all();
        let mut ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), rows.len());
        assert!(find(BASELINE).is_some_and(|r| !r.safe));
    }

    #[test]
    fn selection_keeps_table_order_and_names_unknown_rows() {
        let picked = select(&["flock".into(), "single-writer".into()]).unwrap();
        assert_eq!(picked.iter().map(|r| r.id).collect::<Vec<_>>(), ["single-writer", "flock"]);
        let err = select(&["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("flock"), "{err}");
        assert_eq!(select(&[]).unwrap().len(), all().len());
    }

    #[test]
    fn sharing_rules() {
        let sw = find("single-writer").unwrap();
        assert_eq!(sw.refuses(1, 3), None);
        assert!(sw.refuses(2, 0).is_some());
        let redb = find("redb").unwrap();
        assert!(redb.refuses(1, 1).is_some());
        assert_eq!(redb.refuses(1, 0), None);
    }
}
