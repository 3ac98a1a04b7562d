//! Classic POSIX locks, and the process-wide table that makes them safe to use
//! from several coordinators of one process.
//!
//! Classic locks belong to the *process*: the kernel never makes two threads (or
//! two coordinators) of one process wait for each other, their locks merge into
//! one, and closing *any* descriptor of the file drops all of the process's
//! locks on it. So in this process:
//! - every coordinator of one lock file shares one descriptor (closed only when
//!   the last of them is dropped, so no coordinator's close drops another's lock),
//! - and one gate: at most one acquisition at a time holds classic locks on the
//!   file (taken exclusively even for shared access, since two readers' unlocks
//!   would also undo each other). Other processes still share and run in
//!   parallel on different byte ranges.
//!
//! The table is consulted *before* a descriptor of the lock file is opened: an
//! extra descriptor opened and closed while a classic lock is held would drop it.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Weak};

use maph_core::{LocalGate, Result};
use parking_lot::{Mutex, MutexGuard};

use crate::descriptions::{file_id, FileId};

/// This process's one descriptor of a lock file under classic locks, and the
/// gate its acquisitions take turns on.
#[derive(Debug)]
pub(crate) struct ClassicLockFile {
    pub(crate) file: File,
    pub(crate) gate: LocalGate,
}

/// Lock files in classic use by this process. Entries die with their last
/// coordinator (`Weak`) and are pruned when the table is next used.
static TABLE: Mutex<Vec<(FileId, Weak<ClassicLockFile>)>> = Mutex::new(Vec::new());

/// The table, locked: hold it across the whole decision of how to lock a file,
/// so that two coordinators made at once agree.
pub(crate) struct Table(MutexGuard<'static, Vec<(FileId, Weak<ClassicLockFile>)>>);

pub(crate) fn table() -> Table {
    let mut entries = TABLE.lock();
    entries.retain(|(_, weak)| weak.strong_count() > 0);
    Table(entries)
}

impl Table {
    fn find(&self, id: FileId) -> Option<Arc<ClassicLockFile>> {
        self.0.iter().find(|(known, _)| *known == id).and_then(|(_, weak)| weak.upgrade())
    }

    /// The shared classic lock file at `path`, if this process has one, found
    /// without opening the file.
    pub(crate) fn find_path(&self, path: &Path) -> Option<Arc<ClassicLockFile>> {
        let meta = std::fs::metadata(path).ok()?;
        self.find((meta.dev(), meta.ino()))
    }

    /// Shares `file` (just opened, holding no lock) as this process's classic
    /// descriptor of its lock file.
    pub(crate) fn insert(&mut self, file: File, path: &Path) -> Result<Arc<ClassicLockFile>> {
        let id = file_id(&file, path)?;
        if let Some(existing) = self.find(id) {
            // Only if the file at `path` was swapped for one we already use since
            // `find_path`. Closing `file` would drop that entry's locks, so keep
            // the descriptor open for the life of the process instead.
            std::mem::forget(file);
            return Ok(existing);
        }
        let shared = Arc::new(ClassicLockFile { file, gate: LocalGate::new() });
        self.0.push((id, Arc::downgrade(&shared)));
        Ok(shared)
    }
}
