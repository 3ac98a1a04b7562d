//! fcntl(2) record locks on byte spans of the lock file, through nix.
//!
//! Slot `i` of the store is byte `i` of the lock file: a key's probe window of
//! `n` slots from slot `s` is the byte span `s..s+n`. The lock file stays empty;
//! record locks may lie past the end of a file. `LockScope::Whole` (and every
//! scope in whole-file mode) is `l_start = 0, l_len = 0`: every byte, now and
//! later, so it conflicts with any span.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::Path;

use maph_core::{Access, Error, LockScope, Strategy};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

use crate::Granularity;

/// Who owns a record lock, which decides the fcntl commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Linux open-file-description locks (`F_OFD_*`): owned by the description.
    Description,
    /// Classic POSIX locks (`F_SETLK`, `F_SETLKW`, `F_GETLK`): owned by the process.
    Process,
}

/// A byte span of the lock file; `len == 0` is the whole file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u64,
    len: u64,
}

impl Span {
    /// Every byte of the file, including bytes past its end.
    pub(crate) const WHOLE: Span = Span { start: 0, len: 0 };

    /// The bytes standing for `slots`.
    fn of_slots(slots: Range<u64>) -> Span {
        if slots.is_empty() {
            // Not produced by LockScope; lock everything rather than nothing.
            return Span::WHOLE;
        }
        Span { start: slots.start, len: slots.end - slots.start }
    }
}

/// The spans an acquisition locks, in ascending order (at most two: a probe
/// window that wraps past the last slot is two ranges). Taking them in this
/// order in every process is what keeps two wrapping writers from deadlocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spans {
    spans: [Span; 2],
    len: usize,
}

impl Spans {
    pub(crate) fn of(scope: LockScope, granularity: Granularity) -> Spans {
        let mut spans = Spans { spans: [Span::WHOLE; 2], len: 1 };
        if let (Granularity::ByteRange, LockScope::Window { .. }) = (granularity, scope) {
            spans.len = 0;
            for range in scope.ranges() {
                spans.spans[spans.len] = Span::of_slots(range);
                spans.len += 1;
            }
            if spans.len == 0 {
                spans.len = 1; // an empty window: keep the (whole-file) default
            }
        }
        spans
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Span> + '_ {
        self.spans[..self.len].iter().copied()
    }
}

/// A `struct flock` for `kind` over `span`.
fn request(kind: libc::c_int, span: Span) -> libc::flock {
    // SAFETY: `struct flock` consists of integer fields only (some targets add
    // reserved or padding integers), for which all-zero is a valid value. The
    // zeroed `l_pid` is also required: OFD commands fail with EINVAL otherwise.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // A span beyond what off_t can express (only on 32-bit targets without large
    // files) locks the whole file instead: more than needed, never less.
    if let (Ok(start), Ok(len)) = (libc::off_t::try_from(span.start), libc::off_t::try_from(span.len)) {
        fl.l_start = start;
        fl.l_len = len;
    }
    fl
}

fn lock_type(access: Access) -> libc::c_int {
    match access {
        Access::Exclusive => libc::F_WRLCK,
        Access::Shared => libc::F_RDLCK,
    }
}

/// Takes the lock on `span` if no conflicting lock is held now.
pub(crate) fn try_lock(file: &File, owner: Owner, access: Access, span: Span) -> nix::Result<bool> {
    let fl = request(lock_type(access), span);
    loop {
        let arg = match owner {
            Owner::Description => FcntlArg::F_OFD_SETLK(&fl),
            Owner::Process => FcntlArg::F_SETLK(&fl),
        };
        match fcntl(file.as_raw_fd(), arg) {
            Ok(_) => return Ok(true),
            // POSIX allows either for "held by someone else".
            Err(Errno::EAGAIN | Errno::EACCES) => return Ok(false),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Takes the lock on `span`, sleeping in the kernel until it is free.
pub(crate) fn lock_blocking(file: &File, owner: Owner, access: Access, span: Span) -> nix::Result<()> {
    let fl = request(lock_type(access), span);
    loop {
        let arg = match owner {
            Owner::Description => FcntlArg::F_OFD_SETLKW(&fl),
            Owner::Process => FcntlArg::F_SETLKW(&fl),
        };
        match fcntl(file.as_raw_fd(), arg) {
            Ok(_) => return Ok(()),
            // A signal interrupted the wait (a handler without SA_RESTART): wait again.
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Drops every lock `owner` holds on the file. One call even for two spans: a
/// description (OFD) or, in classic mode, the process holds only the locks of
/// one acquisition at a time on this file.
pub(crate) fn unlock_all(file: &File, owner: Owner) -> nix::Result<()> {
    let fl = request(libc::F_UNLCK, Span::WHOLE);
    loop {
        let arg = match owner {
            Owner::Description => FcntlArg::F_OFD_SETLK(&fl),
            Owner::Process => FcntlArg::F_SETLK(&fl),
        };
        match fcntl(file.as_raw_fd(), arg) {
            Err(Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// Asks whether a write lock on the whole file could be placed, without placing
/// it: checks that this kind of lock works on this file at all. `EINVAL` for
/// `Owner::Description` means the kernel has no OFD locks (before Linux 3.15).
pub(crate) fn probe(file: &File, owner: Owner) -> nix::Result<()> {
    let mut fl = request(libc::F_WRLCK, Span::WHOLE);
    let arg = match owner {
        Owner::Description => FcntlArg::F_OFD_GETLK(&mut fl),
        Owner::Process => FcntlArg::F_GETLK(&mut fl),
    };
    fcntl(file.as_raw_fd(), arg).map(drop)
}

/// Turns a failed fcntl call into an error that says what to do.
pub(crate) fn explain(strategy: Strategy, lock_path: &Path, errno: Errno) -> Error {
    let unsupported = match errno {
        Errno::ENOLCK => Some(
            "the kernel could not record the lock (ENOLCK: its lock table is full, or the filesystem, \
             typically NFS without a running lock daemon, cannot lock)",
        ),
        Errno::EOPNOTSUPP | Errno::ENOSYS => Some("the filesystem does not support fcntl record locks"),
        _ => None,
    };
    match unsupported {
        Some(why) => Error::Coordination {
            strategy,
            detail: format!(
                "cannot lock {}: {why}; put the store on a local filesystem with POSIX locks \
                 (ext4, xfs, tmpfs)",
                lock_path.display()
            ),
        },
        None => Error::io(
            format!("fcntl record lock on {} failed", lock_path.display()),
            io::Error::from_raw_os_error(errno as i32),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FCNTL: Strategy = Strategy::new("fcntl");

    fn spans(scope: LockScope, granularity: Granularity) -> Vec<(u64, u64)> {
        Spans::of(scope, granularity).iter().map(|s| (s.start, s.len)).collect()
    }

    #[test]
    fn slot_i_is_byte_i_and_wrapping_windows_are_two_ascending_spans() {
        assert_eq!(spans(LockScope::window(3, 4, 10), Granularity::ByteRange), vec![(3, 4)]);
        assert_eq!(spans(LockScope::window(8, 4, 10), Granularity::ByteRange), vec![(0, 2), (8, 2)]);
        assert_eq!(spans(LockScope::Whole, Granularity::ByteRange), vec![(0, 0)]);
        assert_eq!(spans(LockScope::window(3, 4, 10), Granularity::WholeFile), vec![(0, 0)]);
    }

    #[test]
    fn no_lock_support_is_a_coordination_error_that_names_the_fix() {
        for errno in [Errno::ENOLCK, Errno::EOPNOTSUPP, Errno::ENOSYS] {
            let err = explain(FCNTL, Path::new("/mnt/s.maph.lock"), errno);
            let Error::Coordination { strategy, detail } = &err else { panic!("{errno} gave {err:?}") };
            assert_eq!(*strategy, FCNTL);
            assert!(detail.contains("/mnt/s.maph.lock") && detail.contains("filesystem"), "{detail}");
        }
        let other = explain(FCNTL, Path::new("/x.lock"), Errno::EBADF);
        assert!(matches!(&other, Error::Io { context, .. } if context.contains("/x.lock")), "{other:?}");
    }

    #[test]
    fn disjoint_spans_of_two_descriptions_coexist_and_overlapping_ones_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        // Write locks need a descriptor open for writing (EBADF otherwise).
        let a = File::create(&path).unwrap();
        let b = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let (low, high) = (Span { start: 0, len: 10 }, Span { start: 10, len: 10 });
        let o = Owner::Description;
        assert!(try_lock(&a, o, Access::Exclusive, low).unwrap());
        assert!(try_lock(&b, o, Access::Exclusive, high).unwrap(), "disjoint spans");
        assert!(!try_lock(&b, o, Access::Shared, Span { start: 9, len: 1 }).unwrap(), "byte 9 is a's");
        assert!(!try_lock(&b, o, Access::Exclusive, Span::WHOLE).unwrap(), "whole file conflicts with a's span");
        unlock_all(&a, o).unwrap();
        assert!(try_lock(&b, o, Access::Exclusive, low).unwrap());
        probe(&a, o).unwrap();
        probe(&a, Owner::Process).unwrap();
    }
}
