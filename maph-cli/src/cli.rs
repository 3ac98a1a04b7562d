//! The command line: every subcommand and flag.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use maph_server::ServeArgs;

use crate::strategy::{StrategyName, DEFAULT_REDIS_URL};

/// maph: a key-value store in one memory-mapped file, shared by many processes.
///
/// Exit codes: 0 success, 1 not found (a key, or problems found by verify), 2 error.
#[derive(Parser, Debug)]
#[command(name = "maph", version, propagate_version = true)]
pub struct Cli {
    /// Print JSON for scripts instead of text for people (scan: one JSON object per line).
    #[arg(long, global = true)]
    pub json: bool,
    /// Redis server for stores created with `--strategy redis`.
    #[arg(long, global = true, env = "MAPH_REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
    /// Open stores for writing even on a network or FUSE filesystem (NFS, SMB,
    /// 9p, Ceph, FUSE). Only when every process that uses the store runs on
    /// this one host: maph does not coordinate writers on several machines.
    #[arg(long, global = true)]
    pub single_host_network_fs: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty store.
    Create {
        /// The store file to create (it must not exist).
        path: PathBuf,
        /// Number of slots: the most keys the store can hold.
        #[arg(long)]
        slots: u64,
        /// Bytes per slot, a multiple of 64 (32 of them bookkeeping, the rest key + value).
        #[arg(long, default_value_t = maph_core::format::DEFAULT_SLOT_SIZE)]
        slot_size: u32,
        /// Slots a key may probe (default 64, or the slot count if smaller).
        #[arg(long)]
        max_probes: Option<u32>,
        /// How writers of this store take turns; recorded in the file.
        #[arg(long, value_enum, default_value_t = StrategyName::Single)]
        strategy: StrategyName,
        /// Do not reserve the file's blocks: instant, but a write that finds
        /// the filesystem full then kills the writer (SIGBUS).
        #[arg(long)]
        sparse: bool,
    },
    /// Print the value of a key.
    Get {
        /// The store file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// Store a value (read from standard input when VALUE is left out).
    Set {
        /// The store file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value; omit it to read the value from standard input.
        value: Option<String>,
    },
    /// Remove a key.
    Del {
        /// The store file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// Show a store's geometry, strategy and counters.
    Stats {
        /// The store file.
        path: PathBuf,
    },
    /// List every key and value (tab-separated; unprintable bytes escaped).
    Scan {
        /// The store file.
        path: PathBuf,
        /// Stop after this many entries.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Check every slot; report slots left mid-write, damaged, misplaced or
    /// duplicated, and lanes of writers that died.
    Verify {
        /// The store file.
        path: PathBuf,
        /// Also repair every slot: takes the store's writer lock (for an
        /// uncoordinated store, keeps its writers out until done).
        #[arg(long)]
        repair: bool,
    },
    /// Give a copy of a store a new identity, so it lives beside its original
    /// as a store of its own (no process may have it open).
    NewId {
        /// The store file (a copy made with cp, say).
        path: PathBuf,
    },
    /// Copy every whole entry of a store of an older format into a new store
    /// (stop the old store's writers first; the old file is left as it was).
    Migrate {
        /// The store of format version 1.
        old: PathBuf,
        /// Where to create the new store (it must not exist).
        new: PathBuf,
    },
    /// Serve a directory of stores over HTTP (the same server as maph-server).
    Serve {
        /// Directory of stores (`<name>.maph`), created if missing.
        dir: PathBuf,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// P processes increment one counter M times each under a strategy; print
    /// expected, actual and lost updates.
    Race {
        /// The strategy to race under.
        #[arg(long, value_enum)]
        strategy: StrategyName,
        /// Number of processes.
        #[arg(long, default_value_t = 4)]
        procs: u32,
        /// Increments per process.
        #[arg(long, default_value_t = 10_000)]
        increments: u64,
        /// The counter's key.
        #[arg(long, default_value = "race:counter")]
        key: String,
        /// Store to race on: created with the strategy if missing, else it must have been created with it.
        path: PathBuf,
    },
    /// One racing process (started by `maph race`).
    #[command(hide = true)]
    RaceWorker {
        #[arg(long)]
        increments: u64,
        #[arg(long)]
        key: String,
        path: PathBuf,
    },
}
