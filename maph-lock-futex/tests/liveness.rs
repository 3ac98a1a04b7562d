//! Whether a holder can still release its lock, judged against real processes
//! in the states that fooled a check of `/proc/<pid>/stat` alone: a holder
//! whose main thread has exited while another thread holds the lock (`/proc`
//! shows a zombie), a holder that `exec`ed another program (same pid, same
//! start time, no mapping of the store left), and a waiter that cannot read
//! `/proc` at all (that part needs root to mount over `/proc` in a private
//! mount namespace; elsewhere it prints why it skipped).

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{cannot_run_under, futex_config, lock_word, namespace_of_self, proc_state, wait_for_file};
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_futex::{FutexCoordinator, PID_MASK};
use maph_testkit::{child, spawn, spawn_under, ChildContext};

/// Far beyond any honest wait, even on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long a waiter is given to (wrongly) take a live holder's lock over:
/// many detection periods (10 ms each).
const LONG_ENOUGH_TO_SUSPECT: Duration = Duration::from_millis(400);

fn create(dir: &Path) -> String {
    let path = dir.join("liveness.maph");
    Store::create(&path, futex_config(64)).unwrap();
    path.display().to_string()
}

fn attach(path: &str) -> (Arc<Store>, FutexCoordinator) {
    let store = Arc::new(Store::open(path, Mode::ReadWrite).expect("open the store"));
    let lock = FutexCoordinator::global(store.clone()).expect("attach the lock");
    (store, lock)
}

/// Asserts that a live holder keeps the lock: a waiter gives up at its
/// deadline rather than take it over.
fn assert_waited_for(lock: &FutexCoordinator, what: &str) {
    let deadline = Instant::now() + LONG_ENOUGH_TO_SUSPECT;
    match lock.lock_exclusive_until(LockScope::Whole, deadline) {
        Err(Error::LockTimeout { .. }) => {}
        other => panic!("{what}: a live holder's lock was taken: {:?}", other.map(|_| ())),
    }
    assert_eq!(lock.recovery_stats().takeovers, 0, "{what}: a live holder was taken over");
}

/// Ends this process's main thread (only it: `SYS_exit`, not `exit_group`),
/// from a signal handler run on it, and waits until `/proc` shows the process
/// as the zombie a thread-group leader becomes.
fn end_main_thread() {
    extern "C" fn exit_this_thread(_: libc::c_int) {
        // SAFETY: the exit system call ends the calling thread only, takes no
        // pointers, and is async-signal-safe; the thread never runs again.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
    }
    let pid = std::process::id();
    // SAFETY: gettid takes no arguments.
    assert_ne!(unsafe { libc::gettid() } as u32, pid, "libtest runs a test on a thread of its own");
    // SAFETY: a zeroed sigaction with a handler and an empty mask is valid;
    // the handler is an `extern "C" fn(c_int)`, as sa_sigaction without
    // SA_SIGINFO expects. tgkill sends the signal to the main thread only.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = exit_this_thread as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()), 0);
        assert_eq!(libc::syscall(libc::SYS_tgkill, pid, pid, libc::SIGUSR1), 0);
    }
    let started = Instant::now();
    while proc_state(pid) != Some('Z') {
        assert!(started.elapsed() < PATIENCE, "the main thread did not exit");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Child: takes the lock on a thread of its own, ends its main thread, says
/// so, and releases the lock when the parent closes its standard input.
fn holder_without_main_thread(ctx: ChildContext) -> ! {
    let (store, lock) = attach(&ctx.args()[0]);
    let lock = Arc::new(lock);
    let (held_tx, held) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let holder = {
        let (store, lock) = (store.clone(), lock.clone());
        std::thread::spawn(move || {
            let guard = lock.lock_exclusive(LockScope::Whole).unwrap();
            store.write_with(&guard, |tx| tx.set(b"holder", b"threaded")).unwrap();
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            drop(guard);
        })
    };
    held.recv().unwrap();
    end_main_thread();
    ctx.report("holding", 1);
    ctx.wait_for_start();
    release.send(()).unwrap();
    holder.join().unwrap();
    ctx.report("released", 1);
    ctx.exit()
}

#[test]
fn a_holder_whose_main_thread_exited_is_not_taken_over() {
    const TEST: &str = "a_holder_whose_main_thread_exited_is_not_taken_over";
    if let Some(ctx) = child(TEST) {
        holder_without_main_thread(ctx)
    }
    let dir = maph_testkit::temp_dir();
    let path = create(dir.path());
    let mut holder = spawn(TEST, "holder", std::slice::from_ref(&path));
    holder.wait_for_report("holding");
    assert_eq!(proc_state(holder.pid()), Some('Z'), "/proc shows the holder as a zombie");

    // Attaching leaves the word alone, and so does a waiter.
    let (store, lock) = attach(&path);
    assert_eq!(lock_word(&store, 0) & PID_MASK, holder.pid(), "the holder keeps its word");
    assert_waited_for(&lock, "main thread exited");

    holder.start(); // release
    let guard = lock.lock_exclusive_for(LockScope::Whole, PATIENCE).expect("the lock after its release");
    assert_eq!(lock.recovery_stats().takeovers, 0);
    assert_eq!(store.get(b"holder").unwrap().as_deref(), Some(&b"threaded"[..]));
    drop(guard);
    let done = holder.finish_ok();
    assert_eq!(done.report::<u32>("released"), 1);
}

/// Child: takes the lock, says so, then `exec`s `cat`, which keeps the pid and
/// the start time and lives until the parent closes its standard input.
fn holder_that_execs(ctx: ChildContext) -> ! {
    let (store, lock) = attach(&ctx.args()[0]);
    let guard = lock.lock_exclusive(LockScope::Whole).unwrap();
    store.write_with(&guard, |tx| tx.set(b"before-exec", b"1")).unwrap();
    ctx.report("holding", 1);
    let err = std::process::Command::new("cat").exec();
    panic!("exec cat: {err}")
}

#[test]
fn a_holder_that_execs_is_taken_over() {
    const TEST: &str = "a_holder_that_execs_is_taken_over";
    if let Some(ctx) = child(TEST) {
        holder_that_execs(ctx)
    }
    let dir = maph_testkit::temp_dir();
    let path = create(dir.path());
    // Attached before the holder takes the lock: the waiter, not the
    // attachment, must find it unable to release.
    let (store, lock) = attach(&path);
    let mut holder = spawn(TEST, "holder", std::slice::from_ref(&path));
    holder.wait_for_report("holding");
    let pid = holder.pid();
    let started = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().as_deref() != Some("cat\n") {
        assert!(started.elapsed() < PATIENCE, "the holder never became cat");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(lock_word(&store, 0) & PID_MASK, pid, "the word still names the holder");

    let guard = lock.lock_exclusive_for(LockScope::Whole, PATIENCE / 2).expect("take over from a holder that exec'd");
    assert_eq!(lock.recovery_stats().takeovers, 1);
    assert_eq!(store.get(b"before-exec").unwrap().as_deref(), Some(&b"1"[..]));
    drop(guard);
    // The program it became still runs: the takeover did not wait for a death.
    assert_eq!(proc_state(pid), Some('S'), "cat, reading its standard input");
    holder.finish_ok();
}

/// `/proc` masked by an empty tmpfs in a private mount namespace.
const PRIVATE_MOUNTS: &[&str] = &["unshare", "--mount", "--propagation", "private"];

/// Child, in a mount namespace of its own: attaches, then hides `/proc` from
/// itself, and shows that (1) attaching now fails with an error naming
/// `/proc`, (2) a live holder is still waited for, (3) once the parent kills
/// that holder (leaving a zombie), its lock is taken over.
fn waiter_without_proc(ctx: ChildContext) -> ! {
    let (path, parent_mounts, killed) = (&ctx.args()[0], ctx.arg::<u64>(1), Path::new(&ctx.args()[2]));
    let (store, lock) = attach(path);
    // Never mount over the parent's /proc: only in a mount namespace of our own.
    assert_ne!(namespace_of_self("mnt"), parent_mounts, "not in a private mount namespace");
    // SAFETY: plain C strings and a null data pointer, as mount(2) takes them.
    let mounted = unsafe { libc::mount(c"none".as_ptr(), c"/proc".as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) };
    assert_eq!(mounted, 0, "mount tmpfs on /proc: {}", std::io::Error::last_os_error());
    assert!(std::fs::read_to_string("/proc/self/stat").is_err(), "/proc is hidden");

    let refused = FutexCoordinator::global(store.clone()).expect_err("attaching needs /proc");
    ctx.report("attach_without_proc", refused.to_string().replace('\n', " "));
    assert_waited_for(&lock, "/proc hidden");
    ctx.report("waited_for_the_live_holder", 1);

    wait_for_file(killed, "the parent kills the holder");
    let started = Instant::now();
    let outcome = match lock.lock_exclusive_for(LockScope::Whole, PATIENCE / 2) {
        Ok(guard) => {
            store.write_with(&guard, |tx| tx.set(b"after", b"proc-less")).unwrap();
            format!("took over after {:?}", started.elapsed())
        }
        Err(e) => format!("failed: {e}"),
    };
    ctx.report("dead_holder", outcome);
    ctx.report("takeovers", lock.recovery_stats().takeovers);
    ctx.exit()
}

fn plain_holder(ctx: ChildContext) -> ! {
    let (_store, lock) = attach(&ctx.args()[0]);
    let _guard = lock.lock_exclusive(LockScope::Whole).unwrap();
    ctx.report("holding", 1);
    ctx.wait_for_start();
    unreachable!("killed by the parent")
}

#[test]
fn a_waiter_that_cannot_read_proc_still_takes_over_a_dead_holder() {
    const TEST: &str = "a_waiter_that_cannot_read_proc_still_takes_over_a_dead_holder";
    if let Some(ctx) = child(TEST) {
        match ctx.role() {
            "waiter" => waiter_without_proc(ctx),
            _ => plain_holder(ctx),
        }
    }
    if let Some(reason) = cannot_run_under(PRIVATE_MOUNTS) {
        println!("skipped: {reason}");
        return;
    }
    let dir = maph_testkit::temp_dir();
    let path = create(dir.path());
    let killed = dir.path().join("killed");
    let mut holder = spawn(TEST, "holder", std::slice::from_ref(&path));
    holder.wait_for_report("holding");

    let args = [path.clone(), namespace_of_self("mnt").to_string(), killed.display().to_string()];
    let mut waiter = spawn_under(PRIVATE_MOUNTS, TEST, "waiter", &args);
    let refused = waiter.wait_for_report("attach_without_proc");
    assert!(refused.contains("/proc"), "the error names /proc: {refused}");
    waiter.wait_for_report("waited_for_the_live_holder");

    holder.kill(); // not reaped: a zombie, whose pid kill(2) still finds
    let started = Instant::now();
    while proc_state(holder.pid()) != Some('Z') {
        assert!(started.elapsed() < PATIENCE, "the killed holder never became a zombie");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::write(&killed, b"").unwrap();
    let outcome = waiter.wait_for_report("dead_holder");
    assert!(outcome.starts_with("took over"), "{outcome}");
    let waiter = waiter.finish_ok();
    assert_eq!(waiter.report::<u64>("takeovers"), 1);
    drop(holder.finish());
    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!(store.get(b"after").unwrap().as_deref(), Some(&b"proc-less"[..]));
}
