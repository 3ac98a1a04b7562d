//! Redis down, silent, or refusing the password; the token busy past a
//! deadline; a lease kept alive across many ttls; a shared guard. Each failure is a clear
//! error within its time limit, and nothing is written without a token.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{Error, LockScope, Mode, Store, WriteCoordinator};
use support::RedisServer;

/// "Not absurdly after" bound for operations with second-scale timeouts.
const ABSURD: Duration = Duration::from_secs(20);

fn store_in(dir: &tempfile::TempDir) -> Store {
    Store::open(support::create_store(dir.path(), 64), Mode::ReadWrite).unwrap()
}

fn coordination_detail(e: Error) -> String {
    match e {
        Error::Coordination { strategy, detail } => {
            assert_eq!(strategy, RedisCoordinator::STRATEGY);
            println!("{detail}");
            detail
        }
        other => panic!("expected a Coordination error, got {other:?}"),
    }
}

#[test]
fn nothing_listening_is_a_clear_error_when_the_coordinator_is_made() {
    let dir = maph_testkit::temp_dir();
    let store = store_in(&dir);
    let url = format!("redis://127.0.0.1:{}/", support::free_port());
    let started = Instant::now();
    let detail = coordination_detail(RedisCoordinator::new(&store, RedisConfig::new(&url)).unwrap_err());
    assert!(started.elapsed() < ABSURD);
    assert!(detail.contains("connection refused") && detail.contains("redis-server"), "{detail}");
    assert!(detail.contains("MAPH_REDIS_URL"), "{detail}");
}

#[test]
fn redis_down_at_acquire_time_fails_within_the_deadline_and_writes_nothing() {
    let mut server = RedisServer::start_own(&[]);
    let dir = maph_testkit::temp_dir();
    let store = store_in(&dir);
    let token = RedisCoordinator::new(&store, RedisConfig::new(server.url())).unwrap();
    store.set(&token, b"before", b"1").unwrap();
    let generation = store.generation();
    server.stop();

    let detail = coordination_detail(store.set(&token, b"k", b"v").unwrap_err());
    assert!(detail.contains("redis-server"), "{detail}");

    let deadline = Duration::from_secs(2);
    let started = Instant::now();
    let detail = coordination_detail(token.lock_exclusive_for(LockScope::Whole, deadline).unwrap_err());
    let took = started.elapsed();
    assert!(took < deadline + RedisConfig::DEFAULT_CONNECT_TIMEOUT, "took {took:?}");
    assert!(detail.contains("MAPH_REDIS_URL"), "{detail}");

    assert_eq!(store.get(b"k").unwrap(), None);
    assert_eq!(store.generation(), generation, "nothing was committed");
    // The in-process gate was given back on the error path: another attempt
    // fails the same way instead of hanging.
    assert!(token.try_lock_exclusive(LockScope::Whole).is_err());
}

/// A server that accepts connections but never answers: every step is bounded
/// by the configured timeouts.
#[test]
fn a_server_that_never_answers_times_out() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let dir = maph_testkit::temp_dir();
    let store = store_in(&dir);
    let limit = Duration::from_millis(300);
    let config = RedisConfig::new(url).connect_timeout(limit).io_timeout(limit);
    let started = Instant::now();
    let detail = coordination_detail(RedisCoordinator::new(&store, config).unwrap_err());
    let took = started.elapsed();
    assert!(took >= limit, "gave up after {took:?}, before the {limit:?} timeout");
    assert!(took < ABSURD, "took {took:?}");
    assert!(detail.contains("did not answer"), "{detail}");
    drop(silent);
}

#[test]
fn a_missing_or_wrong_password_is_reported_without_leaking_it() {
    let server = RedisServer::start_own(&["--requirepass", "right-pw"]);
    let dir = maph_testkit::temp_dir();
    let store = store_in(&dir);

    let detail = coordination_detail(RedisCoordinator::new(&store, RedisConfig::new(server.url())).unwrap_err());
    assert!(detail.contains("requires a password"), "{detail}");

    let wrong = server.url_with_password("wrong-pw");
    let detail = coordination_detail(RedisCoordinator::new(&store, RedisConfig::new(wrong)).unwrap_err());
    assert!(detail.contains("refused the credentials"), "{detail}");
    assert!(!detail.contains("wrong-pw"), "the password leaked: {detail}");
    assert!(detail.contains(":***@"), "{detail}");

    let right = RedisConfig::new(server.url_with_password("right-pw"));
    let token = RedisCoordinator::new(&store, right).unwrap();
    store.set(&token, b"k", b"v").unwrap();
    assert_eq!(support::text(&store, b"k").as_deref(), Some("v"));
}

#[test]
fn a_busy_token_times_out_at_the_deadline_and_not_before() {
    let server = RedisServer::start();
    let dir = maph_testkit::temp_dir();
    let store = store_in(&dir);
    let config = RedisConfig::new(server.url()).name(support::unique_name("busy"));
    let holder = RedisCoordinator::new(&store, config.clone()).unwrap();
    let waiter = RedisCoordinator::new(&store, config).unwrap();
    let _held = holder.lock_exclusive(LockScope::Whole).unwrap();

    assert!(waiter.try_lock_exclusive(LockScope::Whole).unwrap().is_none());
    let deadline = Duration::from_millis(300);
    let started = Instant::now();
    let err = waiter.lock_exclusive_for(LockScope::Whole, deadline).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err:?}");
    assert!(took >= deadline, "gave up after {took:?}, before the {deadline:?} deadline");
    assert!(took < ABSURD, "took {took:?}");
    let stats = waiter.contention();
    assert_eq!((stats.acquisitions, stats.timeouts), (0, 2));
    assert_eq!(store.get(b"anything").unwrap(), None);
}

/// The renewal thread keeps a lease alive far past its ttl while the holder
/// keeps writing.
#[test]
fn a_renewed_lease_outlives_many_ttls() {
    let server = RedisServer::start();
    let dir = maph_testkit::temp_dir();
    let store = store_in(&dir);
    let ttl = Duration::from_secs(2);
    let config = RedisConfig::new(server.url()).name(support::unique_name("renewed")).ttl(ttl);
    let token = RedisCoordinator::new(&store, config).unwrap();
    let guard = token.lock_exclusive(LockScope::Whole).unwrap();
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed() < ttl * 3 {
        writes += 1;
        store.write_with(&guard, |tx| tx.set(b"n", writes.to_string().as_bytes())).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(support::text(&store, b"n"), Some(writes.to_string()));
    assert_eq!(token.contention().acquisitions, 1, "one acquisition for all {writes} writes");
}

/// Redis has one token, not a reader-writer lock: a shared guard holds it too,
/// so writers (here through another coordinator, as another process would)
/// are kept out until it drops.
#[test]
fn a_shared_guard_keeps_writers_out() {
    let server = RedisServer::start();
    let dir = maph_testkit::temp_dir();
    let store = store_in(&dir);
    let config = RedisConfig::new(server.url()).name(support::unique_name("shared"));
    let reader = RedisCoordinator::new(&store, config.clone()).unwrap();
    let writer = RedisCoordinator::new(&store, config).unwrap();
    let shared = reader.lock_shared(LockScope::Whole).unwrap();
    assert!(writer.try_lock_exclusive(LockScope::Whole).unwrap().is_none());
    assert!(reader.held_token().is_some());
    drop(shared);
    assert_eq!(reader.held_token(), None);
    store.set(&writer, b"k", b"v").unwrap();
    assert_eq!(support::text(&store, b"k").as_deref(), Some("v"));
}
