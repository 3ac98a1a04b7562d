//! Fencing that cannot wedge a store: fences are exact 64-bit integers end to
//! end (across 2⁵³, where Lua's numbers stop being exact, up to 2⁶³ − 1, where
//! Redis's integers end), and a store whose highest fence word is damaged is
//! reported by a check and repaired by a documented procedure, while writers
//! of other processes are refused with an error that names the repair.

mod support;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use maph_coord_redis::{check_fence, FenceVerdict, RedisConfig, RedisCoordinator, IMPLAUSIBLE_FENCE_GAP, MAX_FENCE};
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use maph_testkit::{child, spawn, ChildContext};
use redis::TypedCommands;
use support::RedisServer;

/// Far beyond any honest wait, even on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// Offset of the header's highest-fence word (docs/FORMAT.md).
const HIGHEST_FENCE_OFFSET: u64 = maph_core::format::OFF_HIGHEST_FENCE as u64;

/// Takes the token, writes under it, and returns the fence it carried.
fn write_once(store: &Store, token: &RedisCoordinator) -> maph_core::Result<u64> {
    let guard = token.lock_exclusive_for(LockScope::Whole, PATIENCE)?;
    store.write_with(&guard, |tx| tx.set(b"k", b"v"))?;
    Ok(guard.fence().expect("the token carries a fence"))
}

#[test]
fn fences_are_exact_across_2_53_and_end_cleanly_at_2_63() {
    let server = RedisServer::start();
    let dir = maph_testkit::temp_dir();
    let path = support::create_store(dir.path(), 64);
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let name = support::unique_name("exact");
    let token = RedisCoordinator::new(&store, RedisConfig::new(server.url()).name(&name)).unwrap();
    let counter = token.fence_key().to_string();
    let mut redis = support::connection(&server);

    // Across 2^53: every fence exactly one above the last.
    redis.set(&counter, (1u64 << 53) - 3).unwrap();
    for expected in ((1u64 << 53) - 2)..=((1 << 53) + 2) {
        assert_eq!(write_once(&store, &token).unwrap(), expected);
        assert_eq!(store.highest_fence(), expected);
    }
    // The counter lost (deleted, or a replica a few fences behind): the
    // store's fence is the floor, exactly.
    redis.del(&counter).unwrap();
    assert_eq!(write_once(&store, &token).unwrap(), (1 << 53) + 3);
    redis.set(&counter, (1u64 << 53) + 1).unwrap();
    assert_eq!(write_once(&store, &token).unwrap(), (1 << 53) + 4);
    assert_eq!(redis.get(&counter).unwrap().as_deref(), Some("9007199254740996"), "Redis's counter, exactly");

    // Up to Redis's last integer, then a clear error, not a loop.
    redis.set(&counter, MAX_FENCE - 2).unwrap();
    assert_eq!(write_once(&store, &token).unwrap(), MAX_FENCE - 1);
    assert_eq!(write_once(&store, &token).unwrap(), MAX_FENCE);
    let started = Instant::now();
    match write_once(&store, &token) {
        Err(Error::Coordination { detail, .. }) => assert!(detail.contains("repair"), "{detail}"),
        other => panic!("expected a Coordination error at 2^63 - 1, got {other:?}"),
    }
    assert!(started.elapsed() < PATIENCE / 2, "the refusal took {:?}", started.elapsed());
    assert!(matches!(token.check_fence().unwrap().verdict(), FenceVerdict::Implausible { .. }));
    assert_eq!(token.held_token(), None, "nothing is held after the refusal");

    // A counter that is not a number: an error that says what to do.
    redis.set(&counter, "garbage").unwrap();
    let err = token.check_fence().unwrap_err().to_string();
    assert!(err.contains("Delete the key"), "{err}");
}

/// Flips bit 62 of the header's highest-fence word, as damage would, with
/// write(2) on the file (the mapping shares the page cache).
fn damage_highest_fence(path: &Path) -> u64 {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, HIGHEST_FENCE_OFFSET).unwrap();
    let damaged = u64::from_le_bytes(word) ^ (1 << 62);
    file.write_all_at(&damaged.to_le_bytes(), HIGHEST_FENCE_OFFSET).unwrap();
    damaged
}

/// Child: one write through a coordinator of its own; reports the outcome.
fn writer(ctx: ChildContext) -> ! {
    let (url, name, path) = (&ctx.args()[0], &ctx.args()[1], &ctx.args()[2]);
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    let token = RedisCoordinator::new(&store, RedisConfig::new(url).name(name)).unwrap();
    match write_once(&store, &token) {
        Ok(fence) => ctx.report("wrote", fence),
        Err(e) => ctx.report("refused", e.to_string().replace('\n', " ")),
    }
    ctx.exit()
}

#[test]
fn a_damaged_highest_fence_is_reported_and_repaired() {
    const TEST: &str = "a_damaged_highest_fence_is_reported_and_repaired";
    if let Some(ctx) = child(TEST) {
        writer(ctx)
    }
    let server = RedisServer::start();
    let dir = maph_testkit::temp_dir();
    let path = support::create_store(dir.path(), 64);
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let name = support::unique_name(TEST);
    let config = RedisConfig::new(server.url()).name(&name);
    let token = RedisCoordinator::new(&store, config.clone()).unwrap();
    for _ in 0..3 {
        write_once(&store, &token).unwrap();
    }
    assert_eq!(token.check_fence().unwrap().verdict(), FenceVerdict::InStep);

    let damaged = damage_highest_fence(&path);
    assert_eq!(store.highest_fence(), damaged);
    // The read-only check a `verify` makes: reported, with what to do.
    let reader = Store::open(&path, Mode::ReadOnly).unwrap();
    let found = check_fence(&reader, &config).unwrap();
    assert_eq!((found.store_highest, found.counter), (damaged, Some(3)));
    assert!(matches!(found.verdict(), FenceVerdict::Implausible { by } if by > IMPLAUSIBLE_FENCE_GAP), "{found}");
    assert!(found.to_string().contains("repair_fence"), "{found}");

    // Writers, here and in another process, are refused with that message
    // (not wedged on StaleFence, not looping), and nothing is written.
    let args = vec![server.url().to_string(), name.clone(), path.display().to_string()];
    let refused = spawn(TEST, "writer", &args).finish_ok().report::<String>("refused");
    assert!(refused.contains("damaged") && refused.contains("repair_fence"), "{refused}");
    assert!(matches!(store.set(&token, b"k", b"x"), Err(Error::Coordination { .. })));
    assert_eq!(store.highest_fence(), damaged);

    // The repair: the word is lowered to a fence issued from Redis's counter.
    let repair = token.repair_fence(&store, PATIENCE).unwrap();
    assert_eq!(repair.found, found);
    assert_eq!(repair.reset_to, Some(4), "the counter was at 3");
    assert_eq!(store.highest_fence(), 4);
    assert_eq!(token.check_fence().unwrap().verdict(), FenceVerdict::InStep);
    // Writers work again, in every process, with fences above the repair's.
    assert_eq!(spawn(TEST, "writer", &args).finish_ok().report::<u64>("wrote"), 5);
    assert_eq!(write_once(&store, &token).unwrap(), 6);
    // A store in step needs nothing.
    assert_eq!(token.repair_fence(&store, PATIENCE).unwrap().reset_to, None);
    assert!(store.verify().is_clean());

    // A fence at 2^63 - 1 or above is damage however the counter stands.
    let mut redis = support::connection(&server);
    redis.del(token.fence_key()).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&u64::MAX.to_le_bytes(), HIGHEST_FENCE_OFFSET)
        .unwrap();
    assert!(matches!(store.set(&token, b"k", b"x"), Err(Error::Coordination { .. })));
    assert_eq!(token.repair_fence(&store, PATIENCE).unwrap().reset_to, Some(1), "a fresh counter starts at 1");
    assert_eq!(write_once(&store, &token).unwrap(), 2);
}
