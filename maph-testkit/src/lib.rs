//! # maph-testkit
//!
//! The one multi-process test harness of the maph workspace. Concurrency claims
//! are proven with real processes, and every coordinator crate proves them with
//! this same code.
//!
//! A test spawns children by re-running its own test binary filtered to itself
//! (`<test binary> <test name> --exact`), with environment variables that tell
//! the child which role to play. The test function therefore starts by asking
//! [`child`] whether it is a child; a child does its part and exits, never
//! returning into the test body.
//!
//! - [`child`], [`spawn`], [`Child`]: the low-level pieces (any roles you like).
//! - [`CounterRace`]: P processes × M read-modify-write increments under a
//!   coordinator, then expected versus actual.
//! - [`CrashLoop`]: a writer killed with SIGKILL again and again; after each
//!   kill the store is repaired and checked against what was acknowledged.
//! - [`Contract`]: the scenarios every lock-based coordinator must pass across
//!   processes (reference Test 3, a panic releases the lock, a SIGKILLed holder
//!   blocks no one, deadlines, consistent shared views).
//! - [`RedisServer`]: a private `redis-server` on a loopback port, for the
//!   Redis coordinator's tests and the benchmark.
//!
//! Children start together: each blocks reading its standard input until the
//! parent closes it ([`start_all`]), so contention is real rather than staggered
//! by process start-up.

mod aliases;
mod contract;
mod crash;
#[cfg(feature = "test-hooks")]
mod handover;
mod process;
mod race;
mod redis_server;
mod refusals;

pub use contract::{Contract, GENEROUS};
pub use crash::{check_value, self_checking_value, CrashLoop, CrashReport};
pub use process::{
    child, die_with_parent, spawn, spawn_under, spawn_unprivileged, spawn_with_env, start_all, Child, ChildContext,
    Finished,
};
pub use race::{CounterRace, RaceReport};
pub use redis_server::{free_port, RedisServer, ENV_URL as REDIS_URL_ENV};

/// A fresh temporary directory for a test's store files (removed on drop).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("maph-test-").tempdir().expect("create a temporary directory")
}
