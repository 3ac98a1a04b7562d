//! A Redis that loses its fence counter does not wedge writers: the store's
//! highest fence is the floor for the next token.
//!
//! Three writer processes increment a key under the token, one acquisition
//! per increment, while the parent, on the live `redis-server`, resets the
//! fence counter again and again: deleting it (a restart without persistence)
//! or setting it a few fences lower (a replica promoted before it saw the last
//! increments). Every `PHASE` increments the writers wait at a barrier while
//! the parent resets the counter, so every reset is followed by acquisitions
//! of every writer; a second reset falls in the middle of each phase, while
//! the writers run. Every increment must land (no `StaleFence`, no lost
//! update), each writer's fences must keep rising, and Redis's counter ends in
//! step with the store.
//!
//! It runs twice: from a fresh counter, and from just below 2⁵³, across the
//! point where Lua's numbers (doubles) stop being exact integers.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use maph_coord_redis::{FenceVerdict, RedisConfig, RedisCoordinator};
use maph_core::{LockScope, Mode, Store, WriteCoordinator};
use maph_testkit::{child, spawn, start_all, ChildContext};
use redis::TypedCommands;
use support::RedisServer;

const TEST: &str = "a_lost_fence_counter_does_not_wedge_writers";
const WORKERS: u64 = 3;
const EACH: u64 = 150;
/// Increments between barriers: 150 / 25 = 5 barrier resets per run.
const PHASE: u64 = 25;
/// Far beyond any honest wait, even on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(120);

fn read_n(store: &Store) -> u64 {
    support::text(store, b"n").map_or(0, |v| v.parse().unwrap())
}

/// Waits, checking every millisecond, until `condition` holds; panics with
/// `what` after a bound only a stuck test reaches.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < PATIENCE, "stuck: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn wait_for(path: &Path) {
    wait_until(&format!("{} never appeared", path.display()), || path.exists());
}

/// Child: `EACH` increments, each under its own acquisition; reports how many
/// times its fence failed to rise.
fn worker(ctx: ChildContext) -> ! {
    let (url, name, path) = (&ctx.args()[0], &ctx.args()[1], &ctx.args()[2]);
    let (barriers, id) = (Path::new(&ctx.args()[3]), &ctx.args()[4]);
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    let token = RedisCoordinator::new(&store, RedisConfig::new(url).name(name)).unwrap();
    ctx.wait_for_start();
    let (mut last, mut not_rising) = (0u64, 0u64);
    for i in 0..EACH {
        if i > 0 && i % PHASE == 0 {
            let phase = i / PHASE;
            std::fs::write(barriers.join(format!("ready-{id}-{phase}")), b"").unwrap();
            wait_for(&barriers.join(format!("go-{phase}")));
        }
        let guard = token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
        let fence = guard.fence().unwrap();
        not_rising += u64::from(fence <= last);
        last = fence;
        store
            .write_with(&guard, |tx| {
                let n: u64 = tx.get(b"n")?.map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap());
                tx.set(b"n", (n + 1).to_string().as_bytes())
            })
            .unwrap_or_else(|e| panic!("increment {i} with fence {fence}: {e}"));
    }
    ctx.report("not_rising", not_rising);
    ctx.report("last_fence", last);
    ctx.exit()
}

#[test]
fn a_lost_fence_counter_does_not_wedge_writers() {
    if let Some(ctx) = child(TEST) {
        worker(ctx)
    }
    let server = RedisServer::start();
    for start in [0, (1 << 53) - 150] {
        run(&server, start);
    }
}

fn run(server: &RedisServer, start: u64) {
    let dir = maph_testkit::temp_dir();
    let path = support::create_store(dir.path(), 128);
    let name = support::unique_name(TEST);
    let counter_key = format!("maph:{{{name}}}:fence");
    let mut redis = support::connection(server);
    if start > 0 {
        redis.set(&counter_key, start).unwrap();
    }
    let barriers = dir.path();
    let args = |id: u64| {
        let (url, path) = (server.url().to_string(), path.display().to_string());
        vec![url, name.clone(), path, barriers.display().to_string(), id.to_string()]
    };
    let mut workers: Vec<_> = (0..WORKERS).map(|id| spawn(TEST, "worker", &args(id))).collect();
    start_all(&mut workers);

    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    let total = WORKERS * EACH;
    let mut lose = |how: u64| {
        let counter: Option<u64> = redis.get(&counter_key).unwrap().map(|v| v.parse().unwrap());
        match counter {
            Some(counter) if how % 2 == 1 => redis.set(&counter_key, counter.saturating_sub(3)).unwrap(),
            _ => drop(redis.del(&counter_key).unwrap()),
        }
    };
    for phase in 1..EACH / PHASE {
        // Every writer waits at the barrier: none holds the token.
        for id in 0..WORKERS {
            wait_for(&barriers.join(format!("ready-{id}-{phase}")));
        }
        lose(phase);
        std::fs::write(barriers.join(format!("go-{phase}")), b"").unwrap();
        // And once while they run (each has PHASE increments to go before the
        // next barrier, so at least that many land).
        let now = read_n(&store);
        wait_until(&format!("start {start}: progress in phase {phase}"), || read_n(&store) >= now + PHASE);
        lose(phase + 1);
    }
    for w in workers {
        let done = w.finish_ok();
        assert_eq!(done.report::<u64>("not_rising"), 0, "start {start}: a fence did not rise\n{}", done.describe());
        assert!(done.report::<u64>("last_fence") > start);
    }
    assert_eq!(read_n(&store), total, "start {start}: an increment was lost");

    let check = maph_coord_redis::check_fence(&store, &RedisConfig::new(server.url()).name(&name)).unwrap();
    assert_eq!(check.verdict(), FenceVerdict::InStep, "start {start}: {check}");
    // One fence per increment, each above the last the store accepted.
    assert!(check.store_highest >= start + total, "start {start}: {check}");
}
