//! Rebuilding a store into a fresh file sized for its keys.
//!
//! The rebuilt file is made under a temporary name in the same directory (so the
//! final rename stays on one file system and is atomic), filled from the old
//! store, and only then swapped in by the writer thread.

use std::path::{Path, PathBuf};

use maph_core::{Config, Error, Mode, SingleWriter, Store};
use serde::Serialize;

/// Target load factor of a rebuilt store: half full, so its keys find room in
/// their probe windows and new keys have space to come.
const TARGET_KEYS_PER_SLOT: u64 = 2;
/// Fewest slots a rebuilt store gets.
const MIN_SLOTS: u64 = 64;
/// Entries copied per commit: bounds the memory a commit holds.
const COPY_CHUNK: usize = 1024;
/// Attempts (each with twice the slots) before giving up on a pathological key set.
const ATTEMPTS: u32 = 4;

/// What an optimize did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OptimizeReport {
    /// Keys copied into the new file.
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

/// Where the rebuild of the store at `path` is built.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".optimizing");
    PathBuf::from(name)
}

/// Builds a copy of `store` sized for its keys at a temporary path and returns
/// that path. The caller (holding the writer role, so nothing changes meanwhile)
/// swaps it in. Leaves nothing behind on failure.
pub(crate) fn rebuild(store: &Store) -> Result<(PathBuf, OptimizeReport), Error> {
    let layout = store.layout();
    let tmp = temp_path(store.path());
    let mut slots = store.len().saturating_mul(TARGET_KEYS_PER_SLOT).max(MIN_SLOTS).max(u64::from(layout.max_probes));
    let mut attempt = 1;
    loop {
        // A leftover from a server that died mid-optimize: only the lease holder
        // (us) ever writes this path, so it is safe to discard.
        remove_temp(&tmp);
        let config =
            Config::new(slots).slot_size(layout.slot_size).max_probes(layout.max_probes).strategy(layout.strategy);
        match copy_into(store, &tmp, config) {
            Ok(keys) => {
                let bytes_after =
                    std::fs::metadata(&tmp).map_err(|e| Error::io("could not stat the rebuilt store", e))?;
                let report = OptimizeReport {
                    keys,
                    slots_before: layout.slot_count,
                    slots_after: slots,
                    bytes_before: store.stats().file_bytes,
                    bytes_after: bytes_after.len(),
                };
                return Ok((tmp, report));
            }
            Err(Error::TableFull { .. }) if attempt < ATTEMPTS => {
                // Unlucky clustering: try again with room to spare.
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
fn copy_into(from: &Store, tmp: &Path, config: Config) -> Result<u64, Error> {
    Store::create(tmp, config)?;
    let to = Store::open(tmp, Mode::ReadWrite)?;
    let writer = SingleWriter::new(&to)?;
    let mut chunk = Vec::with_capacity(COPY_CHUNK);
    let mut copied = 0u64;
    let mut commit = |chunk: &mut Vec<(Vec<u8>, Vec<u8>)>| -> Result<(), Error> {
        to.write(&writer, |tx| chunk.iter().try_for_each(|(k, v)| tx.set(k, v)))?;
        copied += chunk.len() as u64;
        chunk.clear();
        Ok(())
    };
    for entry in from.iter() {
        chunk.push(entry?);
        if chunk.len() == COPY_CHUNK {
            commit(&mut chunk)?;
        }
    }
    commit(&mut chunk)?;
    to.flush()?;
    drop(writer);
    Ok(copied)
}

fn remove_temp(tmp: &Path) {
    let _ = std::fs::remove_file(tmp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuild_copies_every_entry_into_a_smaller_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.maph");
        Store::create(&path, Config::new(20_000)).unwrap();
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        let writer = SingleWriter::new(&store).unwrap();
        store
            .write(&writer, |tx| {
                (0..3000).try_for_each(|i| tx.set(format!("k{i}").as_bytes(), format!("{i}").as_bytes()))
            })
            .unwrap();
        let (tmp, report) = rebuild(&store).unwrap();
        assert_eq!(report.keys, 3000);
        assert_eq!(report.slots_before, 20_000);
        assert!(report.slots_after >= 6000 && report.slots_after < 20_000, "{report:?}");
        let copy = Store::open(&tmp, Mode::ReadOnly).unwrap();
        assert_eq!(copy.len(), 3000);
        for i in 0..3000 {
            assert_eq!(copy.get(format!("k{i}").as_bytes()).unwrap(), Some(format!("{i}").into_bytes()));
        }
    }

    #[test]
    fn rebuild_of_an_empty_store_gets_the_minimum_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.maph");
        Store::create(&path, Config::new(1000)).unwrap();
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        let (_tmp, report) = rebuild(&store).unwrap();
        assert_eq!((report.keys, report.slots_after), (0, MIN_SLOTS));
    }
}
