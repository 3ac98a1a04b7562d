//! Read-modify-write increments under the Redis token are never lost: across
//! processes (the shared harness), and across threads sharing one coordinator.

mod support;

use std::sync::Arc;

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{Config, Mode, Result, Store, WriteCoordinator};
use maph_testkit::{child, CounterRace};
use support::RedisServer;

/// The race's children only get the store's path, so the Redis URL and token
/// name travel in a file beside the store.
fn coordinator_beside(store: &Store) -> Result<RedisCoordinator> {
    let file = store.path().with_file_name("redis-settings");
    let settings = std::fs::read_to_string(&file).expect("the parent wrote the Redis settings");
    let (url, name) = settings.split_once('\n').expect("url and name");
    RedisCoordinator::new(store, RedisConfig::new(url).name(name))
}

/// 4 processes × 250 increments in per-operation mode (each increment takes
/// and gives back the token): exactly 1000. Per operation the token costs two
/// Redis round trips, so M is kept modest.
#[test]
fn processes_increment_exactly_under_the_token() {
    const TEST: &str = "processes_increment_exactly_under_the_token";
    let race = CounterRace::new(TEST, 4, 250).counters(3);
    // In a child, run_at never returns and ignores everything but `make`.
    let server = child(TEST).is_none().then(RedisServer::start);
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("race.maph");
    if let Some(server) = &server {
        let settings = format!("{}\n{}", server.url(), support::unique_name(TEST));
        std::fs::write(dir.path().join("redis-settings"), settings).unwrap();
    }
    let report = race.run_at(&path, Config::new(256).strategy(RedisCoordinator::STRATEGY), coordinator_beside);
    println!("{report}");
    assert_eq!(report.actual, report.expected, "{report}");
    assert_eq!(report.acquisitions, report.expected, "one token acquisition per increment: {report}");
    // Every commit presented a fence, each higher than the last one accepted.
    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert!(store.highest_fence() >= report.expected, "highest fence {}", store.highest_fence());
}

/// Threads of one process sharing one coordinator take turns on its in-process
/// gate, so two of them never both believe they hold the token.
#[test]
fn threads_sharing_one_coordinator_increment_exactly() {
    let server = RedisServer::start();
    let dir = maph_testkit::temp_dir();
    let path = support::create_store(dir.path(), 64);
    let store = Arc::new(Store::open(&path, Mode::ReadWrite).unwrap());
    let config = RedisConfig::new(server.url()).name(support::unique_name("threads"));
    let token = Arc::new(RedisCoordinator::new(&store, config).unwrap());
    const THREADS: u64 = 4;
    const EACH: u64 = 200;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, token) = (Arc::clone(&store), Arc::clone(&token));
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    store
                        .update(&token, b"n", |old| {
                            let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                            Some((n + 1).to_string())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(support::text(&store, b"n").as_deref(), Some((THREADS * EACH).to_string().as_str()));
    assert_eq!(token.contention().acquisitions, THREADS * EACH);
    assert_eq!(token.held_token(), None, "every guard gave the token back");
}
