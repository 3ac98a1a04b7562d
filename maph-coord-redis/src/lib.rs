//! # maph-coord-redis
//!
//! Writers of a maph store take turns by holding a **write token** in Redis:
//! a key set with `SET NX PX`, held under a **lease** that a background thread
//! renews, and paired with a **fencing token** that the store itself checks.
//! This is the reference design's "application-level coordination" (its
//! strategy 3), made safe: the reference polled a key every 10 ms, and a writer
//! that stalled past its token's life could still write.
//!
//! ```no_run
//! use maph_core::{Config, Mode, Store};
//! use maph_coord_redis::{RedisConfig, RedisCoordinator};
//!
//! Store::create("users.maph", Config::new(100_000).strategy(RedisCoordinator::STRATEGY))?;
//! let store = Store::open("users.maph", Mode::ReadWrite)?;
//! // MAPH_REDIS_URL, if set, overrides the URL given here.
//! let token = RedisCoordinator::new(&store, RedisConfig::from_env_or("redis://127.0.0.1:6379/"))?;
//! store.update(&token, b"visits", |old| {
//!     let n: u64 = old.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
//!     Some((n + 1).to_string())
//! })?;
//! # Ok::<(), maph_core::Error>(())
//! ```
//!
//! ## Leases, and why they are not enough
//!
//! A lock held in a service must expire, or a holder that crashes blocks
//! everyone forever. So the token has a ttl; the holder renews it (every third
//! of the ttl by default) and stops writing when it can no longer be sure it
//! holds it. But "sure" is a judgement made by a process that can be paused at
//! any instant: by a stop signal, a page fault storm, a VM migration, a long
//! garbage-collection pause in a neighbour. A holder can check its lease, be
//! paused past the ttl, meanwhile another process takes the token and writes,
//! and then wake up and write on the strength of a check that was true when it
//! was made. No amount of checking *before* the write closes that window,
//! because the pause can fall between the check and the write. (Martin
//! Kleppmann's "How to do distributed locking" makes this argument against
//! lease-only locks such as Redlock.)
//!
//! ## Fencing
//!
//! The fix is to let the resource itself refuse late writers. Every acquisition
//! increments a counter in the same atomic Redis script that takes the token,
//! and the guard carries that number, the **fencing token**. The store records
//! the highest fence any commit presented (an atomic `fetch_max` on a header
//! word, see `docs/FORMAT.md`) and refuses a commit with a lower one
//! ([`Error::StaleFence`](maph_core::Error::StaleFence)). The holder that woke
//! late carries an older fence than the process that took over and wrote, so
//! its write is refused, and the newer holder's data stays intact. The tests
//! prove this with real processes: one is stopped with `SIGSTOP` past its ttl
//! while another takes the token and writes; continued, the first one's write
//! is refused by its own lease clock (`LeaseLost`), and, with that check
//! bypassed to stand for a pause that fell just after it, by the store
//! (`StaleFence`).
//!
//! Each layer covers what the one before it cannot:
//!
//! | check | when | catches |
//! |---|---|---|
//! | renewal thread (compare-and-`PEXPIRE`) | every `ttl/3` | token deleted, expired or taken over; Redis unreachable |
//! | local lease clock | every commit, free | a paused process, renewals that stopped succeeding |
//! | [`confirm_before_write`](RedisConfig::confirm_before_write) (optional) | every commit, one round trip | a token deleted or taken over since the last renewal |
//! | fence in the store header | every commit, free | a holder paused *after* its checks, once a newer holder has written |
//!
//! The lease clock is `CLOCK_BOOTTIME`, measured from *before* the command
//! that set or renewed the token was sent, minus a safety margin (a tenth of the
//! ttl by default) for clock-rate differences: the holder gives up before Redis
//! can have expired the token. Unlike `Instant`, that clock keeps counting while
//! the machine is suspended.
//!
//! ### What fencing does not cover
//!
//! - The store checks the fence at the start of a commit, then writes its slots;
//!   the check and the writes are not one atomic step. A holder paused in the
//!   few instructions between them can still land its write after a newer
//!   holder's. The window shrinks from "any pause anywhere" to "a pause inside a
//!   sub-microsecond stretch of code", but it is not zero.
//! - A stale holder whose successor has not written yet passes the fence check:
//!   its writes land *before* the successor's, in fence order, so nothing the
//!   successor wrote is overwritten, but a read-modify-write of the successor
//!   that read before the stale write and commits after it loses that write.
//! - Redis without persistence forgets the counter when it restarts, and a
//!   replica promoted after a failover may have a lower one. New fences then
//!   start above the highest fence the store has accepted (each acquisition
//!   passes it to the script as a floor, and takes the token again if the
//!   store accepted a fence at or above the one it got meanwhile), so writers
//!   keep working (`tests/counter_loss.rs` resets the counter of a live server
//!   under three writer processes). But a holder from before the loss that has
//!   not been refused yet can hold a fence as high as the first holder after
//!   it. If fencing must hold across Redis restarts, run Redis with
//!   `appendonly yes` and `appendfsync always`.
//!
//! ## Fences are exact, and a damaged one is repaired
//!
//! Fences are 64-bit integers end to end: Redis's `INCR` makes them, the
//! acquire script compares them as decimal strings (Lua's numbers are doubles,
//! exact only below 2⁵³) and returns them as strings, and the store keeps them
//! in a 64-bit word. They run up to 2⁶³ − 1, where Redis's integers end; the
//! acquisition after that is refused with an error, never retried forever
//! (`tests/fence_repair.rs`).
//!
//! The store's highest fence is one word of the header. If it is damaged (a
//! flipped high bit, garbage) it lies far above anything Redis issued, and
//! every holder would carry a fence below it. Since no Redis loses
//! [`IMPLAUSIBLE_FENCE_GAP`] (2⁴⁰) fences, a store fence that far above the
//! counter, or at 2⁶³ − 1 or above, is taken for damage: acquisitions are
//! refused with an [`Error::Coordination`](maph_core::Error::Coordination) that
//! says so, rather than follow it (which would carry the damage into the
//! counter). To check and repair:
//!
//! 1. [`check_fence`] (read-only, any process) or
//!    [`RedisCoordinator::check_fence`] reads both numbers; its
//!    [`verdict`](FenceCheck::verdict) is [`FenceVerdict::Implausible`] for
//!    damage, [`FenceVerdict::CounterBehind`] after a plausible loss (nothing
//!    to do), [`FenceVerdict::InStep`] otherwise.
//! 2. [`RedisCoordinator::repair_fence`] takes the token with a fence issued
//!    from the counter alone, checks again under it, lowers the store's word to
//!    that fence ([`Store::reset_highest_fence`](maph_core::Store::reset_highest_fence)),
//!    and releases. Holders that took the token earlier carry lower fences and
//!    stay refused; writers work again at once. It does nothing to a store
//!    that is not damaged, so it is safe to run any time.
//!
//! If Redis also lost its counter, holders from before that loss are not
//! refused by the repaired word: stop every writer first if that matters.
//!
//! ## When it is worth its round trips
//!
//! Per-operation use costs two round trips per write (acquire, release); lease
//! use costs nothing per write after the first (one round trip per write with
//! `confirm_before_write`). A quick measurement on this project's 2-core build
//! machine, against `redis-server` 7.0 on loopback, while other builds kept the
//! load average near 12 (`examples/round_trip.rs`; medians of 5 000 to 50 000
//! uncontended writes, three runs):
//!
//! | what | median |
//! |---|---|
//! | one Redis round trip (`PING`; a small Lua script) | 20–45 µs |
//! | per-operation write (acquire script + write + release script) | 75–85 µs |
//! | lease-mode write (token held, checked locally) | 0.5–0.8 µs |
//! | lease-mode write with `confirm_before_write` | 27–37 µs |
//!
//! An in-process lock or `flock` costs well under a microsecond per write; the
//! benchmark crate has the figures under contention.
//!
//! So choose it when the writers already coordinate through Redis and the
//! store is one more resource under the same token, or when a stalled writer
//! must provably not overwrite a newer one (fencing). Like every maph strategy
//! it coordinates processes on **one host**: the token does not make a store
//! file shared between hosts safe (their mappings of it are not coherent), and
//! maph refuses to open a store for writing on a network filesystem. With no
//! such need, `flock`/`fcntl` or a single writer are simpler and far cheaper.
//!
//! ## Failure behaviour
//!
//! - Redis unreachable, refusing the password, or dropping the connection:
//!   [`Error::Coordination`](maph_core::Error::Coordination) with what to check
//!   (`MAPH_REDIS_URL`, whether `redis-server` runs, the credentials). Nothing
//!   is written without a token. Connecting is bounded by
//!   [`connect_timeout`](RedisConfig::connect_timeout) and every command by
//!   [`io_timeout`](RedisConfig::io_timeout), so nothing hangs: an acquisition
//!   returns by its deadline plus at most one of those timeouts.
//! - Token busy past the deadline: [`Error::LockTimeout`](maph_core::Error::LockTimeout).
//! - Lease gone (deleted, expired, taken over, Redis restarted):
//!   [`Error::LeaseLost`](maph_core::Error::LeaseLost) from the next commit
//!   through that guard; nothing is written. Drop the guard and acquire again.
//! - Holder killed: the others wait at most one ttl.
//!
//! ## Redis keys
//!
//! `maph:{<name>}:token` and `maph:{<name>}:fence`, where the name defaults to
//! the store's file name (set it with [`RedisConfig::name`]). The braces are a
//! Redis Cluster hash tag: both keys live on one node. The Redis user needs
//! `GET SET INCR PEXPIRE DEL EVAL EVALSHA` on them. The fence key holds the last
//! fence issued, as a decimal integer; anything else there is reported with
//! what to do (delete it: the next acquisition continues from the store's fence).

#![warn(missing_docs)]

mod clock;
mod config;
mod coordinator;
mod fence;
mod lease;
mod link;
mod owner;
mod renewer;
mod scripts;

pub use config::{RedisConfig, ENV_URL};
pub use coordinator::{FenceRepair, RedisCoordinator};
pub use fence::{check_fence, FenceCheck, FenceVerdict, IMPLAUSIBLE_FENCE_GAP, MAX_FENCE};

/// The strategy tag recorded in stores written under a Redis token.
pub(crate) const STRATEGY: maph_core::Strategy = maph_core::Strategy::new("redis");

/// The README's example compiles (it needs a Redis server to run).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
