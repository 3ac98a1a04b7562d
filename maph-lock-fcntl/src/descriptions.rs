//! A pool of open file descriptions of the store file: how threads of one process
//! exclude each other under OFD locks while writers of different keys still run
//! in parallel.
//!
//! OFD locks belong to the open file description. Two descriptions conflict
//! like two processes, even inside one process; one description never conflicts
//! with itself, and its locks merge and split by byte. So every acquisition in
//! flight gets a description of its own: the kernel then does all the excluding
//! (processes and threads alike, per byte range, readers and writers), and one
//! acquisition's unlock can never drop another's lock. The alternative, one
//! description plus an in-process table of held ranges, would repeat the
//! kernel's conflict rules in user space and still need reference counts for
//! overlapping shared ranges.
//!
//! Descriptions are reused: the pool grows to the number of acquisitions this
//! process has in flight at once (holders and waiters), one file descriptor each.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use maph_core::{reopen_description, Error, Result};
use parking_lot::Mutex;

/// (device, inode): which file a descriptor refers to.
pub(crate) type FileId = (u64, u64);

pub(crate) fn file_id(file: &File, path: &Path) -> Result<FileId> {
    let meta = file.metadata().map_err(|e| Error::io(format!("could not stat {}", path.display()), e))?;
    Ok((meta.dev(), meta.ino()))
}

pub(crate) struct Descriptions {
    /// The store's path, for messages.
    path: PathBuf,
    pool: Mutex<Pool>,
}

struct Pool {
    /// Every description opened, at its index (the ticket's `private` word).
    files: Vec<Arc<File>>,
    /// Indices of descriptions holding no lock.
    idle: Vec<usize>,
}

impl std::fmt::Debug for Descriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pool = self.pool.lock();
        f.debug_struct("Descriptions").field("open", &pool.files.len()).field("idle", &pool.idle.len()).finish()
    }
}

impl Descriptions {
    /// A pool starting with `first`, an open description of the store file at `path`.
    pub(crate) fn new(path: &Path, first: File) -> Descriptions {
        Descriptions {
            path: path.to_path_buf(),
            pool: Mutex::new(Pool { files: vec![Arc::new(first)], idle: vec![0] }),
        }
    }

    /// An idle description (opening one if none is idle) and its index.
    pub(crate) fn check_out(&self) -> Result<(usize, Arc<File>)> {
        let first = {
            let mut pool = self.pool.lock();
            if let Some(index) = pool.idle.pop() {
                return Ok((index, pool.files[index].clone()));
            }
            pool.files[0].clone()
        };
        // Open outside the mutex: other threads keep checking in and out meanwhile.
        // A description of the very file the first one refers to, whatever its
        // path is now, so every lock of the pool is on one file.
        let file = Arc::new(reopen_description(&first, &self.path)?);
        let mut pool = self.pool.lock();
        pool.files.push(file.clone());
        Ok((pool.files.len() - 1, file))
    }

    /// The description at `index`.
    pub(crate) fn get(&self, index: usize) -> Arc<File> {
        self.pool.lock().files[index].clone()
    }

    /// Returns a description that holds no lock to the idle set.
    pub(crate) fn check_in(&self, index: usize) {
        self.pool.lock().idle.push(index);
    }

    /// How many descriptions are open.
    pub(crate) fn open_count(&self) -> usize {
        self.pool.lock().files.len()
    }
}
