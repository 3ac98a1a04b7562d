//! Rebuilding a store into a fresh file of another size (larger to grow it,
//! sized for its keys to optimize it) while it keeps taking writes, then
//! swapping the new file in.
//!
//! Everything about rebuilds lives here, so it can move into the library as
//! one piece.
//!
//! 1. [`Rebuild::start`] notes the writes the writer thread commits from now on
//!    (the *delta*) and starts a thread that copies every entry of the live store
//!    into a new file under a temporary name in the same directory (so the final
//!    rename stays on one file system and is atomic). The copy reads lock-free,
//!    so the writer thread goes on committing meanwhile.
//! 2. When the copy is done, the writer thread, between two commits,
//!    [`complete`](Rebuild::complete)s it: it replays the delta onto the copy in
//!    commit order. A key no write touched during the copy was copied with its
//!    one value; a key a write touched is in the delta, whose last write decides
//!    its final value whatever the copy saw. The copy then holds exactly the
//!    live store's entries, and nothing is committed before the swap.
//! 3. [`swap`] renames the new file over the old one, moves the single-writer
//!    lease to it without releasing it, and the old mapping is marked retired so
//!    readers in other processes reopen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{bounded, Receiver};
use maph_core::{Config, Error, Layout, Mode, SingleWriter, Store};
use serde::Serialize;

use crate::writer::WriteOp;

/// A store whose keys pass this share of its slots is grown.
pub(crate) const GROW_AT_LOAD: f64 = 0.5;
/// Load factor of a grown store (so it doubles when growth starts at 0.5).
const GROWN_LOAD: f64 = 0.25;
/// Load factor of an optimized store: below the growth threshold, so new keys
/// have room before the next growth.
const OPTIMIZED_LOAD: f64 = 0.4;
/// Fewest slots a rebuilt store gets.
const MIN_SLOTS: u64 = 64;
/// Entries copied or replayed per commit: bounds the memory a commit holds.
const COPY_CHUNK: usize = 1024;
/// Copy attempts (each with twice the slots) before giving up on a pathological key set.
const ATTEMPTS: u32 = 4;

/// What a rebuild did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OptimizeReport {
    /// Keys in the new file.
    pub keys: u64,
    /// Slots of the old file.
    pub slots_before: u64,
    /// Slots of the new file.
    pub slots_after: u64,
    /// Size of the old file in bytes.
    pub bytes_before: u64,
    /// Size of the new file in bytes.
    pub bytes_after: u64,
}

/// Why a store is rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Larger, because it is filling up.
    Grow,
    /// Sized for its keys, because a client asked.
    Optimize,
}

/// Slots of an optimized store holding `keys` keys.
pub(crate) fn optimized_slots(keys: u64, layout: &Layout) -> u64 {
    slots_at_load(keys, OPTIMIZED_LOAD).max(u64::from(layout.max_probes))
}

/// Slots of a grown store that must hold `keys` keys; at least twice `slots`.
pub(crate) fn grown_slots(keys: u64, slots: u64) -> u64 {
    slots_at_load(keys, GROWN_LOAD).max(slots.saturating_mul(2))
}

/// Whether a store of `slots` slots holding `keys` keys should grow.
pub(crate) fn wants_growth(keys: u64, slots: u64) -> bool {
    keys as f64 >= slots as f64 * GROW_AT_LOAD
}

fn slots_at_load(keys: u64, load: f64) -> u64 {
    ((keys as f64 / load).ceil() as u64).max(MIN_SLOTS)
}

/// Size in bytes of a store of `layout`'s geometry with `slots` slots.
pub(crate) fn file_bytes(layout: &Layout, slots: u64) -> u64 {
    Layout { slot_count: slots, ..*layout }.file_len().unwrap_or(u64::MAX)
}

/// Where the rebuild of the store at `path` is built.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".rebuilding");
    PathBuf::from(name)
}

/// A finished copy, not yet holding the delta.
pub(crate) struct Copied {
    path: PathBuf,
    slots: u64,
}

/// A rebuild under way: the copy thread and the writes committed since it began.
pub(crate) struct Rebuild {
    pub purpose: Purpose,
    layout: Layout,
    bytes_before: u64,
    delta: Vec<WriteOp>,
    cancel: Arc<AtomicBool>,
    done: Receiver<Result<Copied, Error>>,
    thread: Option<JoinHandle<()>>,
}

impl Rebuild {
    /// Starts copying `from` into a new file of `slots` slots. From now on the
    /// writer thread must [`record`](Self::record) every write it commits.
    pub fn start(from: Arc<Store>, slots: u64, purpose: Purpose) -> Result<Rebuild, Error> {
        let layout = from.layout();
        let bytes_before = from.stats().file_bytes;
        let cancel = Arc::new(AtomicBool::new(false));
        let (report, done) = bounded(1);
        let stop = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("maph-rebuild".into())
            .spawn(move || {
                let _ = report.send(copy_with_retries(&from, slots, &stop));
            })
            .map_err(|e| Error::io("could not start a rebuild thread", e))?;
        Ok(Rebuild { purpose, layout, bytes_before, delta: Vec::new(), cancel, done, thread: Some(thread) })
    }

    /// Notes writes just committed to the live store.
    pub fn record<'a>(&mut self, ops: impl IntoIterator<Item = &'a WriteOp>) {
        self.delta.extend(ops.into_iter().cloned());
    }

    /// Where the copy thread reports; one message, then it ends.
    pub fn done(&self) -> &Receiver<Result<Copied, Error>> {
        &self.done
    }

    /// Waits for the copy thread (blocking).
    pub fn wait(&mut self) -> Result<Copied, Error> {
        let copied = self.done.recv().unwrap_or_else(|_| Err(copy_thread_died()));
        self.join();
        copied
    }

    /// Replays the delta onto a finished copy: the returned file holds exactly
    /// the live store's entries. Call it on the writer thread, between commits.
    pub fn complete(mut self, copied: Copied) -> Result<Ready, Error> {
        self.join();
        let filled = replay(&copied.path, &self.delta);
        match filled {
            Ok(keys) => Ok(Ready {
                path: copied.path,
                report: OptimizeReport {
                    keys,
                    slots_before: self.layout.slot_count,
                    slots_after: copied.slots,
                    bytes_before: self.bytes_before,
                    bytes_after: file_bytes(&self.layout, copied.slots),
                },
            }),
            Err(e) => {
                remove_temp(&copied.path);
                Err(e)
            }
        }
    }

    /// Stops the copy and removes what it made (blocking).
    pub fn abandon(mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Ok(Ok(copied)) = self.done.recv() {
            remove_temp(&copied.path);
        }
        self.join();
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Rebuild {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.cancel.store(true, Ordering::Relaxed);
            if let Ok(Ok(copied)) = self.done.recv() {
                remove_temp(&copied.path);
            }
            self.join();
        }
    }
}

/// A complete new file, ready to be swapped in.
pub(crate) struct Ready {
    path: PathBuf,
    pub report: OptimizeReport,
}

impl Ready {
    /// Removes the file (a swap that is not going to happen).
    pub fn discard(self) {
        remove_temp(&self.path);
    }
}

/// What [`swap`] leaves the writer with.
pub(crate) enum Swapped {
    /// The new file is in place, with its own lease; the old lease is released.
    Done { store: Store, lease: SingleWriter },
    /// Nothing changed: the old file is still in place and its lease held.
    Refused { lease: SingleWriter, error: Error },
}

/// Puts `ready` at `store`'s path, moving the writer role with it. A lease
/// belongs to a file, not to a path, so the new file's lease is taken before
/// the rename and the old one is kept until the rename is done: no other
/// writer can slip in between. `patience` is the read patience of the
/// returned handle.
pub(crate) fn swap(store: &Store, lease: SingleWriter, ready: Ready, patience: std::time::Duration) -> Swapped {
    let swapped = Store::open(&ready.path, Mode::ReadWrite).and_then(|new_store| {
        let new_lease = SingleWriter::new(&new_store)?;
        Ok((store.swap_in(new_store.with_read_patience(patience))?, new_lease))
    });
    match swapped {
        Ok((store, new_lease)) => {
            drop(lease);
            Swapped::Done { store, lease: new_lease }
        }
        Err(error) => {
            ready.discard();
            Swapped::Refused { lease, error }
        }
    }
}

/// Copies `from` into a new store of `slots` slots (twice as many after an
/// unlucky cluster, up to [`ATTEMPTS`] times).
fn copy_with_retries(from: &Store, mut slots: u64, cancel: &AtomicBool) -> Result<Copied, Error> {
    let layout = from.layout();
    let tmp = temp_path(from.path());
    let mut attempt = 1;
    loop {
        // A leftover from a server that died mid-rebuild: only the lease holder
        // (us) ever writes this path, so it is safe to discard.
        remove_temp(&tmp);
        let config =
            Config::new(slots).slot_size(layout.slot_size).max_probes(layout.max_probes).strategy(layout.strategy);
        match copy_into(from, &tmp, config, cancel) {
            Ok(()) => return Ok(Copied { path: tmp, slots }),
            Err(Error::TableFull { .. }) if attempt < ATTEMPTS => {
                slots = slots.saturating_mul(2);
                attempt += 1;
            }
            Err(e) => {
                remove_temp(&tmp);
                return Err(e);
            }
        }
    }
}

/// Creates a store at `tmp` with `config` and copies every entry of `from` into it.
fn copy_into(from: &Store, tmp: &Path, config: Config, cancel: &AtomicBool) -> Result<(), Error> {
    Store::create(tmp, config)?;
    let to = Store::open(tmp, Mode::ReadWrite)?;
    let writer = SingleWriter::new(&to)?;
    let mut chunk = Vec::with_capacity(COPY_CHUNK);
    let commit = |chunk: &mut Vec<(Vec<u8>, Vec<u8>)>| -> Result<(), Error> {
        to.write(&writer, |tx| chunk.iter().try_for_each(|(k, v)| tx.set(k, v)))?;
        chunk.clear();
        Ok(())
    };
    for entry in from.iter() {
        match entry {
            Ok(entry) => chunk.push(entry),
            // A slot mid-write for longer than the read patience: its key is
            // being written, so the delta brings it.
            Err(Error::SlotBusy { .. }) => continue,
            Err(e) => return Err(e),
        }
        if chunk.len() == COPY_CHUNK {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::io("the rebuild was cancelled", std::io::Error::other("cancelled")));
            }
            commit(&mut chunk)?;
        }
    }
    commit(&mut chunk)?;
    drop(writer);
    Ok(())
}

/// Applies `delta` to the store at `path` in order; returns its key count.
fn replay(path: &Path, delta: &[WriteOp]) -> Result<u64, Error> {
    let to = Store::open(path, Mode::ReadWrite)?;
    let writer = SingleWriter::new(&to)?;
    for chunk in delta.chunks(COPY_CHUNK) {
        to.write(&writer, |tx| {
            chunk.iter().try_for_each(|op| match op {
                WriteOp::Set { key, value } => tx.set(key, value),
                WriteOp::Remove { key } => tx.remove(key),
            })
        })?;
    }
    to.flush()?;
    let keys = to.len();
    drop(writer);
    Ok(keys)
}

fn remove_temp(tmp: &Path) {
    let _ = std::fs::remove_file(tmp);
}

fn copy_thread_died() -> Error {
    Error::io("the rebuild thread ended without a result", std::io::Error::other("rebuild thread died"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(dir: &Path, slots: u64, keys: u64) -> (Arc<Store>, SingleWriter) {
        let path = dir.join("s.maph");
        Store::create(&path, Config::new(slots)).unwrap();
        let store = Arc::new(Store::open(&path, Mode::ReadWrite).unwrap());
        let writer = SingleWriter::new(&store).unwrap();
        store
            .write(&writer, |tx| {
                (0..keys).try_for_each(|i| tx.set(format!("k{i}").as_bytes(), format!("{i}").as_bytes()))
            })
            .unwrap();
        (store, writer)
    }

    #[test]
    fn a_rebuild_holds_the_copy_and_every_write_of_its_delta() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _writer) = filled(dir.path(), 20_000, 3000);
        let mut rebuild = Rebuild::start(store.clone(), 3000, Purpose::Optimize).unwrap();
        // Writes committed while the copy runs (the live store is not touched
        // here: the delta alone must bring them).
        let delta = [
            WriteOp::Set { key: b"k1".to_vec(), value: b"changed".to_vec() },
            WriteOp::Remove { key: b"k2".to_vec() },
            WriteOp::Set { key: b"new".to_vec(), value: b"n".to_vec() },
            WriteOp::Remove { key: b"never-there".to_vec() },
        ];
        rebuild.record(&delta);
        let copied = rebuild.wait().unwrap();
        let ready = rebuild.complete(copied).unwrap();
        assert_eq!(ready.report.keys, 3000);
        assert_eq!(ready.report.slots_before, 20_000);
        assert!(ready.report.slots_after >= 6000, "a copy that did not fit was retried larger: {:?}", ready.report);
        let copy = Store::open(&ready.path, Mode::ReadOnly).unwrap();
        assert_eq!(copy.get(b"k1").unwrap(), Some(b"changed".to_vec()));
        assert_eq!(copy.get(b"k2").unwrap(), None);
        assert_eq!(copy.get(b"new").unwrap(), Some(b"n".to_vec()));
        assert_eq!(copy.get(b"k2999").unwrap(), Some(b"2999".to_vec()));
        ready.discard();
    }

    #[test]
    fn an_abandoned_rebuild_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _writer) = filled(dir.path(), 1000, 100);
        Rebuild::start(store.clone(), 1000, Purpose::Grow).unwrap().abandon();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().contains("rebuilding")), "{names:?}");
    }

    #[test]
    fn sizes() {
        assert!(wants_growth(5000, 10_000) && !wants_growth(4999, 10_000));
        assert_eq!(grown_slots(5000, 10_000), 20_000);
        assert_eq!(grown_slots(100, 10_000), 20_000, "at least double");
        assert_eq!(slots_at_load(0, OPTIMIZED_LOAD), MIN_SLOTS);
        assert_eq!(slots_at_load(400, OPTIMIZED_LOAD), 1000);
        assert!(!wants_growth(400, slots_at_load(400, OPTIMIZED_LOAD)), "an optimized store does not grow at once");
    }
}
