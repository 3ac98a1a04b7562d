//! What `/proc` says about a process: its start time, and whether it runs.
//!
//! A lock word names its holder by pid and by *start time* (field 22 of
//! `/proc/<pid>/stat`, clock ticks after boot), read once by each process for
//! itself: after a holder dies the kernel may hand its pid to an unrelated
//! process, and the start time tells the two apart. Whether a holder can still
//! release is decided by its attachment lock (see the `attachment` module);
//! `/proc/<pid>/stat` is a second opinion, for the one case that lock misses.
//!
//! `/proc` shows a process whose main thread has exited as a zombie (`Z`)
//! even while its other threads run, so a zombie state alone never makes a
//! holder dead here.

use std::io::ErrorKind;

use maph_core::{Error, Result};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// A process as the lock records it: pid and start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessIdentity {
    pid: u32,
    start_ticks: u64,
}

/// What `/proc` says about a pid now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// A process with this pid runs (or sleeps, or is stopped), and started at
    /// `start_ticks` clock ticks after boot.
    Running {
        /// Field 22 of `/proc/<pid>/stat`.
        start_ticks: u64,
    },
    /// The process has exited but its parent has not reaped it yet, or its
    /// main thread has exited while other threads still run.
    Zombie,
    /// No process has this pid.
    Gone,
    /// `/proc` could not tell (and `kill(pid, 0)` did not say ESRCH).
    Unknown,
}

impl ProcessIdentity {
    /// This process. Fails if `/proc/self/stat` cannot be read: without it a
    /// dead holder could not be told from a live one.
    pub fn current() -> Result<ProcessIdentity> {
        let pid = std::process::id();
        match read_stat("self") {
            Ok(Some(Stat { start_ticks, .. })) => Ok(ProcessIdentity { pid, start_ticks }),
            Ok(None) => Err(coordination("/proc/self/stat has an unexpected format; is /proc a Linux procfs?")),
            Err(e) => Err(Error::io(
                "maph-lock-futex reads /proc/self/stat to record its start time (so that a waiter can tell a dead \
                 lock holder from a live one with a reused pid); mount /proc",
                e,
            )),
        }
    }

    /// An identity from its parts (for tests and tools that inspect a lock region).
    pub fn new(pid: u32, start_ticks: u64) -> ProcessIdentity {
        ProcessIdentity { pid, start_ticks }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Start time in clock ticks after boot.
    pub fn start_ticks(&self) -> u64 {
        self.start_ticks
    }

    /// The 32 bits of the start time the lock region records (the low half:
    /// two processes with one pid whose start times differ by an exact multiple
    /// of 2³² ticks, 497 days at 100 Hz, would look alike, which only makes a
    /// waiter wait, never steal).
    pub fn start_tag(&self) -> u32 {
        self.start_ticks as u32
    }
}

/// What `/proc/<pid>/stat` (or, failing that, `kill(pid, 0)`) says about `pid`.
pub fn process_state(pid: u32) -> ProcessState {
    if pid == 0 || pid > i32::MAX as u32 {
        return ProcessState::Gone;
    }
    match read_stat(&pid.to_string()) {
        Ok(Some(Stat { state: b'Z' | b'X', .. })) => ProcessState::Zombie,
        Ok(Some(Stat { start_ticks, .. })) => ProcessState::Running { start_ticks },
        Ok(None) => ProcessState::Unknown,
        // A vanished /proc entry (or a process exiting while we read) must be
        // confirmed by kill(2): only ESRCH proves there is no such process.
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            match kill(Pid::from_raw(pid as i32), None) {
                Err(Errno::ESRCH) => ProcessState::Gone,
                _ => ProcessState::Unknown,
            }
        }
        Err(_) => ProcessState::Unknown,
    }
}

struct Stat {
    state: u8,
    start_ticks: u64,
}

/// Reads state (field 3) and starttime (field 22) of `/proc/<which>/stat`.
/// `Ok(None)` if the file does not parse.
fn read_stat(which: &str) -> std::io::Result<Option<Stat>> {
    let text = std::fs::read_to_string(format!("/proc/{which}/stat"))?;
    Ok(parse_stat(&text))
}

/// Field 2, the command name, is in parentheses and may itself contain spaces
/// and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Fields 4..=21 come between state (3) and starttime (22).
    let start_ticks = fields.nth(22 - 4)?.parse().ok()?;
    Some(Stat { state, start_ticks })
}

pub(crate) fn coordination(detail: impl Into<String>) -> Error {
    Error::Coordination { strategy: crate::STRATEGY, detail: detail.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.state, stat.start_ticks), (b'S', 987654));
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) R 1 2").is_none());
    }

    #[test]
    fn this_process_runs_since_its_recorded_start() {
        let me = ProcessIdentity::current().unwrap();
        assert_eq!(me.pid(), std::process::id());
        assert_eq!(process_state(me.pid()), ProcessState::Running { start_ticks: me.start_ticks() });
    }

    #[test]
    fn impossible_pids_are_gone() {
        assert_eq!(process_state(0), ProcessState::Gone);
        assert_eq!(process_state(u32::MAX), ProcessState::Gone);
        // Above the kernel's PID_MAX_LIMIT (2^22): never a process.
        assert_eq!(process_state((1 << 22) + 1), ProcessState::Gone);
    }
}
