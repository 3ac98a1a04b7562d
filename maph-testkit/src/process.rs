//! Spawning the test binary as child processes, and being one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};

const ENV_TEST: &str = "MAPH_TESTKIT_TEST";
const ENV_ROLE: &str = "MAPH_TESTKIT_ROLE";
const ENV_ARGS: &str = "MAPH_TESTKIT_ARGS";
/// Separates arguments in `MAPH_TESTKIT_ARGS` (a byte no path or number uses).
const ARG_SEPARATOR: char = '\u{1f}';
/// Prefix of the lines a child reports to its parent on standard output.
const REPORT_PREFIX: &str = "MAPH_TESTKIT_REPORT ";

/// What a child process was spawned to do.
#[derive(Debug, Clone)]
pub struct ChildContext {
    role: String,
    args: Vec<String>,
}

impl ChildContext {
    /// The role the parent gave this child.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The arguments the parent gave this child.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Argument `i`, parsed; panics with a clear message if absent or malformed.
    pub fn arg<T: std::str::FromStr>(&self, i: usize) -> T {
        let raw = self.args.get(i).unwrap_or_else(|| panic!("child argument {i} missing: {:?}", self.args));
        raw.parse().unwrap_or_else(|_| panic!("child argument {i} ({raw:?}) does not parse"))
    }

    /// Blocks until the parent calls [`start_all`] (or [`Child::start`]).
    pub fn wait_for_start(&self) {
        let mut sink = Vec::new();
        // EOF on stdin is the start signal.
        let _ = std::io::stdin().read_to_end(&mut sink);
    }

    /// Sends `key=value` to the parent (read back with [`Finished::reports`](crate::Finished::reports) or [`Child::wait_for_report`]).
    pub fn report(&self, key: &str, value: impl std::fmt::Display) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{REPORT_PREFIX}{key}={value}");
        let _ = out.flush();
    }

    /// Ends the child process successfully. Never returns.
    pub fn exit(self) -> ! {
        let _ = std::io::stdout().flush();
        std::process::exit(0)
    }
}

/// If this process is a child spawned by [`spawn`] for the test `test`, what it
/// should do. Call it first thing in the test function.
pub fn child(test: &str) -> Option<ChildContext> {
    let spawned_for = std::env::var(ENV_TEST).ok()?;
    if spawned_for != test {
        return None;
    }
    let role = std::env::var(ENV_ROLE).expect("a child has a role");
    let args = std::env::var(ENV_ARGS)
        .map(|a| if a.is_empty() { vec![] } else { a.split(ARG_SEPARATOR).map(String::from).collect() })
        .unwrap_or_default();
    Some(ChildContext { role, args })
}

/// A child process running one role of a test.
pub struct Child {
    role: String,
    // `None` once `finish` took it.
    process: Option<std::process::Child>,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
    /// Lines already read by `read_line`/`wait_for_report`, kept for `finish`.
    seen: String,
}

/// Spawns the current test binary as a child running `role` of the test named
/// `test` (its full libtest name, as `cargo test -- --exact` wants it). The
/// child waits for [`Child::start`] before doing anything that
/// [`ChildContext::wait_for_start`] guards.
pub fn spawn(test: &str, role: &str, args: &[String]) -> Child {
    spawn_with_env(test, role, args, &[])
}

/// As [`spawn`], with extra environment variables for the child (a service's
/// address, say).
pub fn spawn_with_env(test: &str, role: &str, args: &[String], env: &[(String, String)]) -> Child {
    spawn_configured(&[], test, role, args, env, |_| {})
}

/// As [`spawn`], with the test binary started by `wrapper`: a program and its
/// arguments, which then runs the binary with its arguments (for example
/// `["unshare", "--pid", "--fork", "--kill-child"]` to run the child in a pid
/// namespace of its own). The wrapper must pass standard input, output and
/// error through.
pub fn spawn_under(wrapper: &[&str], test: &str, role: &str, args: &[String]) -> Child {
    spawn_configured(wrapper, test, role, args, &[], |_| {})
}

/// As [`spawn_with_env`], but a child that this process runs as root runs as
/// `nobody` (uid and gid 65534, no supplementary groups), so that permission
/// bits apply to it. Otherwise it runs as this process's user.
///
/// The switch happens in the forked child before it executes the test binary,
/// while it has a single thread. (Switching inside a running test binary
/// instead, with `setuid`, races: glibc signals every thread to switch, and
/// `std::process::exit` on the test thread unmaps the main thread's signal
/// stack while that thread may still be returning from the signal. Such
/// children died with SIGSEGV at exit, one run in 40.)
pub fn spawn_unprivileged(test: &str, role: &str, args: &[String], env: &[(String, String)]) -> Child {
    // SAFETY: geteuid takes no arguments and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    spawn_configured(&[], test, role, args, env, |command| {
        if root {
            command.uid(NOBODY).gid(NOBODY);
        }
    })
}

/// The uid and gid of `nobody` on Linux.
const NOBODY: u32 = 65534;

fn spawn_configured(
    wrapper: &[&str],
    test: &str,
    role: &str,
    args: &[String],
    env: &[(String, String)],
    configure: impl FnOnce(&mut Command),
) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let joined = args.join(&ARG_SEPARATOR.to_string());
    let mut command = match wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut command = Command::new(program);
            command.args(wrapper_args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ENV_TEST, test)
        .env(ENV_ROLE, role)
        .env(ENV_ARGS, joined)
        .env("RUST_BACKTRACE", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    configure(&mut command);
    let mut process = command.spawn().expect("spawn the test binary as a child");
    let stdin = process.stdin.take();
    let stdout = BufReader::new(process.stdout.take().expect("stdout is piped"));
    Child { role: role.to_string(), process: Some(process), stdin, stdout, seen: String::new() }
}

/// Lets every child go at once.
pub fn start_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        c.start();
    }
}

/// What a finished child printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// The child's role.
    pub role: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Finished {
    /// The `key=value` lines the child reported, last value per key.
    pub fn reports(&self) -> HashMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(REPORT_PREFIX))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A reported value, parsed; panics with the child's output if absent.
    pub fn report<T: std::str::FromStr>(&self, key: &str) -> T {
        self.reports()
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("child {} did not report {key}:\n{}", self.role, self.describe()))
    }

    /// The child's output, for failure messages.
    pub fn describe(&self) -> String {
        format!("status {}\n--- stdout\n{}\n--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

impl Child {
    /// Closes the child's standard input: its start signal.
    pub fn start(&mut self) {
        self.stdin.take();
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.process().id()
    }

    fn process(&self) -> &std::process::Child {
        self.process.as_ref().expect("child not finished")
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) {
        if let Some(p) = self.process.as_mut() {
            let _ = p.kill();
        }
    }

    /// Blocks until the child stops (SIGSTOP, as a test pause point sends
    /// itself: see `maph_core::test_hooks`). Panics if it exits instead.
    pub fn wait_until_stopped(&mut self) {
        let pid = self.pid() as libc::pid_t;
        let mut status = 0;
        loop {
            // SAFETY: waitpid on our own child, writing only to `status`.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) };
            if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
            break;
        }
        assert!(libc::WIFSTOPPED(status), "child {} ended (status {status:#x}) instead of stopping", self.role);
    }

    /// Sends SIGCONT: a stopped child goes on.
    pub fn resume(&mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGCONT) };
    }

    /// The next line the child printed (without its newline), blocking until it
    /// arrives; `None` once the child's output has ended (it exited or died).
    pub fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                self.seen.push_str(&line);
                Some(line.trim_end_matches('\n').to_string())
            }
        }
    }

    /// Blocks until the child reports `key` (a real condition to wait on,
    /// instead of a sleep) and returns the value.
    pub fn wait_for_report(&mut self, key: &str) -> String {
        loop {
            let Some(line) = self.read_line() else {
                panic!("child {} ended before reporting {key}", self.role);
            };
            if let Some((k, v)) = line.strip_prefix(REPORT_PREFIX).and_then(|kv| kv.split_once('=')) {
                if k == key {
                    return v.to_string();
                }
            }
        }
    }

    /// Waits for the child to exit and collects its output (including lines
    /// already read with [`read_line`](Self::read_line)).
    pub fn finish(mut self) -> Finished {
        self.start();
        let mut process = self.process.take().expect("child not finished");
        // Read stderr on another thread so a child filling one pipe while we
        // drain the other cannot deadlock.
        let mut stderr_pipe = process.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        let status = process.wait().expect("wait for child");
        Finished {
            role: std::mem::take(&mut self.role),
            status,
            stdout: std::mem::take(&mut self.seen) + &rest,
            stderr: stderr.join().unwrap_or_default(),
        }
    }

    /// Waits for the child and panics, showing its output, unless it succeeded.
    pub fn finish_ok(self) -> Finished {
        let done = self.finish();
        assert!(done.status.success(), "child {} failed:\n{}", done.role, done.describe());
        done
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A test that panics must not leave children running.
        if let Some(p) = self.process.as_mut() {
            if let Ok(None) = p.try_wait() {
                let _ = p.kill();
                let _ = p.wait();
            }
        }
    }
}

/// Makes the kernel kill the child (SIGKILL) when the thread that spawns it
/// exits, so an interrupted run (Ctrl-C, a kill, a failed test) leaves no
/// workers or private servers behind. Spawn from a thread that lives as long as
/// the child should.
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
