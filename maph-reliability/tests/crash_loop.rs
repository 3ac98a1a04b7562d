//! The crash loop, once per coordinator: 100 SIGKILLs of a writer each.

use std::time::Duration;

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{Config, SingleWriter, Store, Strategy};
use maph_lock_fcntl::FcntlCoordinator;
use maph_lock_flock::FlockCoordinator;
use maph_lock_futex::FutexCoordinator;
use maph_testkit::{CrashLoop, RedisServer, REDIS_URL_ENV};

const KILLS: usize = 100;

fn config(strategy: Strategy) -> Config {
    Config::new(256).slot_size(128).strategy(strategy)
}

fn run<C: maph_core::WriteCoordinator>(
    test: &str,
    strategy: Strategy,
    make: impl Fn(&Store) -> maph_core::Result<C>,
) -> maph_testkit::CrashReport {
    let report = CrashLoop::new(test, KILLS).run(config(strategy), make);
    println!("{test}: {report}");
    assert_eq!(report.kills, KILLS);
    report
}

#[test]
fn single_writer_survives_sigkill() {
    run("single_writer_survives_sigkill", SingleWriter::STRATEGY, SingleWriter::new);
}

#[test]
fn flock_survives_sigkill() {
    run("flock_survives_sigkill", FlockCoordinator::STRATEGY, FlockCoordinator::new);
}

#[test]
fn fcntl_whole_file_survives_sigkill() {
    run("fcntl_whole_file_survives_sigkill", FcntlCoordinator::STRATEGY, FcntlCoordinator::new);
}

#[test]
fn fcntl_byte_range_survives_sigkill() {
    run("fcntl_byte_range_survives_sigkill", FcntlCoordinator::STRATEGY, FcntlCoordinator::byte_range);
}

#[test]
fn futex_global_survives_sigkill() {
    // The coordinator keeps its own handle of the store (it owns an Arc<Store>).
    run("futex_global_survives_sigkill", FutexCoordinator::STRATEGY, |store| FutexCoordinator::global(store.reopen()?));
}

#[test]
fn futex_striped_survives_sigkill() {
    run("futex_striped_survives_sigkill", FutexCoordinator::STRATEGY, |store| {
        FutexCoordinator::striped(store.reopen()?, 8)
    });
}

/// The Redis token of a killed holder is recovered by its ttl (kept short here
/// so a hundred kills take seconds, not minutes).
#[test]
fn redis_token_survives_sigkill() {
    const TEST: &str = "redis_token_survives_sigkill";
    // The parent starts the server; each writer child finds it in the variable.
    let server = if maph_testkit::child(TEST).is_none() { Some(RedisServer::start()) } else { None };
    let url = match &server {
        Some(s) => s.url().to_string(),
        None => std::env::var(REDIS_URL_ENV).expect("the parent passes the server's URL"),
    };
    let name = format!("crash-loop-{}", std::process::id());
    let make = |store: &Store| {
        let url = std::env::var(REDIS_URL_ENV).unwrap_or_else(|_| url.clone());
        let name = std::env::var("MAPH_CRASH_TOKEN").unwrap_or_else(|_| name.clone());
        RedisCoordinator::new(
            store,
            RedisConfig::new(url)
                .name(name)
                .ttl(Duration::from_millis(200))
                .renew_every(Duration::from_millis(60))
                .clock_margin(Duration::from_millis(20)),
        )
    };
    let report = CrashLoop::new(TEST, KILLS)
        .env(REDIS_URL_ENV, &url)
        .env("MAPH_CRASH_TOKEN", &name)
        .run(config(RedisCoordinator::STRATEGY), make);
    println!("{TEST}: {report}");
    assert_eq!(report.kills, KILLS);
}
