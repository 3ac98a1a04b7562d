//! Creating files that other processes may open at any moment.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Creates `path` with the contents `fill` writes, so that no process ever sees
/// it half-written and an existing file is never replaced: the contents go to a
/// temporary sibling, are synced, and the sibling is linked into place
/// (`link(2)` fails if `path` exists, unlike `rename(2)`); the directory entry is
/// synced too. If `path` exists the error is an [`Error::Io`] whose source has
/// the kind [`std::io::ErrorKind::AlreadyExists`]. Nothing is left behind on failure.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("settings.txt");
/// maph_core::create_new_atomically(&path, |file| std::io::Write::write_all(file, b"v=1"))?;
/// assert!(maph_core::create_new_atomically(&path, |_| Ok(())).is_err());
/// # Ok::<(), maph_core::Error>(())
/// ```
pub fn create_new_atomically(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let tmp = temp_sibling(path, "creating");
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| Error::io(format!("could not create {}", tmp.display()), e))?;
        fill(&mut file)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("could not write {} (disk full?)", tmp.display()), e))?;
        link_into_place(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Gives the complete file `tmp` its final name `path`, failing if a file is
/// already there (`link(2)`, unlike `rename(2)`, never replaces one), and makes
/// the new directory entry durable. The caller removes `tmp` afterwards.
pub(crate) fn link_into_place(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::hard_link(tmp, path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} already exists; open it, or remove it first to start over", path.display())
        } else {
            format!("could not create {}", path.display())
        };
        Error::io(what, e)
    })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("could not sync directory {}", dir.display()), e))
}

/// A name beside `path` for a file being built by this process (`what`: what it is doing).
pub(crate) fn temp_sibling(path: &Path, what: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}.{}", std::process::id()));
    PathBuf::from(name)
}
