//! What the Redis token costs per write, uncontended, against the server in
//! `MAPH_REDIS_URL` (default `redis://127.0.0.1:6379/`).
//!
//! ```sh
//! redis-server --port 6399 --save "" --appendonly no &
//! MAPH_REDIS_URL=redis://127.0.0.1:6399/ cargo run --release --example round_trip -p maph-coord-redis
//! ```
//!
//! A rough figure for the docs; the benchmark crate measures properly (and
//! under contention).

use std::time::{Duration, Instant};

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};

/// Median time of one `op` over `n` runs (the median, not the mean: other
/// processes on a shared machine stretch some runs a lot).
fn per_op(n: u32, mut op: impl FnMut(u32)) -> Duration {
    for i in 0..n / 10 {
        op(i); // warm up
    }
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let started = Instant::now();
            op(i);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() -> maph_core::Result<()> {
    let config = RedisConfig::from_env_or("redis://127.0.0.1:6379/").name(format!("round-trip-{}", std::process::id()));
    println!("Redis at {}", config.redacted_url());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("round_trip.maph");
    Store::create(&path, Config::new(100_000).strategy(RedisCoordinator::STRATEGY))?;
    let store = Store::open(&path, Mode::ReadWrite)?;

    let mut redis = redis::Client::open(config.url.as_str())
        .and_then(|c| c.get_connection())
        .expect("connect to Redis (is it running? set MAPH_REDIS_URL)");
    let ping = per_op(5_000, |_| {
        redis::cmd("PING").query::<String>(&mut redis).expect("PING");
    });

    let script = redis::Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end return 0");
    let lua = per_op(5_000, |_| {
        script.key("round-trip-probe").arg("x").invoke::<i64>(&mut redis).expect("EVALSHA");
    });

    let token = RedisCoordinator::new(&store, config.clone())?;
    let per_operation = per_op(5_000, |i| store.set(&token, format!("k{}", i % 1000).as_bytes(), b"v").expect("set"));
    let guard = token.lock_exclusive(LockScope::Whole)?;
    let lease = per_op(50_000, |i| {
        store.write_with(&guard, |tx| tx.set(format!("k{}", i % 1000).as_bytes(), b"v")).expect("write")
    });
    drop(guard);

    let confirming = RedisCoordinator::new(&store, config.confirm_before_write(true))?;
    let guard = confirming.lock_exclusive(LockScope::Whole)?;
    let confirmed = per_op(5_000, |i| {
        store.write_with(&guard, |tx| tx.set(format!("k{}", i % 1000).as_bytes(), b"v")).expect("write")
    });
    drop(guard);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("{cores} cores; median per operation, uncontended:");
    println!("  PING round trip (redis crate)            {ping:>10.1?}");
    println!("  small Lua script round trip (EVALSHA)    {lua:>10.1?}");
    println!("  per-operation write (acquire + release)  {per_operation:>10.1?}");
    println!("  lease-mode write (token held)            {lease:>10.1?}");
    println!("  lease-mode write, confirm_before_write   {confirmed:>10.1?}");
    Ok(())
}
