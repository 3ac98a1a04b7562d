//! The `<store>.lock` file beside a store: what lease- and file-lock-based
//! coordinators lock, and where a lease holder leaves its pid for error messages.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The lock file of the store at `store_path`: the same path with `.lock` appended.
///
/// ```
/// use std::path::Path;
/// assert_eq!(maph_core::lock_path(Path::new("/data/users.maph")), Path::new("/data/users.maph.lock"));
/// ```
pub fn lock_path(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Opens (creating if needed) the lock file at `path`, with an error that says
/// what to do when that is not allowed. The file is never deleted: unlinking a
/// lock file while another process waits on it would let two holders in.
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

/// Records this process's pid in a lock file it holds.
pub fn write_pid(file: &mut File) -> Result<()> {
    let pid = std::process::id().to_string();
    file.set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(pid.as_bytes()))
        .map_err(|e| Error::io("could not record the writer's pid in the lock file", e))
}

/// The pid recorded in a lock file, if it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
