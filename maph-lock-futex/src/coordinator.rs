//! [`FutexCoordinator`]: the in-file lock behind maph's `WriteCoordinator` trait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maph_core::{
    Access, ContentionCounters, LockScope, RepairReport, Result, Store, StoreId, Strategy, Ticket, Wait,
    WriteCoordinator,
};

use crate::attachment::Attachment;
use crate::identity::{coordination, ProcessIdentity};
use crate::region::{LockRegion, Want};
use crate::stripe::{Me, PID_MASK};

/// How long a waiter lets a holder keep a stripe before checking that the
/// holder still lives. A holder killed while holding blocks others for at most
/// this long (plus the time to be scheduled and to read `/proc`), then for one
/// repair pass over the store.
pub const DETECTION_PERIOD: Duration = Duration::from_millis(10);

/// A write lock kept in the store file itself: uncontended, one compare-and-swap
/// to take and one swap to release; contended, a sleep on a Linux futex on the
/// shared mapping; robust against holders that die, even by `SIGKILL`.
///
/// - **Global** ([`global`](Self::global)): one lock word for the whole store.
/// - **Striped** ([`striped`](Self::striped)): `K` lock words, each covering a
///   contiguous range of `⌈slots / K⌉` slots. A write takes the stripes its
///   scope overlaps (a key's probe window: usually one stripe, two at a
///   boundary) in ascending order, so writers of keys in different stripes run
///   in parallel, across processes, and no two writers deadlock.
///
/// Threads are excluded exactly like processes, by the compare-and-swap on the
/// word: only one thread anywhere can turn a free word into a held one. The pid
/// in the word serves only to tell whether the holder lives, and a process
/// never judges itself dead, so a thread waiting on a word its own process holds
/// simply waits. (No in-process gate is needed in front of the word; one would
/// add two atomic read-modify-writes to every uncontended acquisition.) Shared
/// access is granted as exclusive access: maph readers never need the lock,
/// reads are seqlocked.
///
/// The coordinator owns a handle on the store (`Arc<Store>`): its lock words
/// live in that handle's mapping, and owning it lets the coordinator be stored
/// next to the store, returned from a factory, and shared between threads with
/// `Arc` without borrowing.
///
/// ```
/// use std::sync::Arc;
/// use maph_core::{Config, Mode, Store};
/// use maph_lock_futex::FutexCoordinator;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("futex.maph");
/// Store::create(&path, Config::new(1024).strategy(FutexCoordinator::STRATEGY))?;
/// let store = Arc::new(Store::open(&path, Mode::ReadWrite)?);
/// let lock = FutexCoordinator::striped(store.clone(), 8)?;
/// store.set(&lock, b"apples", b"3")?;
/// store.update(&lock, b"apples", |old| {
///     let n: u64 = std::str::from_utf8(old.unwrap()).unwrap().parse().unwrap();
///     Some((n + 1).to_string())
/// })?;
/// assert_eq!(store.get(b"apples")?.as_deref(), Some(&b"4"[..]));
/// # Ok::<(), maph_core::Error>(())
/// ```
///
/// Do not carry a coordinator across `fork`: the child would lock under its
/// parent's pid. Make a new one in the child.
pub struct FutexCoordinator {
    // Declared before `store`: these borrow its mapping (see `attach`).
    region: LockRegion<'static>,
    me: Me,
    /// Slots per stripe (the last stripe may have fewer).
    stripe_width: u64,
    /// `⌈2⁶⁴ / stripe_width⌉`, so that `slot / stripe_width` is a multiply
    /// (`None` for stores of 2³² slots or more, where it would not be exact).
    stripe_reciprocal: Option<u128>,
    slot_count: u64,
    all_stripes: u64,
    counters: ContentionCounters,
    /// Counts nothing anyone reads: the repair pass's pseudo-acquisition.
    repair_counters: ContentionCounters,
    recovery: RecoveryCounters,
    /// Our own description of the store file, holding our identity lock; the
    /// judge of other holders' liveness.
    attachment: Attachment,
    store: Arc<Store>,
}

#[derive(Debug, Default)]
struct RecoveryCounters {
    takeovers: AtomicU64,
    repair_passes: AtomicU64,
    slots_finished: AtomicU64,
    slots_cleared: AtomicU64,
}

/// What this coordinator did about dead holders (counted in this process only;
/// [`FutexCoordinator::takeovers_recorded`] counts for every process).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Stripes this coordinator took over from a dead holder.
    pub takeovers: u64,
    /// Whole-store repair passes it ran after a takeover.
    pub repair_passes: u64,
    /// Slots those passes found mid-write but whole, and completed.
    pub slots_finished: u64,
    /// Slots those passes found torn, and cleared to tombstones.
    pub slots_cleared: u64,
}

impl std::fmt::Debug for FutexCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FutexCoordinator")
            .field("store", &self.store.path())
            .field("stripes", &self.stripes())
            .field("stripe_width", &self.stripe_width)
            .field("pid", &self.me.pid)
            .field("contention", &self.counters.snapshot())
            .field("recovery", &self.recovery_stats())
            .finish()
    }
}

impl FutexCoordinator {
    /// The strategy tag of stores coordinated by this lock.
    pub const STRATEGY: Strategy = crate::STRATEGY;

    /// One lock word for the whole store. Fails if the store's lock region was
    /// set up with another stripe count.
    ///
    /// Every constructor also fails, with [`Error::Coordination`](maph_core::Error::Coordination)
    /// saying why, while processes of another pid namespace are attached (see
    /// [Pid namespaces](crate#pid-namespaces-containers)), if `/proc/self` cannot
    /// be read, or if the store's filesystem has no byte-range locks.
    pub fn global(store: impl Into<Arc<Store>>) -> Result<FutexCoordinator> {
        FutexCoordinator::attach_with(store.into(), Want::Exactly(1))
    }

    /// `stripes` lock words (1 to [`MAX_STRIPES`](crate::region::MAX_STRIPES),
    /// at most one per slot), each covering a contiguous range of slots. The
    /// first coordinator to attach to a store fixes the count; a later one
    /// asking for another count is refused with [`Error::InvalidConfig`](maph_core::Error::InvalidConfig).
    pub fn striped(store: impl Into<Arc<Store>>, stripes: u32) -> Result<FutexCoordinator> {
        FutexCoordinator::attach_with(store.into(), Want::Exactly(stripes))
    }

    /// Whatever stripe count the store's lock region records (global if none yet).
    pub fn attach(store: impl Into<Arc<Store>>) -> Result<FutexCoordinator> {
        FutexCoordinator::attach_with(store.into(), Want::AsRecorded)
    }

    /// Attaching, with the gate held (see the `attachment` module): the region
    /// is checked (and taken for our pid namespace if nobody is attached), our
    /// process is marked attached, and every lock word whose holder is dead is
    /// freed, with a repair owed, before anyone waits on it.
    fn attach_with(store: Arc<Store>, want: Want) -> Result<FutexCoordinator> {
        store.check_writer(Self::STRATEGY)?;
        let identity = ProcessIdentity::current()?;
        if identity.pid() & !PID_MASK != 0 {
            return Err(coordination(format!("pid {} does not fit the lock word's 22 bits", identity.pid())));
        }
        let me = Me { pid: identity.pid(), start_tag: identity.start_tag(), detection_period: DETECTION_PERIOD };
        let attachment = Attachment::open(&store)?;
        let recovery = RecoveryCounters::default();
        let region = {
            let gate = attachment.enter_gate()?;
            let region = LockRegion::attach(&store, want, &attachment, &gate)?;
            attachment.mark_attached(&identity)?;
            for stripe in region.stripes.iter() {
                stripe.free_if_dead(&me, &attachment, || {
                    // As in `take`: set while we hold the word taken over.
                    region.repair_pending.store(1, Ordering::Relaxed);
                    region.takeovers.fetch_add(1, Ordering::Relaxed);
                    recovery.takeovers.fetch_add(1, Ordering::Relaxed);
                })?;
            }
            region
        };
        // SAFETY: `region` holds references into the mapping of `*store`. That
        // mapping is made once when the Store is opened and unmapped only when
        // the Store is dropped (maph-core never remaps a Store), and the Store
        // cannot be dropped or mutated while this struct holds an `Arc` to it
        // (the Arc is never handed out mutably nor replaced). The 'static
        // lifetime never escapes: every use re-borrows for `&self`.
        let region = unsafe { std::mem::transmute::<LockRegion<'_>, LockRegion<'static>>(region) };
        let stripes = region.stripes.len() as u32;
        let stripe_width = store.slot_count().div_ceil(u64::from(stripes));
        Ok(FutexCoordinator {
            me,
            stripe_width,
            stripe_reciprocal: (store.slot_count() < 1 << 32).then(|| (1u128 << 64).div_ceil(u128::from(stripe_width))),
            slot_count: store.slot_count(),
            // At most 47 stripes: the mask fits a u64 with room to spare.
            all_stripes: (1u64 << stripes) - 1,
            counters: ContentionCounters::new(),
            repair_counters: ContentionCounters::new(),
            recovery,
            region,
            attachment,
            store,
        })
    }

    /// Number of stripes (1 in global mode).
    pub fn stripes(&self) -> u32 {
        self.region.stripes.len() as u32
    }

    /// The stripe that covers slot `index` (slot `i` is in stripe
    /// `⌊i / ⌈slots / K⌉⌋`).
    #[inline(always)]
    pub fn stripe_of_slot(&self, index: u64) -> u32 {
        let stripe = match self.stripe_reciprocal {
            // Exact for index × width < 2⁶⁴, which holds below 2³² slots:
            // the error of the rounded-up reciprocal stays below one step.
            Some(reciprocal) => ((u128::from(index) * reciprocal) >> 64) as u64,
            None => index / self.stripe_width,
        };
        stripe.min(u64::from(self.stripes() - 1)) as u32
    }

    /// The stripes a write of `scope` takes, as a bit mask (bit `s` = stripe
    /// `s`). A window that is not this store's (another slot count, a first
    /// slot past the end) conservatively takes every stripe.
    #[inline(always)]
    pub fn stripes_of(&self, scope: LockScope) -> u64 {
        match scope {
            LockScope::Whole => self.all_stripes,
            LockScope::Window { first, len, slot_count } => {
                if slot_count != self.slot_count || first >= slot_count {
                    return self.all_stripes;
                }
                if len == 0 {
                    return 0;
                }
                let end = first + u64::from(len).min(slot_count); // exclusive; ≤ 2 × slot_count
                if end <= slot_count {
                    self.span(first, end - 1)
                } else {
                    // Wraps: the start of the table, and the tail from `first`.
                    self.span(0, end - slot_count - 1) | self.span(first, slot_count - 1)
                }
            }
        }
    }

    /// The mask of the stripes covering slots `a..=b` (`a ≤ b`).
    #[inline(always)]
    fn span(&self, a: u64, b: u64) -> u64 {
        let (low, high) = (self.stripe_of_slot(a), self.stripe_of_slot(b));
        // high ≤ 46, so neither shift overflows.
        ((1u64 << high) << 1) - (1u64 << low)
    }

    /// The store this coordinator locks.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// What this coordinator did about dead holders.
    pub fn recovery_stats(&self) -> RecoveryStats {
        // Relaxed: independent statistics.
        RecoveryStats {
            takeovers: self.recovery.takeovers.load(Ordering::Relaxed),
            repair_passes: self.recovery.repair_passes.load(Ordering::Relaxed),
            slots_finished: self.recovery.slots_finished.load(Ordering::Relaxed),
            slots_cleared: self.recovery.slots_cleared.load(Ordering::Relaxed),
        }
    }

    /// Takeovers recorded in the store file by every process since it was
    /// created (a 32-bit counter that wraps).
    pub fn takeovers_recorded(&self) -> u32 {
        self.region.takeovers.load(Ordering::Relaxed)
    }

    /// Takes the word of every stripe in `mask`, in ascending order (see
    /// [`StripeSet::take`](crate::stripe_set::StripeSet::take)). At the deadline returns `None`. Otherwise
    /// returns whether any stripe was taken over from a dead holder.
    fn take(&self, mask: u64, wait: Wait) -> Result<Option<bool>> {
        let mut took_over = false;
        let taken = self.region.stripes.take(mask, &self.me, &self.attachment, wait, |_| {
            took_over = true;
            self.recovery.takeovers.fetch_add(1, Ordering::Relaxed);
            // Relaxed: the flag reaches the next holder of the stripe taken
            // over through our release of it (Release) and its CAS (Acquire);
            // the counter is a statistic. Set at once, while we hold that
            // stripe: if a later stripe times out, the repair is still owed.
            self.region.repair_pending.store(1, Ordering::Relaxed);
            self.region.takeovers.fetch_add(1, Ordering::Relaxed);
        })?;
        Ok(taken.then_some(took_over))
    }

    #[inline]
    fn give_back(&self, mask: u64) {
        self.region.stripes.give_back(mask);
    }

    /// Takes the stripes of `mask` in ascending order. If a takeover (by us or
    /// by anyone since) left the store needing repair, first releases them,
    /// takes every stripe, repairs the whole store, and starts over: a dead
    /// holder's half-written slot is mended before anyone writes or waits on it.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, access: Access, scope: LockScope, mask: u64, wait: Wait) -> Result<Option<Ticket>> {
        loop {
            if self.take(mask, wait)?.is_none() {
                return Ok(None);
            }
            if !self.repair_pending() {
                return Ok(Some(Ticket { access, scope, fence: None, private: mask }));
            }
            if mask != self.all_stripes {
                self.give_back(mask);
                if self.take(self.all_stripes, wait)?.is_none() {
                    return Ok(None);
                }
            }
            if let Err(e) = self.repair_holding_all() {
                self.give_back(self.all_stripes);
                return Err(e);
            }
            if mask == self.all_stripes {
                return Ok(Some(Ticket { access, scope, fence: None, private: mask }));
            }
            self.give_back(self.all_stripes);
        }
    }

    /// Whether a takeover somewhere left slots to repair. Relaxed: see `take`.
    #[inline]
    fn repair_pending(&self) -> bool {
        self.region.repair_pending.load(Ordering::Relaxed) != 0
    }

    /// With every stripe held: repairs the whole store if still needed, then
    /// clears the flag. The repair goes through maph-core's `Store::repair`,
    /// handed a coordinator that knows the whole store is already locked.
    fn repair_holding_all(&self) -> Result<()> {
        if !self.repair_pending() {
            return Ok(()); // someone repaired while we waited for the stripes
        }
        let report = self.store.repair(&HeldWhole { counters: &self.repair_counters, store: self.store.id() })?;
        self.record_repair(&report);
        // Relaxed: published to every later holder by our release of all stripes.
        self.region.repair_pending.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn record_repair(&self, report: &RepairReport) {
        self.recovery.repair_passes.fetch_add(1, Ordering::Relaxed);
        self.recovery.slots_finished.fetch_add(report.finished.len() as u64, Ordering::Relaxed);
        self.recovery.slots_cleared.fetch_add(report.cleared.len() as u64, Ordering::Relaxed);
    }
}

impl WriteCoordinator for FutexCoordinator {
    fn strategy(&self) -> Strategy {
        Self::STRATEGY
    }

    /// Takes the stripes of `scope` in ascending order; see `acquire_slow` for
    /// what happens after a takeover.
    // Always inlined (with everything slow kept out of line in `acquire_slow`):
    // returned out of line, the ticket goes through memory and the caller's
    // reloads of it stall on store forwarding; see maph-core's `timed_acquire`.
    #[inline(always)]
    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
        let mask = self.stripes_of(scope);
        // The common case, kept small enough to inline into the caller: one
        // stripe, free, no repair pending.
        if mask.is_power_of_two() {
            let stripe = &self.region.stripes[mask.trailing_zeros() as usize];
            if stripe.try_lock(&self.me) {
                if !self.repair_pending() {
                    return Ok(Some(Ticket { access, scope, fence: None, private: mask }));
                }
                stripe.unlock();
            }
        }
        self.acquire_slow(access, scope, mask, wait)
    }

    #[inline]
    unsafe fn release(&self, ticket: Ticket) {
        // The caller guarantees `ticket` came from `acquire` and is released
        // once: we hold exactly the stripes of its mask.
        let mask = ticket.private;
        if mask.is_power_of_two() {
            self.region.stripes[mask.trailing_zeros() as usize].unlock();
        } else {
            self.give_back(mask);
        }
    }

    #[inline]
    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }

    fn bound_store(&self) -> Option<StoreId> {
        Some(self.store.id())
    }
}

/// The coordinator handed to `Store::repair` while the caller already holds
/// every stripe: it grants at once, and releases nothing.
struct HeldWhole<'c> {
    /// Counts nothing anyone reads: the repair's pseudo-acquisition.
    counters: &'c ContentionCounters,
    store: StoreId,
}

impl WriteCoordinator for HeldWhole<'_> {
    fn strategy(&self) -> Strategy {
        FutexCoordinator::STRATEGY
    }

    fn acquire(&self, access: Access, scope: LockScope, _wait: Wait) -> Result<Option<Ticket>> {
        // Only ever made by `repair_holding_all`, which holds every stripe.
        Ok(Some(Ticket::new(access, scope)))
    }

    unsafe fn release(&self, _ticket: Ticket) {}

    fn counters(&self) -> &ContentionCounters {
        self.counters
    }

    fn bound_store(&self) -> Option<StoreId> {
        Some(self.store)
    }
}

#[cfg(test)]
mod tests {
    /// The reciprocal used by `stripe_of_slot` divides exactly below 2³² slots.
    #[test]
    fn the_reciprocal_divides_exactly() {
        let widths = [1u64, 2, 3, 7, 10, 64, 1000, 21_846, 91_268_056, (1 << 32) - 1];
        for width in widths {
            let reciprocal = (1u128 << 64).div_ceil(u128::from(width));
            let slots = (width * 47).min((1 << 32) - 1);
            let probes =
                (0..2000).chain((0..2000).map(|i| slots.saturating_sub(1 + i))).chain((1..47).map(|k| k * width));
            for index in probes.filter(|&i| i < slots) {
                for i in [index.saturating_sub(1), index] {
                    assert_eq!(((u128::from(i) * reciprocal) >> 64) as u64, i / width, "{i} / {width}");
                }
            }
        }
    }
}
