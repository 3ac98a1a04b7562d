//! How an [`FcntlCoordinator`](crate::FcntlCoordinator) locks: what an
//! acquisition covers, and which kind of record lock it uses.

/// What one acquisition locks.
///
/// Both granularities write under the same strategy tag (`fcntl`) and may be
/// mixed freely, even between processes: a whole-file lock conflicts with every
/// byte-range lock of the same file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// The whole file, whatever scope is asked for: writers take turns on
    /// the whole store, as with flock.
    #[default]
    WholeFile,
    /// Only the bytes standing for the slots in the scope (slot `i` is byte `i`
    /// of the locked file): a key's probe window for
    /// [`Store::update`](maph_core::Store::update) and
    /// [`Store::set`](maph_core::Store::set), so writers of keys whose windows do
    /// not overlap proceed in parallel, in different processes and in threads of
    /// one process. [`LockScope::Whole`](maph_core::LockScope::Whole) (as
    /// [`Store::write`](maph_core::Store::write) takes) still locks everything.
    ByteRange,
}

/// Which kind of fcntl record lock to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// Open-file-description locks where the kernel and filesystem have them,
    /// classic locks otherwise (decided when the coordinator is made).
    #[default]
    Auto,
    /// Linux open-file-description locks (`F_OFD_SETLK`/`F_OFD_SETLKW`, Linux
    /// 3.15+): owned by an open file description, so descriptions of one process
    /// exclude each other, and closing some other descriptor of the store file
    /// does not drop them. Making the coordinator fails where they are missing.
    OpenFileDescription,
    /// Classic POSIX locks (`F_SETLK`/`F_SETLKW`): owned by the process, taken on
    /// a lock file named after the store ([`classic_lock_path`](crate::classic_lock_path)).
    /// What [`Auto`](Self::Auto) falls back to; asking for it directly is for
    /// tests and for filesystems whose OFD support misbehaves. A store keeps the
    /// kind of its first fcntl coordinator (recorded in its header): a
    /// coordinator asking for the other kind is refused, and `Auto` follows it. What it loses is listed on
    /// [`FcntlCoordinator`](crate::FcntlCoordinator#classic-locks-the-fallback).
    Classic,
}

/// Options for [`FcntlCoordinator::with_options`](crate::FcntlCoordinator::with_options).
///
/// ```
/// use maph_lock_fcntl::{FcntlOptions, Granularity, LockKind};
/// let options = FcntlOptions::new().granularity(Granularity::ByteRange).lock_kind(LockKind::Auto);
/// assert_eq!(options, FcntlOptions { granularity: Granularity::ByteRange, lock_kind: LockKind::Auto });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FcntlOptions {
    /// What one acquisition locks (default: the whole file).
    pub granularity: Granularity,
    /// Which kind of record lock (default: OFD, falling back to classic).
    pub lock_kind: LockKind,
}

impl FcntlOptions {
    /// Whole-file, OFD locks with the classic fallback.
    pub fn new() -> FcntlOptions {
        FcntlOptions::default()
    }

    /// Sets what one acquisition locks.
    pub fn granularity(mut self, granularity: Granularity) -> FcntlOptions {
        self.granularity = granularity;
        self
    }

    /// Sets which kind of record lock to use.
    pub fn lock_kind(mut self, lock_kind: LockKind) -> FcntlOptions {
        self.lock_kind = lock_kind;
        self
    }
}
