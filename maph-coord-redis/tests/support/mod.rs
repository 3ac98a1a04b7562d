//! Test support for the Redis coordinator: the shared `RedisServer` of
//! maph-testkit (a real `redis-server` on a free loopback port, or the one in
//! `MAPH_REDIS_URL`), plus Redis-specific helpers.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use maph_coord_redis::RedisCoordinator;
use maph_core::{Config, Store};
#[allow(unused_imports)] // each test binary uses a different part
pub use maph_testkit::{free_port, RedisServer};

/// A plain connection to `server`, for looking at or tampering with keys.
pub fn connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("connect to the test redis at {}: {e}", server.url()))
}

/// A token name no other test (or run) uses, so tests sharing one server via
/// `MAPH_REDIS_URL` never share a token.
pub fn unique_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{test}-{}-{nanos}", std::process::id())
}

/// Creates a store for Redis-coordinated writers in `dir`.
pub fn create_store(dir: &Path, slots: u64) -> PathBuf {
    let path = dir.join("store.maph");
    Store::create(&path, Config::new(slots).strategy(RedisCoordinator::STRATEGY)).expect("create the store");
    path
}

/// A value from the store as text.
pub fn text(store: &Store, key: &[u8]) -> Option<String> {
    store.get(key).expect("read").map(|v| String::from_utf8(v).expect("utf-8 value"))
}

/// The variant name of a write's outcome, with its message (for reports).
pub fn outcome(result: &maph_core::Result<()>) -> String {
    match result {
        Ok(()) => "Ok".to_string(),
        Err(e) => format!("{}: {e}", variant(e)),
    }
}

/// The name of an error's variant.
pub fn variant(e: &maph_core::Error) -> &'static str {
    use maph_core::Error::*;
    match e {
        StaleFence { .. } => "StaleFence",
        LeaseLost { .. } => "LeaseLost",
        LockTimeout { .. } => "LockTimeout",
        Coordination { .. } => "Coordination",
        _ => "Other",
    }
}
