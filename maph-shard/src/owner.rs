//! Who owns a shard: the pid a lease holder records in the shard's lock file
//! (`maph_core::write_pid`), believed only while that process is alive.

use std::path::Path;

use maph_core::{lock_path, read_pid};

/// The live process recorded as the writer of the shard at `shard_path`.
///
/// A holder that died (even by SIGKILL) leaves its pid behind; it is ignored
/// once the process is gone, so an error never names a dead owner. (A process
/// killed but not yet reaped by its parent still counts as alive.)
pub(crate) fn live_owner(shard_path: &Path) -> Option<u32> {
    read_pid(&lock_path(shard_path)).filter(|&pid| is_alive(pid))
}

/// Empties the pid record of a shard whose lease this process is about to give
/// up, so that a live process that released its lease is not named as the
/// owner. Only called while the lease is still held: no other process writes
/// the record then. Best effort: a stale record is harmless, only less helpful.
pub(crate) fn forget_owner(shard_path: &Path) {
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(lock_path(shard_path)) {
        let _ = file.set_len(0);
    }
}

fn is_alive(pid: u32) -> bool {
    // kill(0, …) and negative pids address process groups: never ask about those.
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 delivers nothing; kill(2) only checks that the process
    // exists and may be signalled. No memory is passed.
    let rc = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists but belongs to another user.
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_nonsense_pids_are_not() {
        assert!(is_alive(std::process::id()));
        assert!(!is_alive(0));
        assert!(!is_alive(u32::MAX));
    }
}
