//! The sharded store: create, open, claim shards, read and write.

use std::path::{Path, PathBuf};

use maph_core::{Mode, SingleWriter, Store, WriteCoordinator};

use crate::manifest::{manifest_path, shard_path, Manifest};
use crate::owner::live_owner;
use crate::{Error, Result, Router, ShardConfig, ShardTxn};

/// Makes the coordinator of one shard when it is claimed.
pub type CoordinatorFactory<C> = Box<dyn Fn(&Store) -> maph_core::Result<C> + Send + Sync>;

/// One maph store split by key over several files, each written by the process
/// that claimed it.
///
/// - Reads ([`get`](Self::get) and friends) work from any handle, on any shard,
///   lock-free: they go straight to the shard's [`Store::get`].
/// - Writes ([`set`](Self::set), [`update`](Self::update), [`remove`](Self::remove),
///   [`write`](Self::write)) go to the key's shard through the coordinator this
///   handle made when it [claimed](Self::claim) the shard. A key of a shard this
///   handle has not claimed is refused with [`Error::NotOwner`], naming the live
///   owner's pid: never a silent write.
/// - `C` is the coordinator of every shard. With [`SingleWriter`] (the default)
///   a claim is an exclusive lease: one process owns a shard, a second claimer
///   gets [`maph_core::Error::WriterBusy`], and owners never wait for each other.
///   With a lock coordinator every process may claim every shard and writers
///   take turns within a shard only ("partition, and lock within a partition").
///
/// See the [crate docs](crate) for when partitioning pays and when it does not.
///
/// ```
/// use maph_core::Mode;
/// use maph_shard::{Error, ShardConfig, ShardedStore};
/// # let dir = tempfile::tempdir().unwrap();
/// # let dir = dir.path();
/// ShardedStore::create(dir, &ShardConfig::new(4, 1024))?;
///
/// // A worker process claims the shards it will write.
/// let mut worker = ShardedStore::open(dir, Mode::ReadWrite)?;
/// let mine = worker.shard_for(b"user:1");
/// worker.claim(mine)?;
/// worker.set(b"user:1", b"ada")?;
///
/// // Keys of other shards are refused, not written.
/// let other = (0..).map(|i| format!("user:{i}")).find(|k| worker.shard_for(k.as_bytes()) != mine).unwrap();
/// assert!(matches!(worker.set(other.as_bytes(), b"x"), Err(Error::NotOwner { .. })));
///
/// // Any process reads any shard.
/// let reader = ShardedStore::open(dir, Mode::ReadOnly)?;
/// assert_eq!(reader.get(b"user:1")?, Some(b"ada".to_vec()));
/// # Ok::<(), maph_shard::Error>(())
/// ```
pub struct ShardedStore<C: WriteCoordinator = SingleWriter> {
    dir: PathBuf,
    manifest: Manifest,
    router: Router,
    mode: Mode,
    shards: Vec<Shard<C>>,
    factory: CoordinatorFactory<C>,
}

struct Shard<C> {
    path: PathBuf,
    store: Store,
    /// The coordinator made when this handle claimed the shard.
    writer: Option<C>,
}

impl<C: WriteCoordinator> std::fmt::Debug for ShardedStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedStore")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .field("manifest", &self.manifest)
            .field("claimed", &self.claimed().collect::<Vec<_>>())
            .finish()
    }
}

impl ShardedStore<SingleWriter> {
    /// Creates a sharded store in `dir` (made if absent): every shard file, then
    /// the manifest. Returns the manifest, with the seeds it chose.
    ///
    /// Refuses, with nothing written, an invalid configuration (for example
    /// [`Error::ZeroShards`]) or a directory that already holds a manifest or a
    /// shard file. If a step fails, the files already made are removed.
    pub fn create(dir: impl AsRef<Path>, config: &ShardConfig) -> Result<Manifest> {
        let dir = dir.as_ref();
        config.validate(dir)?;
        let manifest = Manifest::for_new_store(config);
        create_layout(dir, &manifest, true)?;
        Ok(manifest)
    }

    /// Opens the sharded store in `dir`; shards are claimed with a
    /// [`SingleWriter`] lease each (one owner process per shard).
    pub fn open(dir: impl AsRef<Path>, mode: Mode) -> Result<Self> {
        Self::open_with(dir, mode, SingleWriter::new)
    }

    /// As [`open`](Self::open), but first refuses a manifest that differs from
    /// `expected` ([`Error::ManifestMismatch`]): a process configured for another
    /// shard count, routing seed or slot configuration would route keys elsewhere.
    pub fn open_expecting(dir: impl AsRef<Path>, mode: Mode, expected: &ShardConfig) -> Result<Self> {
        Self::open_expecting_with(dir, mode, expected, SingleWriter::new)
    }
}

impl<C: WriteCoordinator> ShardedStore<C> {
    /// Opens the sharded store in `dir`; [`claim`](Self::claim) makes each
    /// claimed shard's coordinator with `factory`. For a lock per shard:
    /// `ShardedStore::open_with(dir, Mode::ReadWrite, FlockLock::new)` (any
    /// coordinator crate's constructor).
    ///
    /// Checks the manifest and that every shard file is there and is this
    /// layout's shard at its index; nothing is written.
    pub fn open_with<F>(dir: impl AsRef<Path>, mode: Mode, factory: F) -> Result<Self>
    where
        F: Fn(&Store) -> maph_core::Result<C> + Send + Sync + 'static,
    {
        let dir = dir.as_ref();
        Self::from_manifest(dir, Manifest::read(dir)?, mode, Box::new(factory))
    }

    /// [`open_with`](Self::open_with) after checking the manifest against `expected`.
    pub fn open_expecting_with<F>(dir: impl AsRef<Path>, mode: Mode, expected: &ShardConfig, factory: F) -> Result<Self>
    where
        F: Fn(&Store) -> maph_core::Result<C> + Send + Sync + 'static,
    {
        let dir = dir.as_ref();
        let manifest = Manifest::read(dir)?;
        manifest.check_expected(&manifest_path(dir), expected)?;
        Self::from_manifest(dir, manifest, mode, Box::new(factory))
    }

    /// Opens the shard files `manifest` describes (which may not be on disk yet:
    /// a reshard writes it last).
    pub(crate) fn from_manifest(
        dir: &Path,
        manifest: Manifest,
        mode: Mode,
        factory: CoordinatorFactory<C>,
    ) -> Result<Self> {
        let shards = (0..manifest.shard_count)
            .map(|i| {
                let path = shard_path(dir, i);
                let store = open_shard(&path, &manifest, i, mode)?;
                Ok(Shard { path, store, writer: None })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardedStore { dir: dir.to_path_buf(), router: manifest.router(), manifest, mode, shards, factory })
    }

    /// Claims `shard` for writing through this handle: makes its coordinator
    /// with the factory. With [`SingleWriter`] that takes the shard's lease, and
    /// fails with [`maph_core::Error::WriterBusy`] (naming the owner's pid) while
    /// another process holds it; a lease dies with its process, so the shard of
    /// an owner that crashed can be claimed at once. Claiming a shard this handle
    /// already holds does nothing.
    ///
    /// `WriterBusy` with no pid right after a lease was released means the lease
    /// lingers in a child process that another thread of the releasing process
    /// is spawning: the child holds a copy of every descriptor until it execs
    /// (a few microseconds to milliseconds; maph opens them close-on-exec).
    /// Retry.
    pub fn claim(&mut self, shard: u32) -> Result<&C> {
        let index = self.index(shard)?;
        if self.shards[index].writer.is_none() {
            if self.mode != Mode::ReadWrite {
                return Err(maph_core::Error::ReadOnly.into());
            }
            let store = &self.shards[index].store;
            let writer = (self.factory)(store)?;
            // Refuse here rather than at the first write: a coordinator of another
            // strategy or another store would never be allowed to write this shard.
            store.check_writer(writer.strategy())?;
            if writer.bound_store().is_some_and(|id| id != store.id()) {
                return Err(maph_core::Error::WrongStore.into());
            }
            self.shards[index].writer = Some(writer);
        }
        Ok(self.shards[index].writer.as_ref().expect("claimed above"))
    }

    /// Claims every shard not yet claimed. All or nothing: if one claim fails,
    /// the shards this call claimed are released again and the error returned.
    pub fn claim_all(&mut self) -> Result<()> {
        let mut newly = Vec::new();
        for shard in 0..self.shard_count() {
            if self.is_claimed(shard) {
                continue;
            }
            if let Err(e) = self.claim(shard) {
                for taken in newly {
                    self.release(taken)?;
                }
                return Err(e);
            }
            newly.push(shard);
        }
        Ok(())
    }

    /// Gives up `shard`: drops its coordinator (with [`SingleWriter`], releases
    /// the lease so another process may claim it). Does nothing if not claimed.
    pub fn release(&mut self, shard: u32) -> Result<()> {
        let index = self.index(shard)?;
        let shard = &mut self.shards[index];
        drop(shard.writer.take());
        Ok(())
    }

    /// Whether this handle has claimed `shard`.
    pub fn is_claimed(&self, shard: u32) -> bool {
        self.shards.get(shard as usize).is_some_and(|s| s.writer.is_some())
    }

    /// The shards this handle has claimed, in order.
    pub fn claimed(&self) -> impl Iterator<Item = u32> + '_ {
        self.shards.iter().enumerate().filter(|(_, s)| s.writer.is_some()).map(|(i, _)| i as u32)
    }

    /// The coordinator of `shard`, if this handle claimed it (for its contention figures).
    pub fn coordinator(&self, shard: u32) -> Option<&C> {
        self.shards.get(shard as usize)?.writer.as_ref()
    }

    /// The live process recorded as `shard`'s writer: this one if this handle
    /// claimed it, otherwise the pid the lease holder recorded in the shard's
    /// header, if that process is alive.
    pub fn owner_pid(&self, shard: u32) -> Option<u32> {
        let s = self.shards.get(shard as usize)?;
        if s.writer.is_some() {
            return Some(std::process::id());
        }
        live_owner(&s.store)
    }

    /// The shard `key` belongs to.
    pub fn shard_for(&self, key: &[u8]) -> u32 {
        self.router.route(key)
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.manifest.shard_count
    }

    /// The router (shard count and routing seed) of this store.
    pub fn router(&self) -> Router {
        self.router
    }

    /// What the manifest records.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The directory of this store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How this handle was opened.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The store of shard `shard`, for anything [`Store`] offers (verify, stats, …).
    pub fn shard(&self, shard: u32) -> Result<&Store> {
        Ok(&self.shards[self.index(shard)?].store)
    }

    /// The value stored under `key`, read lock-free from its shard.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.store_for(key).get(key)?)
    }

    /// Copies the value of `key` into `value` (cleared first); returns whether it was found.
    pub fn get_into(&self, key: &[u8], value: &mut Vec<u8>) -> Result<bool> {
        Ok(self.store_for(key).get_into(key, value)?)
    }

    /// Whether `key` is stored.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.store_for(key).contains(key)?)
    }

    /// Live keys over all shards.
    pub fn len(&self) -> u64 {
        self.shards.iter().map(|s| s.store.len()).sum()
    }

    /// Whether no shard holds a key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live `(key, value)`, shard after shard, each read lock-free.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        self.shards.iter().flat_map(|s| s.store.iter().map(|entry| entry.map_err(Error::from)))
    }

    /// Stores `value` under `key`, in the key's shard, which this handle must have claimed.
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let (store, writer) = self.owned(self.shard_for(key))?;
        Ok(store.set(writer, key, value)?)
    }

    /// Removes `key` from its shard, which this handle must have claimed.
    pub fn remove(&self, key: &[u8]) -> Result<()> {
        let (store, writer) = self.owned(self.shard_for(key))?;
        Ok(store.remove(writer, key)?)
    }

    /// Atomically replaces the value of `key` with `f(old)` (`None` removes it),
    /// in the key's shard, which this handle must have claimed.
    pub fn update<F, V>(&self, key: &[u8], f: F) -> Result<()>
    where
        F: FnOnce(Option<&[u8]>) -> Option<V>,
        V: AsRef<[u8]>,
    {
        let (store, writer) = self.owned(self.shard_for(key))?;
        Ok(store.update(writer, key, f)?)
    }

    /// Runs `f` under an exclusive lock of the whole of `shard` and commits what it
    /// recorded, all or nothing. Every key must belong to `shard`
    /// ([`Error::WrongShard`] otherwise): there is no atomic write across shards.
    ///
    /// ```
    /// # use maph_core::Mode;
    /// # use maph_shard::{ShardConfig, ShardedStore};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # ShardedStore::create(dir.path(), &ShardConfig::new(2, 256))?;
    /// let mut store = ShardedStore::open(dir.path(), Mode::ReadWrite)?;
    /// store.claim(0)?;
    /// let keys: Vec<String> =
    ///     (0..).map(|i| format!("k{i}")).filter(|k| store.shard_for(k.as_bytes()) == 0).take(3).collect();
    /// store.write(0, |tx| {
    ///     for k in &keys {
    ///         tx.set(k.as_bytes(), b"1")?;
    ///     }
    ///     Ok(())
    /// })?;
    /// assert_eq!(store.shard(0)?.len(), 3);
    /// # Ok::<(), maph_shard::Error>(())
    /// ```
    pub fn write<F>(&self, shard: u32, f: F) -> Result<()>
    where
        F: FnOnce(&mut ShardTxn<'_, '_>) -> Result<()>,
    {
        let (store, writer) = self.owned(shard)?;
        // maph-core's closure returns its own error type; ours is kept aside and
        // returned in place of the placeholder that makes maph-core abandon the write.
        let mut failure = None;
        let outcome = store.write(writer, |tx| {
            let mut txn = ShardTxn { tx, shard, router: self.router };
            f(&mut txn).map_err(|e| {
                failure = Some(e);
                maph_core::Error::InvalidConfig("write abandoned by its closure".into())
            })
        });
        match (outcome, failure) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(e.into()),
        }
    }

    fn index(&self, shard: u32) -> Result<usize> {
        if shard >= self.shard_count() {
            return Err(Error::NoSuchShard { shard, count: self.shard_count() });
        }
        Ok(shard as usize)
    }

    fn store_for(&self, key: &[u8]) -> &Store {
        &self.shards[self.shard_for(key) as usize].store
    }

    /// The store and coordinator of a shard this handle claimed, or `NotOwner`
    /// (`ReadOnly` for a read-only handle, which could not claim it anyway).
    fn owned(&self, shard: u32) -> Result<(&Store, &C)> {
        let s = &self.shards[self.index(shard)?];
        if self.mode != Mode::ReadWrite {
            return Err(maph_core::Error::ReadOnly.into());
        }
        match &s.writer {
            Some(writer) => Ok((&s.store, writer)),
            None => Err(Error::NotOwner { shard, owner_pid: live_owner(&s.store) }),
        }
    }

    pub(crate) fn shards_with_writers(&self) -> impl Iterator<Item = (u32, &Path, &Store, Option<&C>)> {
        self.shards.iter().enumerate().map(|(i, s)| (i as u32, s.path.as_path(), &s.store, s.writer.as_ref()))
    }
}

impl<C: WriteCoordinator> Drop for ShardedStore<C> {
    fn drop(&mut self) {
        for shard in 0..self.shard_count() {
            let _ = self.release(shard);
        }
    }
}

/// Opens shard `shard` and checks its header against the manifest.
fn open_shard(path: &Path, manifest: &Manifest, shard: u32, mode: Mode) -> Result<Store> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ShardMissing { path: path.to_path_buf(), shard })
        }
        Err(e) => return Err(Error::io(format!("could not stat {}", path.display()), e)),
        Ok(_) => {}
    }
    let store = Store::open(path, mode)?;
    let found = store.layout();
    let want = manifest.shard_layout(shard);
    let foreign = |detail: String| Err(Error::ForeignShard { path: path.to_path_buf(), shard, detail });
    if found.hash_seed != want.hash_seed {
        // A shard of this store at the wrong index, or a file of another store?
        let detail = match (0..manifest.shard_count).find(|&i| manifest.shard_seed(i) == found.hash_seed) {
            Some(other) => format!("its hash seed is that of shard {other} of this store (files swapped or renamed)"),
            None => "its hash seed is not this store's (it belongs to another store)".to_string(),
        };
        return foreign(detail);
    }
    if (found.slot_count, found.slot_size, found.max_probes) != (want.slot_count, want.slot_size, want.max_probes) {
        return foreign(format!(
            "it has {} slots of {} bytes and {} probes, the manifest says {} slots of {} bytes and {} probes",
            found.slot_count, found.slot_size, found.max_probes, want.slot_count, want.slot_size, want.max_probes
        ));
    }
    if found.strategy != want.strategy {
        return foreign(format!("its strategy is `{}`, the manifest says `{}`", found.strategy, want.strategy));
    }
    Ok(store)
}

/// Creates every shard file of `manifest` in `dir` (made if absent), then the
/// manifest if `with_manifest`. On failure removes what it made and returns the error.
pub(crate) fn create_layout(dir: &Path, manifest: &Manifest, with_manifest: bool) -> Result<()> {
    let made_dir = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => false,
        Ok(_) => return Err(Error::InvalidConfig(format!("{} exists and is not a directory", dir.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("could not create {}", dir.display()), e))?;
            true
        }
        Err(e) => return Err(Error::io(format!("could not stat {}", dir.display()), e)),
    };
    let mut made = Vec::new();
    let result = (|| {
        let manifest_file = manifest_path(dir);
        if manifest_file.exists() {
            return Err(Error::AlreadyExists { path: manifest_file });
        }
        for shard in 0..manifest.shard_count {
            let path = shard_path(dir, shard);
            if std::fs::symlink_metadata(&path).is_ok() {
                return Err(Error::AlreadyExists { path });
            }
            let layout = manifest.shard_layout(shard);
            let config = maph_core::Config::new(layout.slot_count)
                .slot_size(layout.slot_size)
                .max_probes(layout.max_probes)
                .hash_seed(layout.hash_seed)
                .strategy(layout.strategy);
            match Store::create(&path, config) {
                Ok(()) => made.push(path),
                // Someone created it between our check and now: theirs, not ours to remove.
                Err(_) if std::fs::symlink_metadata(&path).is_ok() => return Err(Error::AlreadyExists { path }),
                Err(e) => return Err(e.into()),
            }
        }
        if with_manifest {
            manifest.write_new(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        remove_layout_files(dir, &made, made_dir);
    }
    result
}

/// Removes files this process made for a layout, and the
/// directory too if it made it. Best effort: used on paths that already fail.
pub(crate) fn remove_layout_files(dir: &Path, files: &[PathBuf], made_dir: bool) {
    if made_dir {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    for file in files {
        let _ = std::fs::remove_file(file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ShardedStore<SingleWriter>>();
        shareable::<ShardedStore<maph_core::Uncoordinated>>();
    }
}
