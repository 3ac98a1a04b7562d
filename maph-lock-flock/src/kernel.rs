//! The flock(2) calls (through fs2), with `EINTR` retried and failures explained.
//!
//! A flock lock belongs to the *open file description*: every call here acts on
//! the one description behind `file`, and only the coordinator that owns it may
//! call them (see `coordinator.rs` for how its threads share it).

use std::fs::File;
use std::io;
use std::path::Path;

use fs2::FileExt;
use maph_core::{Access, Error, Strategy};

/// Takes the lock if it is free now. `Ok(false)`: another description holds a
/// conflicting lock.
pub(crate) fn try_lock(file: &File, access: Access) -> io::Result<bool> {
    loop {
        let attempt = match access {
            Access::Exclusive => FileExt::try_lock_exclusive(file),
            Access::Shared => FileExt::try_lock_shared(file),
        };
        match attempt {
            Ok(()) => return Ok(true),
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => return Ok(false),
            // A signal handler ran; the lock was not taken, so ask again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Takes the lock, sleeping in the kernel until it is free.
pub(crate) fn lock_blocking(file: &File, access: Access) -> io::Result<()> {
    loop {
        let attempt = match access {
            Access::Exclusive => FileExt::lock_exclusive(file),
            Access::Shared => FileExt::lock_shared(file),
        };
        match attempt {
            // A signal interrupted the wait (handlers without SA_RESTART): wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Drops whatever lock the description holds.
pub(crate) fn unlock(file: &File) -> io::Result<()> {
    loop {
        // Fully qualified: std's `File::unlock` (Rust 1.89) would shadow fs2's
        // method on newer compilers; both are flock(LOCK_UN) on Linux.
        match FileExt::unlock(file) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Turns a failed flock call into an error that says what to do.
///
/// `ENOLCK`, `EOPNOTSUPP` and `ENOSYS` mean the filesystem (or the kernel's lock
/// table) cannot lock this file at all: that is a coordination failure an
/// operator must fix by moving the store, not a transient I/O error.
pub(crate) fn explain(strategy: Strategy, path: &Path, err: io::Error) -> Error {
    let unsupported = match err.raw_os_error() {
        Some(libc::ENOLCK) => Some("the kernel could not record the lock (ENOLCK: its lock table is full, or the filesystem, typically NFS without a lock daemon, cannot lock)"),
        Some(code) if code == libc::EOPNOTSUPP || code == libc::ENOSYS => {
            Some("the filesystem does not support flock (EOPNOTSUPP)")
        }
        _ => None,
    };
    match unsupported {
        Some(why) => Error::Coordination {
            strategy,
            detail: format!(
                "cannot lock {}: {why}; put the store on a local filesystem (ext4, xfs, tmpfs)",
                path.display()
            ),
        },
        None => Error::io(format!("flock on {} failed", path.display()), err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOCK: Strategy = Strategy::new("flock");

    #[test]
    fn no_lock_support_is_a_coordination_error_that_names_the_fix() {
        for code in [libc::ENOLCK, libc::EOPNOTSUPP, libc::ENOSYS] {
            let err = explain(FLOCK, Path::new("/mnt/s.maph"), io::Error::from_raw_os_error(code));
            let Error::Coordination { strategy, detail } = &err else { panic!("errno {code} gave {err:?}") };
            assert_eq!(*strategy, FLOCK);
            assert!(detail.contains("/mnt/s.maph"), "{detail}");
            assert!(detail.contains("local filesystem"), "{detail}");
        }
    }

    #[test]
    fn other_failures_stay_io_errors_with_context() {
        let err = explain(FLOCK, Path::new("/x.maph"), io::Error::from_raw_os_error(libc::EBADF));
        assert!(matches!(&err, Error::Io { context, .. } if context.contains("/x.maph")), "{err:?}");
    }

    #[test]
    fn a_second_description_sees_the_lock_as_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let a = File::create(&path).unwrap();
        let b = File::open(&path).unwrap();
        assert!(try_lock(&a, Access::Exclusive).unwrap());
        assert!(!try_lock(&b, Access::Shared).unwrap());
        unlock(&a).unwrap();
        assert!(try_lock(&b, Access::Shared).unwrap());
        assert!(try_lock(&a, Access::Shared).unwrap(), "shared locks coexist");
        assert!(!try_lock(&a, Access::Exclusive).unwrap(), "upgrading past another shared holder fails");
    }
}
