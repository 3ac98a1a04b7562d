//! The errors of a sharded store: the store's own ([`maph_core::Error`]) plus
//! the ones only a layout of several files can have.
//!
//! Every message names the file concerned and says what to do, because the
//! reader of an error is usually an operator, not the author of the code.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a sharded store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of one shard's store or coordinator (full table, busy lease, …).
    #[error(transparent)]
    Store(#[from] maph_core::Error),

    /// The key routes to a shard this handle has not claimed: the write was not made.
    #[error("{}", not_owner_message(*.shard, *.owner_pid))]
    NotOwner {
        /// The shard the key routes to.
        shard: u32,
        /// The live process recorded as that shard's writer, if any.
        owner_pid: Option<u32>,
    },

    /// The directory has no manifest.
    #[error(
        "{path} does not exist: the directory holds no sharded store, or its creation did not finish \
         (the manifest is written last); create the store with ShardedStore::create"
    )]
    ManifestMissing {
        /// Where the manifest should be.
        path: PathBuf,
    },

    /// The manifest exists but cannot be trusted.
    #[error("{path} is not a valid maph-shard manifest: {detail}; restore it from a copy or recreate the store")]
    ManifestCorrupt {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// The manifest was written by an incompatible version of this crate.
    #[error(
        "{path} is a maph-shard manifest of format version {found}, this build reads version {supported}; \
         open it with a matching maph-shard version"
    )]
    ManifestVersion {
        /// The manifest file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },

    /// A store of zero shards was asked for, or a manifest records zero shards.
    #[error("{path}: a sharded store needs at least one shard (shard count is 0)")]
    ZeroShards {
        /// The manifest (or the directory at create).
        path: PathBuf,
    },

    /// The manifest differs from what the caller expected (another shard count,
    /// routing seed or slot configuration): keys would be routed elsewhere.
    #[error(
        "{path} records {field} = {found} but this process expects {expected}; every process must route keys \
         alike: use the same configuration, or reshard the store to the new one (maph_shard::Reshard)"
    )]
    ManifestMismatch {
        /// The manifest file.
        path: PathBuf,
        /// The manifest field that differs.
        field: &'static str,
        /// The value in the manifest.
        found: String,
        /// The value the caller expected.
        expected: String,
    },

    /// A shard file the manifest lists is not there.
    #[error(
        "shard {shard} is missing: {path} does not exist; restore it from a copy (its keys are nowhere else), \
         or recreate the store"
    )]
    ShardMissing {
        /// The missing file.
        path: PathBuf,
        /// Its shard index.
        shard: u32,
    },

    /// A shard file is a maph store, but not this layout's shard at this index.
    #[error(
        "{path} is not shard {shard} of this sharded store: {detail}; put the right file back \
         (a shard file of another store or another index routes keys wrongly)"
    )]
    ForeignShard {
        /// The shard file.
        path: PathBuf,
        /// The index it stands at.
        shard: u32,
        /// What differs from the manifest.
        detail: String,
    },

    /// A shard index beyond the store's shard count.
    #[error("shard {shard} does not exist: this store has {count} shards (0..{count})")]
    NoSuchShard {
        /// The index asked for.
        shard: u32,
        /// The store's shard count.
        count: u32,
    },

    /// A write of one shard touched a key that routes to another. Nothing was written.
    #[error(
        "the key routes to shard {key_shard} but this write holds shard {write_shard}: a write is atomic within \
         one shard only; write keys of other shards separately"
    )]
    WrongShard {
        /// The shard the key routes to.
        key_shard: u32,
        /// The shard the write was made for.
        write_shard: u32,
    },

    /// A store would be created where one already is.
    #[error("{path} already exists; open the store there, or choose an empty directory")]
    AlreadyExists {
        /// The file or directory in the way.
        path: PathBuf,
    },

    /// A reshard target directory holds files.
    #[error("{path} is not empty; reshard into a new or empty directory (the source layout is never overwritten)")]
    TargetNotEmpty {
        /// The target directory.
        path: PathBuf,
    },

    /// A reshard copied entries but the new layout did not verify. The partial
    /// new layout was removed; the old one is untouched.
    #[error("reshard into {path} failed verification: {detail}; the new layout was removed, the old one is untouched")]
    ReshardVerify {
        /// The target directory.
        path: PathBuf,
        /// What did not match.
        detail: String,
    },

    /// A configuration value is out of range.
    #[error("invalid sharded-store configuration: {0}")]
    InvalidConfig(String),

    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn not_owner_message(shard: u32, owner_pid: Option<u32>) -> String {
    let owner = match owner_pid {
        Some(pid) => format!("process {pid} owns it: send the write there"),
        None => "no live process owns it: claim it (ShardedStore::claim)".to_string(),
    };
    format!("write refused: the key routes to shard {shard}, which this handle has not claimed; {owner}")
}

impl Error {
    /// Wraps an I/O error with a sentence saying what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}
