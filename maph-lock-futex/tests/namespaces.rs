//! A store's futex lock across pid namespaces (containers), with real
//! namespaces made by `unshare --pid --fork`: a container that restarts (a new
//! pid namespace, the old one's processes all dead, one of them killed while
//! holding the lock) writes again; two live namespaces on one store are
//! refused, in both directions, with an error that says why and what to do.
//!
//! New namespaces need root; elsewhere each test prints why it skipped (CI
//! runs as root).

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{cannot_run_under, futex_config, lock_word, namespace_of_self, pid_as_proc_shows_it, wait_for_file};
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use maph_lock_futex::{region, FutexCoordinator, PID_MASK};
use maph_testkit::{child, spawn_under, ChildContext};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Runs a child as the first process (pid 1) of a new pid namespace, as a
/// container runtime does; `/proc` stays the host's (no `--mount-proc`).
const CONTAINER: &[&str] = &["unshare", "--pid", "--fork", "--kill-child"];

fn attach(path: &str) -> maph_core::Result<(Arc<Store>, FutexCoordinator)> {
    let store = Arc::new(Store::open(path, Mode::ReadWrite)?);
    let lock = FutexCoordinator::global(store.clone())?;
    Ok((store, lock))
}

fn bump(store: &Store, lock: &FutexCoordinator) -> u64 {
    let mut now = 0;
    store
        .update(lock, b"lives", |old| {
            now = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse::<u64>().unwrap()) + 1;
            Some(now.to_string())
        })
        .expect("write under the lock");
    now
}

fn report_where(ctx: &ChildContext) {
    ctx.report("pid_namespace", namespace_of_self("pid"));
    ctx.report("pid_inside", std::process::id());
    ctx.report("pid_outside", pid_as_proc_shows_it());
}

/// Child: the container's writer in its first life. Takes the lock, writes,
/// and holds the lock until the parent kills it.
fn first_life(ctx: ChildContext) -> ! {
    let (store, lock) = attach(&ctx.args()[0]).expect("the first container attaches");
    let guard = lock.lock_exclusive(LockScope::Whole).unwrap();
    store.write_with(&guard, |tx| tx.set(b"lives", b"1")).unwrap();
    report_where(&ctx);
    ctx.report("holding", 1);
    ctx.wait_for_start();
    unreachable!("killed by the parent")
}

/// Child: the container after its restart, in a new pid namespace.
fn second_life(ctx: ChildContext) -> ! {
    report_where(&ctx);
    match attach(&ctx.args()[0]) {
        Ok((store, lock)) => {
            ctx.report("lives", bump(&store, &lock));
            ctx.report("takeovers", lock.recovery_stats().takeovers);
            ctx.report("repair_passes", lock.recovery_stats().repair_passes);
        }
        Err(e) => ctx.report("refused", e),
    }
    ctx.exit()
}

#[test]
fn a_restarted_container_takes_the_lock_over() {
    const TEST: &str = "a_restarted_container_takes_the_lock_over";
    if let Some(ctx) = child(TEST) {
        match ctx.role() {
            "first" => first_life(ctx),
            _ => second_life(ctx),
        }
    }
    if let Some(reason) = cannot_run_under(CONTAINER) {
        println!("skipped: {reason}");
        return;
    }
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("container.maph");
    Store::create(&path, futex_config(64)).unwrap();
    let args = [path.display().to_string()];

    let mut first = spawn_under(CONTAINER, TEST, "first", &args);
    // Reported in this order (a report read past is not seen again).
    let outside: i32 = first.wait_for_report("pid_outside").parse().unwrap();
    first.wait_for_report("holding");
    // Killed while holding, as `docker kill` would; `unshare` reaps it.
    kill(Pid::from_raw(outside), Signal::SIGKILL).unwrap();
    let first = first.finish();
    let first_ns: u64 = first.report("pid_namespace");
    let inside: u32 = first.report("pid_inside");
    assert_ne!(first_ns, namespace_of_self("pid"), "the first life ran in a namespace of its own");
    // Read-write only to reach the lock words; this handle writes nothing.
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    assert_eq!(lock_word(&store, 0) & PID_MASK, inside, "the dead writer still names itself holder");

    let second = spawn_under(CONTAINER, TEST, "second", &args).finish_ok();
    let second_ns: u64 = second.report("pid_namespace");
    assert_ne!(second_ns, first_ns, "the restart is a new pid namespace");
    let lives: Option<u64> = second.reports().get("lives").and_then(|v| v.parse().ok());
    assert_eq!(lives, Some(2), "the restarted container must write:\n{}", second.describe());
    assert_eq!(second.report::<u64>("takeovers"), 1, "the dead holder's word was taken over");
    assert_eq!(second.report::<u64>("repair_passes"), 1);
    let recorded = store.coordinator_word(region::WORD_PID_NAMESPACE).unwrap().unwrap().load(Ordering::Relaxed);
    assert_eq!(recorded, second_ns as u32, "the region now names the new namespace");

    // Nobody is attached any more: the host's namespace may write too.
    let (store, lock) = attach(&path.display().to_string()).expect("the host attaches once the container is gone");
    assert_eq!(bump(&store, &lock), 3);
    assert!(store.verify().is_clean());
}

/// Child: a writer in another container. Tries to attach while the parent is
/// attached (refused), then again once the parent has let go (accepted), and
/// stays attached until the parent closes its standard input.
fn contender(ctx: ChildContext) -> ! {
    let (path, parent_gone) = (&ctx.args()[0], Path::new(&ctx.args()[1]));
    report_where(&ctx);
    match attach(path) {
        Ok(_) => ctx.report("first_attempt", "attached"),
        Err(e) => ctx.report("first_attempt", e),
    }
    wait_for_file(parent_gone, "the parent lets go of the store");
    // The parent's attachment ends with its last descriptor, and a child it
    // is forking for another test may hold a copy until it `exec`s: retry
    // until the parent is truly gone.
    let started = std::time::Instant::now();
    let (store, lock) = loop {
        match attach(path) {
            Ok(attached) => break attached,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(60) => {
                assert!(e.to_string().contains("pid namespace"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => panic!("attach once the other namespace is gone: {e}"),
        }
    };
    ctx.report("lives", bump(&store, &lock));
    ctx.wait_for_start();
    drop(lock);
    ctx.exit()
}

fn assert_refused_for_namespace(what: &str, message: &str) {
    for needed in ["pid namespace", "stop the other namespace's writers"] {
        assert!(message.contains(needed), "{what}: the refusal must say {needed:?}: {message}");
    }
}

#[test]
fn two_live_pid_namespaces_are_refused() {
    const TEST: &str = "two_live_pid_namespaces_are_refused";
    if let Some(ctx) = child(TEST) {
        contender(ctx)
    }
    if let Some(reason) = cannot_run_under(CONTAINER) {
        println!("skipped: {reason}");
        return;
    }
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("shared.maph");
    let parent_gone = dir.path().join("parent-gone");
    Store::create(&path, futex_config(64)).unwrap();
    let p = path.display().to_string();

    // The host's namespace is attached: the container is refused.
    let (store, lock) = attach(&p).unwrap();
    assert_eq!(bump(&store, &lock), 1);
    let mut container = spawn_under(CONTAINER, TEST, "contender", &[p.clone(), parent_gone.display().to_string()]);
    let refused = container.wait_for_report("first_attempt");
    assert_refused_for_namespace("a container while the host is attached", &refused);

    // The host lets go: the container attaches and writes.
    drop(lock);
    drop(store);
    std::fs::write(&parent_gone, b"").unwrap();
    assert_eq!(container.wait_for_report("lives"), "2");

    // Now the container is attached: the host is refused.
    match attach(&p) {
        Err(e @ Error::Coordination { .. }) => {
            assert_refused_for_namespace("the host while a container is attached", &e.to_string())
        }
        other => panic!("the host attached beside a live container: {:?}", other.map(|_| ())),
    }
    container.start();
    container.finish_ok();
    let (store, lock) = attach(&p).expect("the host attaches once the container has exited");
    assert_eq!(bump(&store, &lock), 3);
}
