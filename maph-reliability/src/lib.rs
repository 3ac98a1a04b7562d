//! # maph-reliability
//!
//! The reliability gauntlet: one crate whose tests put every coordinator
//! through the same crash loop (maph-testkit's [`CrashLoop`]): a writer process
//! doing random sets and deletes is killed with SIGKILL at random moments, at
//! least 100 times in a row, and after each kill a fresh process repairs the
//! store and checks every key against what the writer had acknowledged.
//! The locks held by the killed process must be recovered each time: flock and
//! fcntl by the kernel, the futex lock by its robust takeover, the Redis token
//! by its ttl.
//!
//! `docs/RELIABILITY.md` lists every guarantee and the test that checks it.
//!
//! [`CrashLoop`]: https://docs.rs/maph-testkit
