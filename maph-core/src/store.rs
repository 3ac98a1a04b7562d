//! The store: create, open, and lock-free reads.

use std::fs::{File, OpenOptions as FileOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::sync::Ordering;
use std::time::Duration;

use crate::format::{
    Layout, StoreUuid, COUNTERS_OFFSET, COUNTER_SHARDS, COUNTER_STRIDE, DEFAULT_MAX_PROBES, DEFAULT_SLOT_SIZE,
    HEADER_SIZE, IMMUTABLE_LEN, OFF_HIGHEST_FENCE, OFF_RETIRED, RETIRED,
};
#[cfg(not(loom))]
use crate::format::{COORDINATOR_REGION_LEN, COORDINATOR_REGION_OFFSET};
use crate::hash::{hash_key, KeyHash};
use crate::shared_memory::SharedRegion;
use crate::slot::{Seen, Slot, SlotFault};
use crate::{Error, LockScope, Result, Strategy, WriteCoordinator};

/// How long a reader waits for a slot that stays mid-write before reporting
/// [`Error::SlotBusy`]. A live writer holds a slot for well under a microsecond;
/// only a writer that died (or a machine overloaded to a standstill) takes longer.
pub const DEFAULT_READ_PATIENCE: Duration = Duration::from_millis(500);

/// How a store is created. Every field is recorded in the header.
///
/// ```
/// use maph_core::{Config, Strategy};
/// let config = Config::new(100_000).slot_size(256).max_probes(16).strategy(Strategy::SINGLE_WRITER);
/// assert_eq!(config.slot_count, 100_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of slots (the most keys the store can hold).
    pub slot_count: u64,
    /// Bytes per slot, a multiple of 64 (default 512): 32 of bookkeeping, the rest for key and value.
    pub slot_size: u32,
    /// Probe window: how many consecutive slots a key may occupy (default 64, or
    /// the slot count if smaller; see [`DEFAULT_MAX_PROBES`](crate::format::DEFAULT_MAX_PROBES)).
    pub max_probes: u32,
    /// Hash seed; `None` picks a random one at create.
    pub hash_seed: Option<u64>,
    /// The strategy whose writers may write the store (default single writer).
    pub strategy: Strategy,
    /// Whether to skip reserving the file's blocks at create (default false);
    /// see [`sparse`](Self::sparse).
    pub sparse: bool,
}

impl Config {
    /// A configuration for `slot_count` slots with every other value at its default.
    pub fn new(slot_count: u64) -> Config {
        Config {
            slot_count,
            slot_size: DEFAULT_SLOT_SIZE,
            max_probes: DEFAULT_MAX_PROBES.min(u32::try_from(slot_count).unwrap_or(u32::MAX)).max(1),
            hash_seed: None,
            strategy: Strategy::SINGLE_WRITER,
            sparse: false,
        }
    }

    /// Sets the slot size (a multiple of 64).
    pub fn slot_size(mut self, bytes: u32) -> Config {
        self.slot_size = bytes;
        self
    }

    /// Sets the probe window.
    pub fn max_probes(mut self, probes: u32) -> Config {
        self.max_probes = probes;
        self
    }

    /// Fixes the hash seed (for reproducible layouts).
    pub fn hash_seed(mut self, seed: u64) -> Config {
        self.hash_seed = Some(seed);
        self
    }

    /// Sets the coordination strategy recorded in the header.
    pub fn strategy(mut self, strategy: Strategy) -> Config {
        self.strategy = strategy;
        self
    }

    /// Creates the file sparse: no block is reserved at create, so creating
    /// is instant and the file takes disk space (or, on tmpfs, memory) only as
    /// slots are written.
    ///
    /// **The risk:** a write through the mapping that needs a new block of a
    /// full filesystem cannot fail with an error; the kernel kills the writing
    /// process with SIGBUS (in maph-server, every served store with it). By
    /// default [`Store::create`] reserves every block (`posix_fallocate`) and
    /// fails cleanly when the space is not there; choose sparse only where the
    /// filesystem cannot fill up, or the store is scratch.
    pub fn sparse(mut self, sparse: bool) -> Config {
        self.sparse = sparse;
        self
    }

    fn layout(&self) -> Layout {
        Layout {
            slot_count: self.slot_count,
            slot_size: self.slot_size,
            max_probes: self.max_probes,
            hash_seed: self.hash_seed.unwrap_or_else(random_seed),
            strategy: self.strategy,
        }
    }
}

/// Reserves the blocks of `file`'s first `len` bytes (and sets its length).
fn reserve(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: posix_fallocate on a descriptor we own; no memory is involved.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
            0 => return Ok(()),
            libc::EINTR => continue,
            code => return Err(std::io::Error::from_raw_os_error(code)),
        }
    }
}

fn random_seed() -> u64 {
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    xxhash_rust::xxh3::xxh3_64_with_seed(&clock.to_le_bytes(), u64::from(std::process::id()))
}

/// Whether a handle may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Maps the file read-only; every write returns [`Error::ReadOnly`].
    ReadOnly,
    /// Maps the file read-write; writes still go through a coordinator.
    ReadWrite,
}

/// How a store is opened: [`Store::open`] with more choices.
///
/// ```
/// use maph_core::{Config, Mode, OpenOptions, Store};
/// use std::time::Duration;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("options.maph");
/// # Store::create(&path, Config::new(64))?;
/// let store = OpenOptions::new(Mode::ReadWrite).read_patience(Duration::from_millis(50)).open(&path)?;
/// # Ok::<(), maph_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    mode: Mode,
    allow_network_filesystem: bool,
    read_patience: Duration,
}

impl OpenOptions {
    /// Options for opening in `mode`, every other choice at its default.
    pub fn new(mode: Mode) -> OpenOptions {
        OpenOptions { mode, allow_network_filesystem: false, read_patience: DEFAULT_READ_PATIENCE }
    }

    /// Allows opening a store for writing on a network or FUSE filesystem (NFS,
    /// SMB/CIFS, 9p, Ceph, FUSE, …), which is refused by default.
    ///
    /// maph coordinates processes on **one host**: shared mappings of a file on
    /// a network filesystem are not kept coherent between the machines that
    /// mount it, so writers on two hosts lose each other's updates whatever
    /// lock they take (one writes back its stale copy of a page the other
    /// changed). Say `true` only when every process that opens this store, to
    /// read or to write, runs on this one machine (one host mounting NFS, say).
    /// Writers elsewhere go through `maph-server`.
    pub fn allow_network_filesystem(mut self, allow: bool) -> OpenOptions {
        self.allow_network_filesystem = allow;
        self
    }

    /// How long reads wait for a slot that stays mid-write (default
    /// [`DEFAULT_READ_PATIENCE`]) before returning [`Error::SlotBusy`].
    pub fn read_patience(mut self, patience: Duration) -> OpenOptions {
        self.read_patience = patience;
        self
    }

    /// Opens the store at `path` with these options.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path.as_ref(), self)
    }
}

/// Identifies a store file (device and inode), so a coordinator made for one
/// store cannot be used to write another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreId {
    dev: u64,
    ino: u64,
}

/// A maph store: one file, mapped into this process.
///
/// Reads ([`get`](Self::get), [`get_into`](Self::get_into), [`contains`](Self::contains),
/// [`iter`](Self::iter)) are lock-free and never return a torn value. Writes go
/// through a [`WriteCoordinator`]: [`write`](Self::write), [`write_with`](Self::write_with),
/// [`update`](Self::update), [`set`](Self::set), [`remove`](Self::remove).
///
/// `Store` is `Send + Sync`: share one handle between threads with `Arc`.
///
/// ```
/// use maph_core::{Config, Mode, SingleWriter, Store};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("counters.maph");
/// Store::create(&path, Config::new(1024))?;
/// let store = Store::open(&path, Mode::ReadWrite)?;
/// let writer = SingleWriter::new(&store)?;
///
/// store.write(&writer, |tx| {
///     tx.set(b"apples", b"3")?;
///     tx.set(b"pears", b"5")?;
///     tx.remove(b"plums")
/// })?;
/// store.update(&writer, b"apples", |old| {
///     let n: u64 = std::str::from_utf8(old.unwrap()).unwrap().parse().unwrap();
///     Some((n + 1).to_string())
/// })?;
///
/// // Any process may open the same file read-only and read at memory speed.
/// let reader = Store::open(&path, Mode::ReadOnly)?;
/// assert_eq!(reader.get(b"apples")?.as_deref(), Some(&b"4"[..]));
/// assert_eq!(reader.len(), 2);
/// # Ok::<(), maph_core::Error>(())
/// ```
pub struct Store {
    pub(crate) region: SharedRegion,
    pub(crate) layout: Layout,
    path: PathBuf,
    id: StoreId,
    uuid: StoreUuid,
    mode: Mode,
    allow_network_filesystem: bool,
    pub(crate) read_patience: Duration,
    // Keeps the descriptor the mapping was made from for the handle's life.
    _file: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("layout", &self.layout)
            .finish()
    }
}

impl Store {
    /// Creates a new, empty store at `path`. Fails if a file is already there.
    ///
    /// The file is built under a temporary name and linked into place only when
    /// complete, so no process ever opens a half-written store, and a create
    /// that fails leaves nothing behind. Every block of the file is reserved
    /// (`posix_fallocate`), so that no later write through the mapping can find
    /// the filesystem full (which would kill the writer with SIGBUS); if the
    /// space is not there, the error says so. [`Config::sparse`] skips the
    /// reservation.
    pub fn create(path: impl AsRef<Path>, config: Config) -> Result<()> {
        let path = path.as_ref();
        let layout = config.layout();
        layout.validate().map_err(Error::InvalidConfig)?;
        let len = layout.file_len().expect("validated");
        let uuid = StoreUuid::random()?;
        let created = crate::files::create_new_atomically(path, |file| {
            if config.sparse {
                // Slots read as zero (empty) until written.
                file.set_len(len)?;
            } else {
                reserve(file, len)?;
            }
            file.write_all(&layout.encode_header(uuid))
        });
        created.map_err(|e| match e {
            Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => Error::io(
                format!(
                    "not enough space on the filesystem of {} for a store of {len} bytes ({} slots of {} bytes): \
                     free some space, create a smaller store, or create it sparse (Config::sparse, `maph create \
                     --sparse`) and accept that a write finding the disk full then kills the writer (SIGBUS)",
                    path.display(),
                    layout.slot_count,
                    layout.slot_size
                ),
                source,
            ),
            other => other,
        })
    }

    /// Opens an existing store. Rejects, with an error saying why, any file that
    /// is not a complete store of this format version, and a store on a
    /// network or FUSE filesystem for writing ([`Error::NetworkFilesystem`]; see
    /// [`OpenOptions::allow_network_filesystem`]).
    pub fn open(path: impl AsRef<Path>, mode: Mode) -> Result<Store> {
        OpenOptions::new(mode).open(path)
    }

    fn open_with(path: &Path, options: &OpenOptions) -> Result<Store> {
        let mode = options.mode;
        let file = FileOptions::new().read(true).write(mode == Mode::ReadWrite).open(path).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => " (no such file: create it first)",
                std::io::ErrorKind::PermissionDenied => " (permission denied: open it read-only?)",
                _ => "",
            };
            Error::io(format!("could not open {}{hint}", path.display()), e)
        })?;
        let meta = file.metadata().map_err(|e| Error::io(format!("could not stat {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::NotAStore { path: path.into(), reason: "it is not a regular file".into() });
        }
        if mode == Mode::ReadWrite && !options.allow_network_filesystem {
            let magic = crate::filesystem::magic_of(&file)
                .map_err(|e| Error::io(format!("could not statfs {}", path.display()), e))?;
            if let Some(filesystem) = crate::filesystem::shared_filesystem_name(magic) {
                return Err(Error::NetworkFilesystem { path: path.into(), filesystem: filesystem.to_string() });
            }
        }
        let len = meta.len();
        if len < IMMUTABLE_LEN as u64 {
            let reason = if len == 0 {
                "the file is empty".to_string()
            } else {
                format!("the file has {len} bytes, less than a maph header ({HEADER_SIZE})")
            };
            return Err(Error::NotAStore { path: path.into(), reason });
        }
        // Read the header with read(2), not through the mapping: a file that is
        // shorter than its header claims must be rejected before it is mapped.
        // (Magic and version come first: a store of another version, whose
        // header may be smaller, is named as such.)
        let mut header = [0u8; IMMUTABLE_LEN];
        (&file)
            .read_exact(&mut header)
            .map_err(|e| Error::io(format!("could not read the header of {}", path.display()), e))?;
        let (layout, uuid) = Layout::decode_header(path, &header, len)?;
        let region = SharedRegion::map(&file, len as usize, mode == Mode::ReadWrite)?;
        Ok(Store {
            region,
            layout,
            path: path.to_path_buf(),
            id: StoreId { dev: meta.dev(), ino: meta.ino() },
            uuid,
            mode,
            allow_network_filesystem: options.allow_network_filesystem,
            read_patience: options.read_patience,
            _file: file,
        })
    }

    /// Gives the store file at `path` a new random identity ([`Store::uuid`])
    /// and returns it: for a byte-for-byte copy that is to live beside its
    /// original as a store of its own (see `docs/FORMAT.md`, "what a copy is").
    ///
    /// Only for a file no process has open: every handle reads the id once, at
    /// open, and keeps it. Nothing else in the file changes.
    ///
    /// ```
    /// use maph_core::{Config, Mode, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (original, copy) = (dir.path().join("a.maph"), dir.path().join("b.maph"));
    /// Store::create(&original, Config::new(64))?;
    /// std::fs::copy(&original, &copy).unwrap();
    /// let id = Store::open(&original, Mode::ReadOnly)?.uuid();
    /// assert_eq!(Store::open(&copy, Mode::ReadOnly)?.uuid(), id, "a copy keeps the id");
    /// let new_id = Store::assign_new_uuid(&copy)?;
    /// assert_ne!(new_id, id);
    /// assert_eq!(Store::open(&copy, Mode::ReadOnly)?.uuid(), new_id);
    /// # Ok::<(), maph_core::Error>(())
    /// ```
    pub fn assign_new_uuid(path: impl AsRef<Path>) -> Result<StoreUuid> {
        use std::os::unix::fs::FileExt;
        let path = path.as_ref();
        let file = FileOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("could not open {}", path.display()), e))?;
        let len = file.metadata().map_err(|e| Error::io(format!("could not stat {}", path.display()), e))?.len();
        let mut header = [0u8; IMMUTABLE_LEN];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| Error::io(format!("could not read the header of {}", path.display()), e))?;
        let (layout, _) = Layout::decode_header(path, &header, len)?;
        let uuid = StoreUuid::random()?;
        file.write_all_at(&layout.encode_header(uuid), 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("could not write the header of {}", path.display()), e))?;
        Ok(uuid)
    }

    /// Sets how long reads wait for a slot that stays mid-write (default
    /// [`DEFAULT_READ_PATIENCE`]) before returning [`Error::SlotBusy`].
    pub fn with_read_patience(mut self, patience: Duration) -> Store {
        self.read_patience = patience;
        self
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut value = Vec::new();
        Ok(self.get_into(key, &mut value)?.then_some(value))
    }

    /// Copies the value stored under `key` into `value` (cleared first) and
    /// returns whether the key was found. Reuses `value`'s allocation.
    pub fn get_into(&self, key: &[u8], value: &mut Vec<u8>) -> Result<bool> {
        self.find(key, Some(value)).map(|found| found.is_some())
    }

    /// Whether `key` is stored.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        self.find(key, None).map(|found| found.is_some())
    }

    /// Probes `key`'s window; returns the slot holding it.
    fn find(&self, key: &[u8], mut value: Option<&mut Vec<u8>>) -> Result<Option<u64>> {
        if key.len() > self.max_key_len() {
            return Ok(None); // could never have been stored
        }
        let h = self.hash(key);
        for index in self.window(h) {
            match self.slot(index).read_for(key, h.tag, value.as_deref_mut(), true, self.read_patience) {
                Ok((Seen::Match, _)) => return Ok(Some(index)),
                Ok((Seen::Empty, _)) => return Ok(None),
                Ok((Seen::Tombstone | Seen::OtherKey, _)) => {}
                Err(fault) => return Err(self.slot_error(index, fault)),
            }
        }
        Ok(None)
    }

    /// Number of live keys.
    pub fn len(&self) -> u64 {
        // Relaxed: a statistic; it orders nothing else. Wrapping: a shard may be
        // off by one after a crash (until repair recounts), never the sum's type.
        (0..COUNTER_SHARDS).fold(0u64, |sum, k| sum.wrapping_add(self.live_word(k).load(Ordering::Relaxed)))
    }

    /// Whether the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live keys divided by slots.
    pub fn load_factor(&self) -> f64 {
        self.len() as f64 / self.layout.slot_count as f64
    }

    /// The generation: the number of committed writes (the sum of the counter
    /// shards; it grows by one with every commit).
    pub fn generation(&self) -> u64 {
        (0..COUNTER_SHARDS).fold(0u64, |sum, k| sum.wrapping_add(self.generation_word(k).load(Ordering::Acquire)))
    }

    /// The highest fencing token any write has presented.
    pub fn highest_fence(&self) -> u64 {
        self.region.word(OFF_HIGHEST_FENCE).load(Ordering::Acquire)
    }

    /// Whether another file has replaced this one at its path (an optimize or
    /// rebuild swapped it, [`swap_in`](Self::swap_in)). A long-lived reader checks this now and then and
    /// calls [`reopen`](Self::reopen) when it turns true; writes to a retired
    /// store are refused with [`Error::Retired`].
    pub fn is_retired(&self) -> bool {
        // Acquire: pairs with the Release in `swap_in`, after the rename, so a
        // reader that sees the flag and reopens the path gets the new file.
        self.region.word(OFF_RETIRED).load(Ordering::Acquire) == RETIRED
    }

    /// Opens the file now at this store's path, in the same mode.
    pub fn reopen(&self) -> Result<Store> {
        OpenOptions::new(self.mode)
            .allow_network_filesystem(self.allow_network_filesystem)
            .read_patience(self.read_patience)
            .open(&self.path)
    }

    /// Atomically puts the store `replacement` (another file, complete) at this
    /// store's path (rename), then marks this mapping retired so that every
    /// process reading it notices and reopens. Returns the replacement, now
    /// known by this path.
    ///
    /// The caller must hold this store's writer role, and should hold the
    /// replacement's before the swap: locks belong to files, not paths, so the
    /// writer of the old file does not own the new one. With a
    /// [`SingleWriter`](crate::SingleWriter):
    ///
    /// ```
    /// use maph_core::{Config, Mode, SingleWriter, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (path, rebuilt) = (dir.path().join("s.maph"), dir.path().join("s.maph.new"));
    /// # Store::create(&path, Config::new(64))?;
    /// let store = Store::open(&path, Mode::ReadWrite)?;
    /// let lease = SingleWriter::new(&store)?;
    /// Store::create(&rebuilt, Config::new(128))?; // filled by a rebuild, say
    /// let replacement = Store::open(&rebuilt, Mode::ReadWrite)?;
    /// let new_lease = SingleWriter::new(&replacement)?; // before the swap: no one else can take it
    /// let store = store.swap_in(replacement)?;          // the old handle is retired
    /// drop(lease);
    /// store.set(&new_lease, b"k", b"v")?;
    /// assert_eq!(store.path(), path);
    /// # Ok::<(), maph_core::Error>(())
    /// ```
    pub fn swap_in(&self, replacement: Store) -> Result<Store> {
        if self.mode != Mode::ReadWrite {
            return Err(Error::ReadOnly);
        }
        if replacement.id == self.id {
            return Err(Error::InvalidConfig(format!("{} cannot replace itself", self.path.display())));
        }
        replacement.check_file_length()?;
        std::fs::rename(&replacement.path, &self.path).map_err(|e| {
            Error::io(format!("could not move {} over {}", replacement.path.display(), self.path.display()), e)
        })?;
        // Release, after the rename: a reader that sees the flag and reopens the
        // path gets the new file.
        self.region.word(OFF_RETIRED).store(RETIRED, Ordering::Release);
        let mut replacement = replacement;
        replacement.path = self.path.clone();
        Ok(replacement)
    }

    /// Checks that the file still has the length it had when it was mapped.
    ///
    /// maph never shrinks a store, but another program can (`truncate`, a
    /// careless copy). The kernel then turns any access to the mapping past the
    /// new end into SIGBUS, which no library can catch safely. This check (one
    /// `fstat`) lets long-lived readers notice before they touch the lost pages;
    /// `verify` and `repair` run it first. A truncation between the check and a
    /// read still kills the reader: the file must not be truncated while mapped.
    pub fn check_file_length(&self) -> Result<()> {
        let len =
            self._file.metadata().map_err(|e| Error::io(format!("could not stat {}", self.path.display()), e))?.len();
        if len != self.region.len() as u64 {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "the file changed length while mapped ({} bytes mapped, {len} bytes now): something other than \
                     maph truncated or extended it; stop using this handle",
                    self.region.len()
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn check_not_retired(&self) -> Result<()> {
        if self.is_retired() {
            return Err(Error::Retired { path: self.path.clone() });
        }
        Ok(())
    }

    /// Asks the kernel to write modified pages to disk now (msync). Writes are
    /// visible to other processes without it; it matters for power loss only.
    pub fn flush(&self) -> Result<()> {
        self.region.flush()
    }

    /// The file this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity (device, inode) of the store file: what a coordinator is
    /// bound to (its locks are on this file).
    pub fn id(&self) -> StoreId {
        self.id
    }

    /// A new open file description of this store's file, read-write, for a
    /// coordinator that locks it (`flock`, OFD `fcntl`): locks on it exclude
    /// every other process that opened the same file, by any path. It is the
    /// file this handle mapped even if another file has since taken its path.
    /// Only for read-write handles.
    pub fn lock_description(&self) -> Result<File> {
        if self.mode != Mode::ReadWrite {
            return Err(Error::ReadOnly);
        }
        crate::lock_file::reopen_description(&self._file, &self.path)
    }

    /// The process holding this store's single-writer lease, as it recorded
    /// itself in the header, if that process is alive (in this pid namespace).
    pub fn lease_holder(&self) -> Option<u32> {
        // Relaxed: a diagnostic; it orders nothing.
        let pid = self.region.word(crate::format::OFF_WRITER_PID).load(Ordering::Relaxed) as u32;
        (pid != 0 && crate::intent::alive(pid)).then_some(pid)
    }

    /// The store's own identity, drawn at create and kept in its header: the
    /// same for every process and every path that reaches the file, and for a
    /// byte-for-byte copy of it (see `docs/FORMAT.md`).
    pub fn uuid(&self) -> StoreUuid {
        self.uuid
    }

    /// How this handle was opened.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The strategy recorded at create: the only one whose writers may write.
    pub fn strategy(&self) -> Strategy {
        self.layout.strategy
    }

    /// The geometry recorded in the header.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of slots.
    pub fn slot_count(&self) -> u64 {
        self.layout.slot_count
    }

    /// Largest key this store accepts.
    pub fn max_key_len(&self) -> usize {
        self.layout.capacity().min(u16::MAX as usize)
    }

    /// Largest value that fits beside a key of `key_len` bytes.
    pub fn max_value_len(&self, key_len: usize) -> usize {
        self.layout.capacity().saturating_sub(key_len)
    }

    /// The slots `key` may occupy: what a writer of `key` must lock.
    pub fn scope_of(&self, key: &[u8]) -> LockScope {
        let h = self.hash(key);
        LockScope::window(h.home, self.layout.max_probes, self.layout.slot_count)
    }

    /// A 32-bit word of the coordinator region of the header (see
    /// `docs/FORMAT.md`), for coordinators that keep lock words in the file.
    /// `index` counts words from the start of the region; `None` past its end.
    /// Only available on read-write handles.
    #[cfg(not(loom))]
    pub fn coordinator_word(&self, index: usize) -> Result<Option<&AtomicU32>> {
        if self.mode != Mode::ReadWrite {
            return Err(Error::ReadOnly);
        }
        Ok((index < COORDINATOR_REGION_LEN / 4).then(|| self.region.word32(COORDINATOR_REGION_OFFSET + index * 4)))
    }

    /// A 64-bit word of the coordinator region of the header: bytes
    /// `8·index .. 8·index + 8` of the region, the same bytes as 32-bit words
    /// `2·index` and `2·index + 1` of [`coordinator_word`](Self::coordinator_word).
    /// `None` past the region's end. Only available on read-write handles.
    ///
    /// Every process must access a given word at one width only: Rust's memory
    /// model does not define atomic accesses of different sizes to the same
    /// bytes racing with each other. A coordinator's layout fixes the width of
    /// each of its words.
    #[cfg(not(loom))]
    pub fn coordinator_word64(&self, index: usize) -> Result<Option<&AtomicU64>> {
        if self.mode != Mode::ReadWrite {
            return Err(Error::ReadOnly);
        }
        Ok((index < COORDINATOR_REGION_LEN / 8).then(|| self.region.word(COORDINATOR_REGION_OFFSET + index * 8)))
    }

    /// Refuses a writer that may not write this store: read-only handle, or
    /// another strategy than the one recorded. Coordinators call it when made.
    pub fn check_writer(&self, strategy: Strategy) -> Result<()> {
        if self.mode != Mode::ReadWrite {
            return Err(Error::ReadOnly);
        }
        if strategy != self.layout.strategy {
            return Err(Error::StrategyMismatch { store: self.layout.strategy, coordinator: strategy });
        }
        Ok(())
    }

    /// [`check_writer`](Self::check_writer) plus the coordinator's store binding.
    pub(crate) fn check_coordinator<C: WriteCoordinator + ?Sized>(&self, coordinator: &C) -> Result<()> {
        self.check_writer(coordinator.strategy())?;
        match coordinator.bound_store() {
            Some(id) if id != self.id => Err(Error::WrongStore),
            _ => Ok(()),
        }
    }

    /// The counter shard of slot `index`: shards split the table into equal
    /// contiguous regions, like the stripes of a range lock.
    pub(crate) fn counter_shard(&self, index: u64) -> usize {
        (u128::from(index) * COUNTER_SHARDS as u128 / u128::from(self.layout.slot_count)) as usize
    }

    /// Committed writes whose first slot lies in shard `k`.
    pub(crate) fn generation_word(&self, k: usize) -> &crate::sync::AtomicU64 {
        self.region.word(COUNTERS_OFFSET + k * COUNTER_STRIDE)
    }

    /// Live keys in the slots of shard `k`.
    pub(crate) fn live_word(&self, k: usize) -> &crate::sync::AtomicU64 {
        self.region.word(COUNTERS_OFFSET + k * COUNTER_STRIDE + 8)
    }

    pub(crate) fn hash(&self, key: &[u8]) -> KeyHash {
        hash_key(self.layout.hash_seed, key, self.layout.slot_count)
    }

    /// The slot indices of a key's probe window, in probe order.
    pub(crate) fn window(&self, h: KeyHash) -> impl Iterator<Item = u64> {
        let n = self.layout.slot_count;
        // home < n and max_probes <= n, so one subtraction wraps (no division).
        (h.home..h.home + u64::from(self.layout.max_probes)).map(move |i| if i >= n { i - n } else { i })
    }

    pub(crate) fn slot(&self, index: u64) -> Slot<'_> {
        debug_assert!(index < self.layout.slot_count);
        let offset = HEADER_SIZE + index as usize * self.layout.slot_size as usize;
        Slot::new(&self.region, offset, self.layout.capacity())
    }

    pub(crate) fn slot_error(&self, index: u64, fault: SlotFault) -> Error {
        match fault {
            SlotFault::Busy { waited } => Error::SlotBusy { slot: index, waited },
            SlotFault::Damaged => Error::Corrupt {
                path: self.path.clone(),
                detail: format!("slot {index} has an impossible length or state"),
            },
            SlotFault::Checksum => Error::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "slot {index} does not match its checksum (damaged, or written by two writers at once); \
                     `maph verify --repair` clears it"
                ),
            },
        }
    }
}
