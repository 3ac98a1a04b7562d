//! [`RedisCoordinator`]: the write token as a [`WriteCoordinator`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use maph_core::{
    poll_until, Access, Backoff, ContentionCounters, Error, LocalGate, LockScope, Mode, Result, Store, StoreId,
    Strategy, Ticket, Wait, WriteCoordinator,
};
use parking_lot::{Condvar, Mutex};

use crate::fence::{self, FenceCheck, FenceVerdict, MAX_FENCE};
use crate::lease::{Lease, LeaseState, TOKEN_GONE};
use crate::link::{Attempt, Link};
use crate::{clock, owner, renewer, RedisConfig, STRATEGY};

/// Whether an acquisition issues its fence above the store's highest fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Floor {
    /// Above the store's highest fence (refusing a damaged one): every
    /// acquisition but the repair's.
    Store,
    /// Above Redis's counter only: the fence repair, which then lowers the
    /// store's word to the fence it got.
    Ignored,
}

/// What the coordinator shares with its renewal thread.
pub(crate) struct Shared {
    pub(crate) config: RedisConfig,
    pub(crate) token_key: String,
    pub(crate) fence_key: String,
    pub(crate) ttl_ms: u64,
    pub(crate) state: Mutex<LeaseState>,
    /// Wakes the renewal thread (only used to stop it).
    pub(crate) wake: Condvar,
}

/// Writers of a store take turns by holding one Redis key, the write token,
/// with a lease and a fencing token.
///
/// Read the [crate documentation](crate) for the model; in short:
///
/// - **Acquire** is one Lua script: `SET token <owner>/<fence> NX PX ttl`, and
///   only if that succeeded, `INCR` the fence counter. The guard carries the
///   fence ([`ExclusiveGuard::fence`](maph_core::ExclusiveGuard::fence)); the
///   store refuses a commit whose fence is below one it already accepted
///   ([`Error::StaleFence`]). A busy token is retried with jittered exponential
///   backoff until the deadline ([`Error::LockTimeout`]).
/// - **Release** deletes the token only if it still holds our value.
/// - **While held**, a background thread renews the token (compare-and-`PEXPIRE`)
///   every [`renewal_interval`](RedisConfig::renewal_interval). Every commit
///   first checks the lease locally, at no cost: refused
///   ([`Error::LeaseLost`]) once a renewal found the token gone, or once
///   `ttl - clock_margin` has passed since Redis last confirmed it (a paused
///   process, an unreachable Redis).
///
/// Two ways to use it:
/// - **per operation**: [`Store::set`], [`Store::update`], [`Store::write`] take
///   and release the token around each write (two round trips per write);
/// - **lease**: take [`lock_exclusive`](WriteCoordinator::lock_exclusive) once
///   and write many times with [`Store::write_with`]; the token stays yours
///   (renewed in the background) until the guard drops.
///
/// Threads of one process share a coordinator (it is `Send + Sync`); they take
/// turns on an in-process gate first, so only one of them holds the token at a
/// time. Shared guards ([`lock_shared`](WriteCoordinator::lock_shared)) take the
/// token too: Redis has one token, not a reader-writer lock.
///
/// A holder that dies keeps others waiting at most `ttl` (default 5 s), after
/// which Redis expires its token.
///
/// ```no_run
/// use maph_core::{Config, LockScope, Mode, Store, WriteCoordinator};
/// use maph_coord_redis::{RedisConfig, RedisCoordinator};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("users.maph");
/// Store::create(&path, Config::new(10_000).strategy(RedisCoordinator::STRATEGY))?;
/// let store = Store::open(&path, Mode::ReadWrite)?;
/// let token = RedisCoordinator::new(&store, RedisConfig::from_env_or("redis://127.0.0.1:6379/"))?;
///
/// // Per operation: the token is taken and given back around each write.
/// store.set(&token, b"user:1", b"ada")?;
///
/// // Lease: one acquisition, many writes.
/// let guard = token.lock_exclusive(LockScope::Whole)?;
/// for i in 0..100 {
///     store.write_with(&guard, |tx| tx.set(format!("user:{i}").as_bytes(), b"x"))?;
/// }
/// # Ok::<(), maph_core::Error>(())
/// ```
pub struct RedisCoordinator {
    shared: Arc<Shared>,
    gate: LocalGate,
    /// The connection acquiring, confirming and releasing use; the gate holder
    /// and fence checks touch it, each for one round trip at a time.
    link: Mutex<Link>,
    counters: ContentionCounters,
    store: StoreId,
    /// A read-only handle on the same file, for the highest fence it accepted
    /// (the floor for new fences; see the acquire script).
    fence_floor: Store,
    renewer: Option<JoinHandle<()>>,
}

impl RedisCoordinator {
    /// The strategy tag of stores written under a Redis token.
    pub const STRATEGY: Strategy = STRATEGY;

    /// A coordinator for `store` (opened read-write, created with
    /// [`STRATEGY`](Self::STRATEGY)). Checks the configuration, connects, and
    /// pings Redis, so a wrong URL or password is reported here, not at the
    /// first write. It also starts the renewal thread (ended when the
    /// coordinator drops) and maps the store file once more, read-only, to read
    /// the highest fence the store accepted.
    ///
    /// Errors: [`Error::ReadOnly`] / [`Error::StrategyMismatch`] for a store
    /// this writer may not write, [`Error::InvalidConfig`] for settings or a URL
    /// that cannot work, [`Error::Coordination`] when Redis cannot be reached or
    /// refuses the credentials.
    ///
    /// ```
    /// use maph_core::{Config, Error, Mode, Store};
    /// use maph_coord_redis::{RedisConfig, RedisCoordinator};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("single.maph");
    /// // A store made for one writer process refuses a Redis-coordinated writer
    /// // (before anything talks to Redis).
    /// Store::create(&path, Config::new(64))?;
    /// let store = Store::open(&path, Mode::ReadWrite)?;
    /// let refused = RedisCoordinator::new(&store, RedisConfig::new("redis://127.0.0.1:6379/"));
    /// assert!(matches!(refused, Err(Error::StrategyMismatch { .. })));
    /// # Ok::<(), maph_core::Error>(())
    /// ```
    pub fn new(store: &Store, config: RedisConfig) -> Result<RedisCoordinator> {
        store.check_writer(Self::STRATEGY)?;
        config.validate()?;
        let fence_floor = Store::open(store.path(), Mode::ReadOnly)?;
        if fence_floor.id() != store.id() {
            return Err(Error::Retired { path: store.path().to_path_buf() });
        }
        let mut link = Link::new(&config)?;
        link.ping()?;
        let renewer_link = Link::new(&config)?;
        let shared = Arc::new(Shared {
            token_key: config.token_key_for(Some(store.path())),
            fence_key: config.fence_key_for(Some(store.path())),
            ttl_ms: u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX),
            config,
            state: Mutex::new(LeaseState::default()),
            wake: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let renewer = std::thread::Builder::new()
            .name("maph-redis-renew".into())
            .spawn(move || renewer::run(for_thread, renewer_link))
            .map_err(|e| Error::io("could not start the Redis lease renewal thread", e))?;
        Ok(RedisCoordinator {
            shared,
            gate: LocalGate::new(),
            link: Mutex::new(link),
            counters: ContentionCounters::new(),
            store: store.id(),
            fence_floor,
            renewer: Some(renewer),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    /// The Redis key holding the token (`maph:{<name>}:token`).
    pub fn token_key(&self) -> &str {
        &self.shared.token_key
    }

    /// The Redis key of the fencing counter (`maph:{<name>}:fence`).
    pub fn fence_key(&self) -> &str {
        &self.shared.fence_key
    }

    /// The value this process's current lease put in the token key
    /// (`<pid>.<salt>.<n>/<fence>`), if it holds one: for diagnostics, and for
    /// tools that check who holds the token.
    pub fn held_token(&self) -> Option<String> {
        self.shared.state.lock().current.as_ref().map(|l| l.value.clone())
    }

    /// Takes the token, retrying as `wait` allows. Called with the gate held.
    /// Returns the lease number and fence.
    fn take_token(&self, wait: Wait, policy: Floor) -> Result<Option<(u64, u64)>> {
        let (first, max) = self.shared.config.retry_sleeps;
        let mut link = self.link.lock();
        // One owner id for every attempt of a try: an attempt whose reply was
        // lost is recognised by the next one (see the acquire script).
        let mut owner = owner::next();
        let got = poll_until(wait, Backoff::with_limits(first, max), || {
            let store_highest = self.fence_floor.highest_fence();
            let (floor, plausible_from) = match policy {
                Floor::Store if store_highest >= MAX_FENCE => return Err(self.damaged_fence(&mut link)),
                Floor::Store => (store_highest, fence::plausible_from(store_highest)),
                Floor::Ignored => (0, 0),
            };
            let sent = clock::now();
            let (token, counter) = (&self.shared.token_key, &self.shared.fence_key);
            match link.acquire(token, counter, &owner, self.shared.ttl_ms, floor, plausible_from)? {
                Attempt::Acquired(fence) if floor_passed(fence, &self.fence_floor, policy) => Ok(Some((fence, sent))),
                Attempt::Acquired(fence) => {
                    // The store accepted this fence or a higher one after we
                    // read the floor and before the script ran, while Redis had
                    // lost its counter. Give the token back and try again from
                    // the store's new highest fence.
                    link.release(token, &format!("{owner}/{fence}"))?;
                    owner = owner::next();
                    Ok(None)
                }
                Attempt::Busy => Ok(None),
                Attempt::Implausible { .. } => Err(self.damaged_fence(&mut link)),
                Attempt::Exhausted { counter } => Err(exhausted(&self.shared.fence_key, counter)),
                Attempt::BadCounter(text) => Err(fence::bad_counter(&self.shared.fence_key, &text)),
            }
        })?;
        drop(link);
        let Some((fence, sent)) = got else {
            return Ok(None);
        };
        let seq = next_seq();
        self.shared.state.lock().current =
            Some(Lease { seq, value: format!("{owner}/{fence}"), confirmed_at: sent, lost: None });
        Ok(Some((seq, fence)))
    }

    /// The refusal of an acquisition on a store whose fence word is damaged,
    /// with the numbers.
    fn damaged_fence(&self, link: &mut Link) -> Error {
        match fence::read(link, &self.fence_floor, self.shared.fence_key.clone()) {
            Ok(check) => fence::implausible(&check),
            Err(e) => e,
        }
    }

    /// Compares the store's highest fence with this token's Redis counter
    /// (one round trip; the token is not taken). See [`FenceCheck::verdict`]
    /// for what the numbers mean.
    pub fn check_fence(&self) -> Result<FenceCheck> {
        fence::read(&mut self.link.lock(), &self.fence_floor, self.shared.fence_key.clone())
    }

    /// Repairs a store whose highest fence is damaged ([`FenceVerdict::Implausible`]),
    /// and does nothing to any other. `store` is this coordinator's store,
    /// opened read-write.
    ///
    /// The procedure: take the token (waiting up to `timeout`) with a fence
    /// issued from Redis's counter alone, ignoring the damaged word; check
    /// again, under the token; lower the store's word to that fence
    /// ([`Store::reset_highest_fence`]); release. Afterwards every holder that
    /// took the token before is refused as stale (Redis issued its fence before
    /// ours), and acquisitions work again. Writers waiting meanwhile are kept
    /// out by the token. If Redis also lost its counter, holders from before
    /// that loss are not refused; stop every writer before repairing if that
    /// matters (and see the crate docs on persistence).
    ///
    /// Returns what was found and, if the word was lowered, the fence it now holds.
    pub fn repair_fence(&self, store: &Store, timeout: Duration) -> Result<FenceRepair> {
        let found = self.check_fence()?;
        if !matches!(found.verdict(), FenceVerdict::Implausible { .. }) {
            return Ok(FenceRepair { found, reset_to: None });
        }
        let repairer = FloorIgnored(self);
        let guard = repairer.lock_exclusive_for(LockScope::Whole, timeout)?;
        let now = fence::read(&mut self.link.lock(), &self.fence_floor, self.shared.fence_key.clone())?;
        if !matches!(now.verdict(), FenceVerdict::Implausible { .. }) {
            return Ok(FenceRepair { found, reset_to: None }); // repaired meanwhile
        }
        store.reset_highest_fence(&guard)?;
        Ok(FenceRepair { found, reset_to: guard.fence() })
    }

    fn lost(detail: impl Into<String>) -> Error {
        Error::LeaseLost { strategy: STRATEGY, detail: detail.into() }
    }
}

/// Lease numbers, unique within the process (a ticket from one acquisition
/// must never validate against a later one).
fn next_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(1);
    // Relaxed: uniqueness only.
    SEQ.fetch_add(1, Ordering::Relaxed)
}

impl WriteCoordinator for RedisCoordinator {
    fn strategy(&self) -> Strategy {
        STRATEGY
    }

    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
        self.acquire_with(access, scope, wait, Floor::Store)
    }

    unsafe fn release(&self, ticket: Ticket) {
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe { self.release_ticket(ticket) }
    }

    fn validate(&self, ticket: &Ticket) -> Result<()> {
        self.validate_ticket(ticket)
    }

    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }

    fn bound_store(&self) -> Option<StoreId> {
        Some(self.store)
    }
}

impl RedisCoordinator {
    fn acquire_with(&self, access: Access, scope: LockScope, wait: Wait, floor: Floor) -> Result<Option<Ticket>> {
        // One token per coordinator: the gate is taken exclusively for shared
        // tickets too, so two threads never both believe they hold it.
        if !self.gate.acquire(Access::Exclusive, wait) {
            return Ok(None);
        }
        match self.take_token(wait, floor) {
            Ok(Some((seq, fence))) => Ok(Some(Ticket { access, scope, fence: Some(fence), private: seq })),
            other => {
                // SAFETY: taken exclusively just above, and no ticket was issued.
                unsafe { self.gate.release(Access::Exclusive) };
                other.map(|_| None)
            }
        }
    }

    /// See [`WriteCoordinator::release`].
    ///
    /// # Safety
    /// As there: `ticket` came from `acquire_with` here and is released once.
    unsafe fn release_ticket(&self, ticket: Ticket) {
        let lease = {
            let mut state = self.shared.state.lock();
            match state.current.as_ref() {
                Some(l) if l.seq == ticket.private => state.current.take(),
                _ => None,
            }
        };
        if let Some(lease) = lease {
            // Compare-and-delete, even for a lease we know is lost: harmless if
            // the token moved on. A failure leaves the token to expire by its ttl.
            let _ = self.link.lock().release(&self.shared.token_key, &lease.value);
        }
        // SAFETY: the caller guarantees `ticket` came from `acquire` here and is
        // released once; `acquire` took the gate exclusively for every ticket.
        unsafe { self.gate.release(Access::Exclusive) }
    }

    fn validate_ticket(&self, ticket: &Ticket) -> Result<()> {
        let config = &self.shared.config;
        let value = {
            let state = self.shared.state.lock();
            let lease = match state.current.as_ref() {
                Some(l) if l.seq == ticket.private => l,
                _ => return Err(Self::lost("the guard's token was already released")),
            };
            lease.check(clock::now(), config.ttl, config.lease_margin()).map_err(Self::lost)?;
            if !config.confirm_before_write {
                return Ok(());
            }
            lease.value.clone()
        };
        // Confirm with Redis, renewing on the way: one round trip.
        let sent = clock::now();
        let renewed = self.link.lock().renew(&self.shared.token_key, &value, self.shared.ttl_ms)?;
        let mut state = self.shared.state.lock();
        let lease = state.lease_mut(ticket.private).ok_or_else(|| Self::lost("the guard's token was released"))?;
        if renewed {
            lease.confirmed(sent);
            Ok(())
        } else {
            lease.lost = Some(TOKEN_GONE.to_string());
            Err(Self::lost(TOKEN_GONE))
        }
    }
}

/// What [`RedisCoordinator::repair_fence`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceRepair {
    /// The fences as found before the repair.
    pub found: FenceCheck,
    /// The store's highest fence after the repair, if it was lowered; `None`
    /// if it needed no repair.
    pub reset_to: Option<u64>,
}

/// The coordinator as the fence repair uses it: its fences come from Redis's
/// counter alone, ignoring the store's damaged word.
struct FloorIgnored<'c>(&'c RedisCoordinator);

impl WriteCoordinator for FloorIgnored<'_> {
    fn strategy(&self) -> Strategy {
        STRATEGY
    }

    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
        self.0.acquire_with(access, scope, wait, Floor::Ignored)
    }

    unsafe fn release(&self, ticket: Ticket) {
        // SAFETY: the ticket came from `acquire_with` on the same coordinator.
        unsafe { self.0.release_ticket(ticket) }
    }

    fn validate(&self, ticket: &Ticket) -> Result<()> {
        self.0.validate_ticket(ticket)
    }

    fn counters(&self) -> &ContentionCounters {
        &self.0.counters
    }

    fn bound_store(&self) -> Option<StoreId> {
        Some(self.0.store)
    }
}

/// Whether `fence` (just issued from the floor) is still above the store's
/// highest fence, which may have risen after the floor was read. Strictly
/// above: a fence equal to one the store accepted could be another live
/// holder's (when Redis lost the token with the counter).
fn floor_passed(fence: u64, store: &Store, floor: Floor) -> bool {
    floor == Floor::Ignored || fence > store.highest_fence()
}

/// The refusal when Redis's counter can go no higher.
fn exhausted(key: &str, counter: u64) -> Error {
    Error::Coordination {
        strategy: STRATEGY,
        detail: format!(
            "the Redis fence counter {key} is at {counter}, the most a Redis integer holds: no fence can follow. \
             Something raised it far beyond any real number of acquisitions (a damaged store fence followed by \
             an older maph, or a hand edit): stop every writer, delete the key, then repair the store's fence \
             (RedisCoordinator::repair_fence)"
        ),
    }
}

impl Drop for RedisCoordinator {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.renewer.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("RedisCoordinator")
            .field("config", &self.shared.config)
            .field("token_key", &self.shared.token_key)
            .field("held", &state.current.as_ref().map(|l| (&l.value, l.lost.as_deref())))
            .field("contention", &self.counters.snapshot())
            .finish()
    }
}
