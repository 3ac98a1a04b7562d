//! Child processes that cannot outlive the benchmark.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the kernel kill the child (SIGKILL) when the thread that spawns it
/// exits, so an interrupted run (Ctrl-C, a kill) leaves no workers or private
/// redis-server behind. Spawn from the main thread: it lives as long as the run.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed; prctl is a plain system call and
    // touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
