//! One error type for the store and every coordinator.
//!
//! Each message says what happened and what to do about it, because the reader
//! of an error is usually an operator, not the author of the code.

use std::path::PathBuf;
use std::time::Duration;

use crate::Strategy;

/// Result alias used throughout maph.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in maph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every slot in the key's probe window holds another key.
    #[error(
        "the store is full around this key: all {probes} slots of its probe window are taken; \
         create a larger store (more slots) and copy the entries over"
    )]
    TableFull {
        /// Length of the probe window that was searched.
        probes: u32,
    },

    /// The key does not fit in a slot.
    #[error("key is {len} bytes but at most {max} fit in a slot; use a shorter key or a store with larger slots")]
    KeyTooLarge {
        /// Length of the rejected key.
        len: usize,
        /// Largest key this store accepts.
        max: usize,
    },

    /// The key and value together do not fit in a slot.
    #[error(
        "value is {len} bytes but at most {max} fit beside this key; \
         use a store with larger slots (slot_size) or store a smaller value"
    )]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// Largest value that fits beside this key.
        max: usize,
    },

    /// A write was attempted through a read-only handle.
    #[error("the store was opened read-only; open it with Mode::ReadWrite to write")]
    ReadOnly,

    /// The file is not a maph store at all.
    #[error("{path} is not a maph store: {reason}")]
    NotAStore {
        /// The file that was opened.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },

    /// The file is a maph store written by an incompatible format version.
    #[error("{}", unsupported_version_message(path, *found, *supported))]
    UnsupportedVersion {
        /// The file that was opened.
        path: PathBuf,
        /// Version found in the header.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },

    /// The store lives on a network or FUSE filesystem and was opened for
    /// writing without the single-host opt-in.
    #[error(
        "{path} is on a {filesystem} filesystem, and maph coordinates processes on one host: shared mappings of a \
         file on a network or FUSE filesystem are not kept coherent between the hosts that mount it, so writers \
         on two hosts would lose each other's updates whatever lock they take. Keep the store on a local \
         filesystem of the host whose processes use it (one host per store file) and send writes from other \
         hosts through maph-server; if every process that opens this store runs on this one host, open it with \
         OpenOptions::allow_network_filesystem(true) (maph: --single-host-network-fs)"
    )]
    NetworkFilesystem {
        /// The store's path.
        path: PathBuf,
        /// The filesystem, as `statfs` names it (NFS, CIFS, fuse, …).
        filesystem: String,
    },

    /// The file claims to be a store but its header or length is inconsistent.
    #[error("{path} is a damaged maph store: {detail}; restore it from a copy or recreate it")]
    Corrupt {
        /// The file that was opened.
        path: PathBuf,
        /// What is inconsistent.
        detail: String,
    },

    /// A slot stayed mid-write longer than a reader is willing to wait.
    #[error(
        "slot {slot} has been mid-write for {waited:?}: a writer probably died while writing it; \
         open the store for writing and call repair (or `maph verify`) to fix it"
    )]
    SlotBusy {
        /// Index of the slot.
        slot: u64,
        /// How long the reader waited.
        waited: Duration,
    },

    /// Another process holds the single-writer lease.
    #[error("{}", writer_busy_message(*.pid))]
    WriterBusy {
        /// Process id of the current writer, when it could be read.
        pid: Option<u32>,
    },

    /// The coordinator does not match the strategy the store was created for.
    #[error(
        "this store is coordinated by `{store}` but the writer uses `{coordinator}`; \
         every writer must use the strategy recorded at create (see `maph stats`)"
    )]
    StrategyMismatch {
        /// Strategy recorded in the store header.
        store: Strategy,
        /// Strategy of the coordinator that tried to write.
        coordinator: Strategy,
    },

    /// The writer's fencing token is older than one the store already accepted.
    #[error(
        "write refused: fencing token {presented} is older than token {highest} already accepted; \
         this writer lost its lease, acquire the write token again"
    )]
    StaleFence {
        /// The token this writer presented.
        presented: u64,
        /// The highest token the store has accepted.
        highest: u64,
    },

    /// A slot this writer was writing was changed by someone else before the
    /// writer published it: another holder judged it dead (its lock or lease
    /// ended while it was paused) and repaired or rewrote the slot.
    #[error(
        "slot {slot} was rewritten by another writer while this one was writing it (this writer's lock or lease \
         ended while it was paused); this write was not published and its other keys may or may not have been; \
         the slot is left for repair: run `maph verify --repair`, then check the keys this write touched"
    )]
    Overtaken {
        /// The slot whose publish failed.
        slot: u64,
    },

    /// The store is being repaired and its writers do not coordinate, so they
    /// are kept out until the repair is done.
    #[error("the store is being repaired by process {pid}; writes resume when it finishes, retry then")]
    UnderRepair {
        /// The repairing process.
        pid: u32,
    },

    /// A lock could not be acquired before the deadline.
    #[error(
        "could not acquire the {strategy} lock within {waited:?}; another writer holds it, retry or raise the timeout"
    )]
    LockTimeout {
        /// Strategy whose lock timed out.
        strategy: Strategy,
        /// How long the caller waited.
        waited: Duration,
    },

    /// The writer's lease ended (expired, revoked, or its renewal failed).
    #[error("the {strategy} write lease is lost ({detail}); nothing was written, acquire it again")]
    LeaseLost {
        /// Strategy whose lease was lost.
        strategy: Strategy,
        /// Why the lease is gone.
        detail: String,
    },

    /// A write touched a key outside the slots its guard locks.
    #[error(
        "the key's slots {first}..+{len} lie outside the locked scope; \
         lock LockScope::Whole (store.write) to write arbitrary keys"
    )]
    OutOfScope {
        /// First slot of the key's probe window.
        first: u64,
        /// Length of the key's probe window.
        len: u32,
    },

    /// The store file was replaced at its path (for example by an optimize), so
    /// writes to this handle would be lost.
    #[error("{path} was replaced by a rebuilt store; reopen it (Store::reopen) and write to the new file")]
    Retired {
        /// The store's path.
        path: PathBuf,
    },

    /// The coordinator was made for a different store file.
    #[error(
        "this coordinator was made for another store file; make one coordinator per store \
         (for example SingleWriter::new(&store))"
    )]
    WrongStore,

    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A coordinator-specific failure (for example the coordination service is unreachable).
    #[error("{strategy} coordination failed: {detail}")]
    Coordination {
        /// Strategy that failed.
        strategy: Strategy,
        /// What went wrong and what to do.
        detail: String,
    },

    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What maph was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn unsupported_version_message(path: &std::path::Path, found: u32, supported: u32) -> String {
    let path = path.display();
    if found < supported {
        format!(
            "{path} is a maph store of format version {found}, written by an older maph; this build reads version \
             {supported}. Stop its writers, then copy its entries into a new store with `maph migrate {path} NEW` \
             (the old file is left as it was), or recreate it"
        )
    } else {
        format!(
            "{path} uses maph format version {found}, written by a newer maph; this build reads version \
             {supported}: open it with that newer maph"
        )
    }
}

fn writer_busy_message(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!(
            "another process (pid {pid}) holds the single-writer lease; \
             send writes through it, or open read-only"
        ),
        None => "another process holds the single-writer lease; send writes through it, or open read-only".to_string(),
    }
}

impl Error {
    /// Wraps an I/O error with a sentence saying what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}
