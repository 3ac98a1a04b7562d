//! Offline resharding: copy every entry of a layout into a new layout with
//! another shard count, verify, and only then make the new layout openable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maph_core::{LockScope, Mode, SingleWriter, Store, WriteCoordinator};

use crate::manifest::{manifest_path, shard_path, Manifest};
use crate::store::{create_layout, remove_layout_files};
use crate::{Error, Result, ShardedStore};

/// Copies the sharded store in `from` into a new layout of `shard_count` shards
/// in `to`, with the defaults of [`Reshard`] (single-writer shards, same slots
/// per shard, every value verified).
///
/// ```
/// use maph_core::Mode;
/// use maph_shard::{reshard, ShardConfig, ShardedStore};
/// # let tmp = tempfile::tempdir().unwrap();
/// # let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
/// ShardedStore::create(&old, &ShardConfig::new(4, 1024))?;
/// {
///     let mut store = ShardedStore::open(&old, Mode::ReadWrite)?;
///     store.claim_all()?;
///     for i in 0..500 {
///         store.set(format!("key:{i}").as_bytes(), b"v")?;
///     }
/// } // writers stop (their leases are released) before resharding
///
/// let report = reshard(&old, &new, 7)?;
/// assert_eq!(report.entries, 500);
/// assert!(report.moved_fraction() < 0.6); // jump hash: about 3/7 move, not 6/7
/// assert_eq!(ShardedStore::open(&new, Mode::ReadOnly)?.len(), 500);
/// assert_eq!(ShardedStore::open(&old, Mode::ReadOnly)?.len(), 500); // old layout untouched
/// # Ok::<(), maph_shard::Error>(())
/// ```
pub fn reshard(from: impl AsRef<Path>, to: impl AsRef<Path>, shard_count: u32) -> Result<ReshardReport> {
    Reshard::new(shard_count).run(from, to)
}

/// An offline reshard, configured step by step; see [`reshard`].
///
/// What it does, in order:
/// 1. Refuses an invalid new configuration, with nothing written.
/// 2. Opens the old layout and claims every shard, then holds each shard's
///    whole-store lock until it is done, so no writer can change the old layout
///    during the copy. With single-writer shards a live owner makes the claim
///    fail ([`maph_core::Error::WriterBusy`]): stop the writers first.
///    (Claiming repairs slots a crashed writer left half-written, as any writer
///    would; nothing else in the old layout changes.)
/// 3. Refuses a target directory that exists and is not empty; creates it
///    otherwise, then creates the new shard files, without a manifest.
/// 4. Copies every entry to its shard under the new shard count (same routing
///    seed, so jump hashing moves only a fraction `1 − old/new` of the keys
///    when growing).
/// 5. Verifies: the number of entries in every new shard, by its header and by
///    reading it, and (unless turned off) that every old key reads back its value.
/// 6. Writes the new manifest, and opens the new layout once more as a reader would.
///
/// If any step after 3 fails, the new layout is removed (the directory too if
/// the reshard made it) and the error returned; the old layout is never written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reshard {
    shard_count: u32,
    slots_per_shard: Option<u64>,
    verify_values: bool,
}

/// What a reshard did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReshardReport {
    /// Shards of the old layout.
    pub from_shards: u32,
    /// Shards of the new layout.
    pub to_shards: u32,
    /// Entries copied (all of them).
    pub entries: u64,
    /// Entries whose shard index changed.
    pub moved: u64,
    /// Entries per new shard.
    pub per_shard: Vec<u64>,
    /// The new layout's manifest.
    pub manifest: Manifest,
    /// How long the copy and verification took.
    pub elapsed: Duration,
}

impl ReshardReport {
    /// Moved entries over all entries (0 for an empty store).
    pub fn moved_fraction(&self) -> f64 {
        if self.entries == 0 {
            return 0.0;
        }
        self.moved as f64 / self.entries as f64
    }
}

impl std::fmt::Display for ReshardReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resharded {} -> {} shards: {} entries, {} moved ({:.1} %), per shard {:?}, in {:?}",
            self.from_shards,
            self.to_shards,
            self.entries,
            self.moved,
            100.0 * self.moved_fraction(),
            self.per_shard,
            self.elapsed
        )
    }
}

impl Reshard {
    /// A reshard into `shard_count` shards, keeping the old slots per shard and
    /// verifying every value.
    pub fn new(shard_count: u32) -> Reshard {
        Reshard { shard_count, slots_per_shard: None, verify_values: true }
    }

    /// Gives every new shard `slots` slots (for example to keep the total
    /// capacity when the shard count changes).
    pub fn slots_per_shard(mut self, slots: u64) -> Reshard {
        self.slots_per_shard = Some(slots);
        self
    }

    /// Whether to read back every value after the copy (default on); counting
    /// the entries is always done.
    pub fn verify_values(mut self, verify: bool) -> Reshard {
        self.verify_values = verify;
        self
    }

    /// Runs the reshard on single-writer shards.
    pub fn run(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<ReshardReport> {
        self.run_with(from, to, SingleWriter::new)
    }

    /// Runs the reshard on shards coordinated by `factory`'s coordinators (the
    /// strategy the old layout records; the new one records the same).
    pub fn run_with<C, F>(&self, from: impl AsRef<Path>, to: impl AsRef<Path>, factory: F) -> Result<ReshardReport>
    where
        C: WriteCoordinator,
        F: Fn(&Store) -> maph_core::Result<C> + Send + Sync + 'static,
    {
        let (from, to) = (from.as_ref(), to.as_ref());
        let started = Instant::now();
        let factory = Arc::new(factory);

        // Judge the new configuration before claiming (or writing) anything.
        let old_manifest = Manifest::read(from)?;
        let slots = self.slots_per_shard.unwrap_or(old_manifest.slots_per_shard);
        old_manifest.resharded(self.shard_count, slots).config().validate(to)?;

        let make = Arc::clone(&factory);
        let mut source = ShardedStore::open_with(from, Mode::ReadWrite, move |s| make(s))?;
        // Derived from what was opened, so the copy routes by the layout it reads.
        let new_manifest = source.manifest().resharded(self.shard_count, slots);
        source.claim_all()?;
        let _frozen = (0..source.shard_count())
            .map(|i| source.coordinator(i).expect("claimed above").lock_exclusive(LockScope::Whole))
            .collect::<maph_core::Result<Vec<_>>>()?;

        let made_dir = prepare_target(to)?;
        create_layout(to, &new_manifest, false).inspect_err(|_| {
            if made_dir {
                let _ = std::fs::remove_dir_all(to);
            }
        })?;
        let outcome = self.copy_and_verify(&source, to, new_manifest, factory, started);
        if outcome.is_err() {
            let mut ours: Vec<PathBuf> = (0..new_manifest.shard_count).map(|i| shard_path(to, i)).collect();
            ours.push(manifest_path(to));
            remove_layout_files(to, &ours, made_dir);
        }
        outcome
    }

    fn copy_and_verify<C, F>(
        &self,
        source: &ShardedStore<C>,
        to: &Path,
        manifest: Manifest,
        factory: Arc<F>,
        started: Instant,
    ) -> Result<ReshardReport>
    where
        C: WriteCoordinator,
        F: Fn(&Store) -> maph_core::Result<C> + Send + Sync + 'static,
    {
        let verify_failed = |detail: String| Error::ReshardVerify { path: to.to_path_buf(), detail };
        let mut target = ShardedStore::from_manifest(to, manifest, Mode::ReadWrite, Box::new(move |s| factory(s)))?;
        target.claim_all()?;

        let mut entries = 0u64;
        let mut moved = 0u64;
        let mut per_shard = vec![0u64; manifest.shard_count as usize];
        for old_shard in 0..source.shard_count() {
            for entry in source.shard(old_shard)?.iter() {
                let (key, value) = entry?;
                let routed = source.shard_for(&key);
                if routed != old_shard {
                    return Err(verify_failed(format!(
                        "key {} is stored in old shard {old_shard} but routes to shard {routed}: \
                         the old layout is damaged (run Store::verify on its shards)",
                        show_key(&key)
                    )));
                }
                let new_shard = target.shard_for(&key);
                target.set(&key, &value)?;
                entries += 1;
                moved += u64::from(new_shard != old_shard);
                per_shard[new_shard as usize] += 1;
            }
        }

        for shard in 0..target.shard_count() {
            let store = target.shard(shard)?;
            let read = store.iter().try_fold(0u64, |n, entry| entry.map(|_| n + 1))?;
            let expected = per_shard[shard as usize];
            if store.len() != expected || read != expected {
                return Err(verify_failed(format!(
                    "new shard {shard} should hold {expected} entries; its header says {} and reading it finds {read}",
                    store.len()
                )));
            }
        }
        if self.verify_values {
            for entry in source.iter() {
                let (key, value) = entry?;
                if target.get(&key)?.as_deref() != Some(value.as_slice()) {
                    return Err(verify_failed(format!("key {} does not read back its value", show_key(&key))));
                }
            }
        }
        drop(target); // releases the new shards' leases before the layout goes live

        manifest.write_new(to)?;
        let reopened = ShardedStore::open_expecting(to, Mode::ReadOnly, &manifest.config())?;
        if reopened.len() != entries {
            return Err(verify_failed(format!("reopened, it holds {} entries, not {entries}", reopened.len())));
        }
        Ok(ReshardReport {
            from_shards: source.shard_count(),
            to_shards: manifest.shard_count,
            entries,
            moved,
            per_shard,
            manifest,
            elapsed: started.elapsed(),
        })
    }
}

/// Checks that `to` is absent or an empty directory; creates it if absent.
/// Returns whether it created it.
fn prepare_target(to: &Path) -> Result<bool> {
    match std::fs::read_dir(to) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::TargetNotEmpty { path: to.to_path_buf() });
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(to).map_err(|e| Error::io(format!("could not create {}", to.display()), e))?;
            Ok(true)
        }
        Err(e) if to.exists() && !to.is_dir() => {
            Err(Error::io(format!("{} exists and is not a directory; reshard into a new directory", to.display()), e))
        }
        Err(e) => Err(Error::io(format!("could not read directory {}", to.display()), e)),
    }
}

/// A key for an error message: text if it is text, else hex; at most 64 bytes.
fn show_key(key: &[u8]) -> String {
    let shown = &key[..key.len().min(64)];
    let more = if key.len() > 64 { "…" } else { "" };
    match std::str::from_utf8(shown) {
        Ok(text) => format!("{text:?}{more}"),
        Err(_) => format!("0x{}{more}", shown.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}
