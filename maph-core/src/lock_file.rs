//! Files that locks are taken on.
//!
//! Locks that belong to an open file description (`flock`, Linux OFD `fcntl`
//! locks) are taken on the store file itself, through a description of their
//! own ([`Store::lock_description`](crate::Store::lock_description)): every path
//! that reaches the file reaches the same inode and so the same lock. Classic
//! `fcntl` locks cannot live on the store file (the kernel drops them when the
//! process closes *any* descriptor of it), so they use a lock file of their
//! own, opened with [`open_lock_file`].

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::{Error, Result};

/// Opens (creating if needed) the lock file at `path`, with an error that says
/// what to do when that is not allowed. A lock file is never deleted: unlinking
/// it while another process waits on it would let two holders in.
pub fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied: run as a user who may write beside the store, or create the lock file with suitable permissions"
                }
                std::io::ErrorKind::NotFound => "its directory does not exist",
                _ => "check that the directory is writable",
            };
            Error::io(format!("could not open lock file {} ({hint})", path.display()), e)
        })
}

/// A new open file description (read-write) of the very file `file` refers to,
/// whatever its path is now: through `/proc/self/fd`, or, where `/proc` is not
/// mounted, by opening `path` and checking that it is still the same file. For
/// coordinators that need several descriptions of a store file (OFD locks
/// belong to a description); the first comes from [`Store::lock_description`](crate::Store::lock_description).
pub fn reopen_description(file: &File, path: &Path) -> Result<File> {
    let through_proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    let open = |p: &Path| OpenOptions::new().read(true).write(true).open(p);
    if let Ok(reopened) = open(Path::new(&through_proc)) {
        return Ok(reopened);
    }
    let reopened =
        open(path).map_err(|e| Error::io(format!("could not open {} again to lock it", path.display()), e))?;
    let same = |f: &File| f.metadata().map(|m| (m.dev(), m.ino()));
    match (same(file), same(&reopened)) {
        (Ok(a), Ok(b)) if a == b => Ok(reopened),
        (Ok(_), Ok(_)) => Err(Error::Coordination {
            strategy: crate::Strategy::new("lock"),
            detail: format!(
                "{} is no longer the file this store was opened from (it was replaced, and /proc is not mounted \
                 to reach the old one): reopen the store",
                path.display()
            ),
        }),
        (Err(e), _) | (_, Err(e)) => Err(Error::io(format!("could not stat {}", path.display()), e)),
    }
}
