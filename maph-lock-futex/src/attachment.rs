//! Which processes are attached to a store's lock, and whether the holder of a
//! lock word can still release it.
//!
//! Every coordinator opens the store file once more, for an open file
//! description of its own, and holds a shared open-file-description lock
//! (`F_OFD_SETLK`, `F_RDLCK`) on one byte past the end of the file named by its
//! process: [`identity_offset`]`(pid, start tag)`, the two halves of the lock
//! words it writes. The kernel keeps that lock exactly as long as the process
//! can still act on the mapping:
//!
//! - it is dropped when the process exits or is killed, before the process
//!   becomes a zombie (its descriptors are closed as it dies), and when it
//!   `exec`s (the descriptor is close-on-exec, and the new program no longer
//!   maps the store);
//! - it is kept while any thread of the process runs, even after the main
//!   thread has exited (descriptors belong to the whole process);
//! - it is seen from any pid namespace and by any user who may open the file.
//!
//! So a waiter decides whether a holder lives with one `F_OFD_GETLK` on the
//! holder's byte, without `/proc`. One case still needs `/proc`: a child forked
//! (without `exec`) from a process holding a coordinator shares its open file
//! description, and with it the lock, after the parent dies. So where `/proc`
//! shows this process's own pid namespace, a holder whose pid is gone, or now
//! belongs to a process that started at another time, is dead whatever its
//! byte says. A `/proc` that cannot be read (or shows another namespace) costs
//! only that refinement, never a wait on a dead holder.
//!
//! One byte before the identities, the *gate*, is locked exclusively while a
//! coordinator attaches: attaching (checking the namespace, freeing dead
//! holders' words, marking itself) is one step no other attachment interleaves
//! with. The offsets are listed in `docs/FORMAT.md`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use maph_core::{Backoff, Error, Mode, Result, Store};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

use crate::identity::{coordination, process_state, ProcessIdentity, ProcessState};
use crate::stripe::Liveness;

/// Offset of the first identity byte: far past the end of any store file, so
/// these locks never meet a byte anyone reads or locks for another reason.
pub const IDENTITY_BASE: u64 = 1 << 62;
/// Identity bytes cover `IDENTITY_BASE .. IDENTITY_BASE + IDENTITY_SPAN`
/// (a 22-bit pid and a 32-bit start tag).
pub const IDENTITY_SPAN: u64 = 1 << 54;
/// Offset of the gate byte, locked exclusively while a coordinator attaches.
pub const GATE_OFFSET: u64 = IDENTITY_BASE - 1;
/// How long attaching waits for another attachment to leave the gate. Each
/// holds it for a few system calls, so only a process stopped in mid-attach
/// (a debugger, SIGSTOP) keeps it longer.
pub const GATE_PATIENCE: Duration = Duration::from_secs(30);

/// The identity byte of the process `pid` whose start tag is `start_tag`.
pub const fn identity_offset(pid: u32, start_tag: u32) -> u64 {
    IDENTITY_BASE + ((pid as u64) << 32 | start_tag as u64)
}

/// One coordinator's open file description of the store, holding its process's
/// identity lock once [`mark_attached`](Self::mark_attached) ran.
#[derive(Debug)]
pub(crate) struct Attachment {
    file: File,
    path: PathBuf,
    /// Whether `/proc/self` is this process (so `/proc/<pid>` are pids of our
    /// namespace, the namespace lock words are written in).
    proc_is_ours: bool,
}

impl Attachment {
    /// Opens the file `store` maps, read-write, as a description of our own.
    /// Fails if the path now names another file (the store was replaced).
    pub fn open(store: &Store) -> Result<Attachment> {
        let path = store.path().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("maph-lock-futex could not open {} again", path.display()), e))?;
        // The same file as the store's mapping? Opened through our descriptor's
        // /proc link, a handle names exactly the file we hold.
        let same = Store::open(format!("/proc/self/fd/{}", file.as_raw_fd()), Mode::ReadOnly)?;
        if same.id() != store.id() {
            return Err(Error::Retired { path });
        }
        let proc_is_ours = std::fs::read_link("/proc/self")
            .ok()
            .and_then(|link| link.to_str()?.parse::<u32>().ok())
            .is_some_and(|pid| pid == std::process::id());
        Ok(Attachment { file, path, proc_is_ours })
    }

    /// Takes the gate, waiting up to [`GATE_PATIENCE`] for another attachment.
    pub fn enter_gate(&self) -> Result<Gate<'_>> {
        let give_up = Instant::now() + GATE_PATIENCE;
        let mut backoff = Backoff::with_limits(Duration::from_micros(50), Duration::from_millis(10));
        while !self.try_lock(libc::F_WRLCK, GATE_OFFSET, 1)? {
            if Instant::now() >= give_up {
                return Err(coordination(format!(
                    "another process has been attaching to the futex lock of {} for {GATE_PATIENCE:?} (it holds the \
                     byte-range lock at offset {GATE_OFFSET} of the file); is a process stopped while attaching, \
                     for example under a debugger?",
                    self.path.display()
                )));
            }
            backoff.pause(Some(give_up));
        }
        Ok(Gate { attachment: self })
    }

    /// Marks our process as attached: a shared lock on its identity byte, kept
    /// until this attachment is dropped.
    pub fn mark_attached(&self, me: &ProcessIdentity) -> Result<()> {
        if self.try_lock(libc::F_RDLCK, identity_offset(me.pid(), me.start_tag()), 1)? {
            Ok(())
        } else {
            // Nobody takes an identity byte exclusively.
            Err(coordination(format!(
                "the identity byte of pid {} in {} is locked exclusively by someone else",
                me.pid(),
                self.path.display()
            )))
        }
    }

    /// Whether any other coordinator (of any process, this one included) is attached.
    pub fn others_attached(&self) -> Result<bool> {
        self.locked_by_others(IDENTITY_BASE, IDENTITY_SPAN)
    }

    /// Whether a lock held through another open file description covers any of
    /// `len` bytes from `start`. Our own description's locks do not count.
    fn locked_by_others(&self, start: u64, len: u64) -> Result<bool> {
        let mut query = request(libc::F_WRLCK, start, len);
        match fcntl(self.file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut query)) {
            Ok(_) => Ok(i32::from(query.l_type) != libc::F_UNLCK),
            Err(errno) => Err(self.explain("ask who is attached to", errno)),
        }
    }

    /// One non-blocking attempt at a lock of `kind` on `len` bytes from `start`.
    fn try_lock(&self, kind: libc::c_int, start: u64, len: u64) -> Result<bool> {
        let request = request(kind, start, len);
        loop {
            match fcntl(self.file.as_raw_fd(), FcntlArg::F_OFD_SETLK(&request)) {
                Ok(_) => return Ok(true),
                Err(Errno::EAGAIN | Errno::EACCES) => return Ok(false),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(self.explain("lock a byte of", errno)),
            }
        }
    }

    fn explain(&self, what: &str, errno: Errno) -> Error {
        let hint = match errno {
            Errno::EINVAL => "; this kernel has no open-file-description locks (Linux 3.15 or later is needed)",
            Errno::ENOLCK => {
                "; this filesystem does not support byte-range locks: keep the store on a local filesystem"
            }
            _ => "",
        };
        coordination(format!("maph-lock-futex could not {what} {} (fcntl F_OFD_*: {errno}){hint}", self.path.display()))
    }
}

impl Liveness for Attachment {
    /// Dead if nobody holds the holder's identity byte; otherwise dead only if
    /// `/proc` (where it shows our namespace) says its pid is gone or was
    /// reused. A zombie leader whose other threads run keeps its byte: alive.
    fn holder_is_dead(&self, pid: u32, start_tag: u32) -> Result<bool> {
        if !self.locked_by_others(identity_offset(pid, start_tag), 1)? {
            return Ok(true);
        }
        Ok(self.proc_is_ours
            && match process_state(pid) {
                ProcessState::Gone => true,
                ProcessState::Running { start_ticks } => start_ticks as u32 != start_tag,
                ProcessState::Zombie | ProcessState::Unknown => false,
            })
    }
}

/// The gate, held; released on drop.
#[derive(Debug)]
pub(crate) struct Gate<'a> {
    attachment: &'a Attachment,
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        // A failure leaves the lock to be dropped with the descriptor.
        let _ = self.attachment.try_lock(libc::F_UNLCK, GATE_OFFSET, 1);
    }
}

/// A `struct flock` for `kind` over `len` bytes from `start`.
fn request(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
    // SAFETY: `struct flock` consists of integer fields only (some targets add
    // reserved or padding integers), for which all-zero is a valid value. The
    // zeroed `l_pid` is also required: OFD commands fail with EINVAL otherwise.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // Every offset here is below 2^63: off_t holds it on the 64-bit targets
    // maph builds for.
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_bytes_fit_their_span_and_stay_below_2_63() {
        assert_eq!(identity_offset(0, 0), IDENTITY_BASE);
        let last = identity_offset(crate::PID_MASK, u32::MAX);
        assert!(last < IDENTITY_BASE + IDENTITY_SPAN);
        assert!(IDENTITY_BASE + IDENTITY_SPAN <= i64::MAX as u64);
        assert_eq!(GATE_OFFSET + 1, IDENTITY_BASE);
    }
}
