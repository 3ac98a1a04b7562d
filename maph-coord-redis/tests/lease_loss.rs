//! A lease that ends behind the holder's back (token deleted, Redis restarted,
//! holder killed) stops the holder's writes cleanly, and does not stop anyone
//! else for longer than the ttl.

mod support;

use std::time::{Duration, Instant};

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{Error, ExclusiveGuard, LockScope, Mode, Store, WriteCoordinator};
use maph_testkit::{child, spawn, ChildContext};
use redis::TypedCommands;
use support::RedisServer;

/// How long anyone waits for a condition or the token (generous: the machine
/// may be busy compiling).
const PATIENCE: Duration = Duration::from_secs(60);
/// The holders' lease: short, so the tests do not wait long, and long enough
/// (renewed every 667 ms) that a busy machine does not end it by starvation.
const TTL: Duration = Duration::from_secs(2);

struct Holder {
    store: Store,
    token: RedisCoordinator,
}

/// A child's store and coordinator, from its arguments `url name path`.
fn holder(ctx: &ChildContext, config: impl FnOnce(RedisConfig) -> RedisConfig) -> Holder {
    let (url, name, path) = (&ctx.args()[0], &ctx.args()[1], &ctx.args()[2]);
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    let token = RedisCoordinator::new(&store, config(RedisConfig::new(url).name(name))).unwrap();
    Holder { store, token }
}

/// Waits until the lease check fails (the renewal thread noticed), then
/// returns that error.
fn wait_until_invalid(guard: &ExclusiveGuard<'_, RedisCoordinator>) -> Error {
    let started = Instant::now();
    loop {
        match guard.validate() {
            Err(e) => return e,
            Ok(()) if started.elapsed() > PATIENCE => panic!("the lease still looks valid after {PATIENCE:?}"),
            // The renewal thread runs every ttl/3; poll the condition it sets.
            Ok(()) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn parent_setup(test: &str, server: &RedisServer) -> (tempfile::TempDir, std::path::PathBuf, String, Vec<String>) {
    let dir = maph_testkit::temp_dir();
    let path = support::create_store(dir.path(), 128);
    let name = support::unique_name(test);
    let args = vec![server.url().to_string(), name.clone(), path.display().to_string()];
    (dir, path, name, args)
}

/// With `confirm_before_write`, the very next write after the token was
/// deleted is refused, and nothing of it is written.
#[test]
fn a_deleted_token_stops_the_next_write() {
    const TEST: &str = "a_deleted_token_stops_the_next_write";
    if let Some(ctx) = child(TEST) {
        let h = holder(&ctx, |c| c.confirm_before_write(true));
        let guard = h.token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
        h.store.write_with(&guard, |tx| tx.set(b"k", b"1")).unwrap();
        ctx.report("locked", h.token.token_key());
        ctx.wait_for_start(); // the parent deletes the token meanwhile
        let after = h.store.write_with(&guard, |tx| tx.set(b"k", b"2"));
        ctx.report("after", support::outcome(&after));
        drop(guard);
        ctx.exit();
    }
    let server = RedisServer::start();
    let (_dir, path, _, args) = parent_setup(TEST, &server);
    let mut c = spawn(TEST, "holder", &args);
    let token_key = c.wait_for_report("locked");
    assert_eq!(support::connection(&server).del(&token_key).unwrap(), 1, "the holder's token was there to delete");
    let done = c.finish_ok();
    let after: String = done.report("after");
    assert!(after.starts_with("LeaseLost"), "{after}");
    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!(support::text(&store, b"k").as_deref(), Some("1"), "the refused write left nothing behind");
}

/// Without `confirm_before_write`, the renewal thread notices the deleted token
/// within one renewal interval, and from then on every write is refused.
#[test]
fn the_renewal_thread_notices_a_deleted_token() {
    const TEST: &str = "the_renewal_thread_notices_a_deleted_token";
    if let Some(ctx) = child(TEST) {
        let h = holder(&ctx, |c| c.ttl(TTL));
        let guard = h.token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
        h.store.write_with(&guard, |tx| tx.set(b"k", b"1")).unwrap();
        ctx.report("locked", h.token.token_key());
        ctx.wait_for_start();
        let noticed = wait_until_invalid(&guard);
        ctx.report("noticed", support::variant(&noticed));
        let after = h.store.write_with(&guard, |tx| tx.set(b"k", b"2"));
        ctx.report("after", support::outcome(&after));
        drop(guard);
        ctx.exit();
    }
    let server = RedisServer::start();
    let (_dir, path, _, args) = parent_setup(TEST, &server);
    let mut c = spawn(TEST, "holder", &args);
    let token_key = c.wait_for_report("locked");
    assert_eq!(support::connection(&server).del(&token_key).unwrap(), 1);
    let done = c.finish_ok();
    assert_eq!(done.report::<String>("noticed"), "LeaseLost", "{}", done.describe());
    assert!(done.report::<String>("after").starts_with("LeaseLost"), "{}", done.describe());
    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!(support::text(&store, b"k").as_deref(), Some("1"));
}

/// Redis restarts (without persistence: the token and the fence counter are
/// gone). The holder's lease is lost and its write refused; a new acquisition
/// then works, with a fence above every fence the store accepted, although
/// the new Redis counts from 1 again.
#[test]
fn a_redis_restart_loses_the_lease_and_a_new_one_works() {
    const TEST: &str = "a_redis_restart_loses_the_lease_and_a_new_one_works";
    if let Some(ctx) = child(TEST) {
        let h = holder(&ctx, |c| c.ttl(TTL));
        // Two acquisitions first, so the store has seen fence 2 and a fresh
        // counter (1) would be stale.
        h.store.set(&h.token, b"k", b"0").unwrap();
        let guard = h.token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
        h.store.write_with(&guard, |tx| tx.set(b"k", b"1")).unwrap();
        ctx.report("locked", guard.fence().unwrap());
        ctx.wait_for_start(); // the parent restarts Redis meanwhile
        let noticed = wait_until_invalid(&guard);
        ctx.report("noticed", support::variant(&noticed));
        ctx.report("after", support::outcome(&h.store.write_with(&guard, |tx| tx.set(b"k", b"lost"))));
        drop(guard);
        let again = h.token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
        ctx.report("new_fence", again.fence().unwrap());
        ctx.report("new_write", support::outcome(&h.store.write_with(&again, |tx| tx.set(b"k", b"2"))));
        drop(again);
        ctx.exit();
    }
    let mut server = RedisServer::start_own(&[]);
    let (_dir, path, _, args) = parent_setup(TEST, &server);
    let mut c = spawn(TEST, "holder", &args);
    let old_fence: u64 = c.wait_for_report("locked").parse().unwrap();
    assert_eq!(old_fence, 2);
    server.restart();
    let done = c.finish_ok();
    assert_eq!(done.report::<String>("noticed"), "LeaseLost", "{}", done.describe());
    assert!(done.report::<String>("after").starts_with("LeaseLost"), "{}", done.describe());
    let new_fence: u64 = done.report("new_fence");
    assert!(new_fence > old_fence, "new fence {new_fence} must pass the store's {old_fence}");
    assert_eq!(done.report::<String>("new_write"), "Ok", "{}", done.describe());
    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!(support::text(&store, b"k").as_deref(), Some("2"));
    assert_eq!(store.highest_fence(), new_fence);
}

/// A holder killed with SIGKILL (no release) keeps the token only until its
/// ttl runs out; then another writer gets it, with a higher fence.
#[test]
fn a_killed_holder_blocks_others_only_until_its_ttl() {
    const TEST: &str = "a_killed_holder_blocks_others_only_until_its_ttl";
    if let Some(ctx) = child(TEST) {
        let h = holder(&ctx, |c| c.ttl(TTL));
        let guard = h.token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
        h.store.write_with(&guard, |tx| tx.set(b"k", b"child")).unwrap();
        ctx.report("locked", guard.fence().unwrap());
        ctx.wait_for_start(); // killed here
        unreachable!("the parent kills this child");
    }
    let server = RedisServer::start();
    let (_dir, path, name, args) = parent_setup(TEST, &server);
    let mut c = spawn(TEST, "holder", &args);
    let child_fence: u64 = c.wait_for_report("locked").parse().unwrap();
    c.kill();
    let killed = c.finish();
    assert!(!killed.status.success());

    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let token = RedisCoordinator::new(&store, RedisConfig::new(server.url()).name(name)).unwrap();
    let started = Instant::now();
    let guard = token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
    let waited = started.elapsed();
    assert!(guard.fence().unwrap() > child_fence);
    store.write_with(&guard, |tx| tx.set(b"k", b"parent")).unwrap();
    assert_eq!(support::text(&store, b"k").as_deref(), Some("parent"));
    // Not a performance claim: only that the wait ended by expiry, not by luck
    // or a deadline (PATIENCE is far longer).
    assert!(waited < PATIENCE / 2, "waited {waited:?} for a token with a {TTL:?} ttl");
    println!("waited {waited:?} for a dead holder's {TTL:?} token");
}
