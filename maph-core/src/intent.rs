//! Write-intent lanes: what a writer that died was writing.
//!
//! Before a commit writes any slot it claims a lane in the header and records
//! there the scope it holds and then the slots it is about to write; it gives
//! the lane back when every slot is published. A writer killed in between
//! leaves its lane claimed, and that is the mark the next holder acts on: it
//! repairs exactly the recorded slots (or, for a commit too large to list, the
//! recorded scope) before it writes, so a writer start or a lock hand-over
//! never scans the store, and a slot a dead writer left odd is cleaned up at
//! the next hand-over instead of making readers wait.
//!
//! Lane `i` is the cache line at `LANES_OFFSET + 64 i` (docs/FORMAT.md):
//!
//! | word | field |
//! |---:|---|
//! | 0 | owner: pid << 32 \| a per-process claim number (0: free) |
//! | 1 | pid namespace (low 32 bits of its inode) << 32 \| claim time (coarse monotonic clock, ms, wrapping) |
//! | 2 | state: 0 nothing to repair; [`SCOPE`] repair the whole scope; `n + 1`: the `n` slots listed (n ≤ 3) |
//! | 3, 4 | the scope the holder holds: first slot, length (0 = the whole store) |
//! | 5, 6, 7 | listed slots |
//!
//! Which lanes are claimed is one word (`OFF_LANES_BUSY`, bit `i` for lane
//! `i`), so a commit learns with one load whether anyone else is mid-commit.
//!
//! Who may repair a claimed lane: a holder whose own exclusive scope covers the
//! lane's scope (then the lane's owner cannot be holding it: it is dead, or its
//! lease lapsed), at once; anyone else only after taking the lane's scope
//! through the coordinator, and only if the lane still has the same owner
//! (see `Store::resolve_suspects`).

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::format::{LANES, LANES_OFFSET, LANE_STRIDE, OFF_LANES_BUSY, OFF_MAINTENANCE};
use crate::{Error, LockScope, Result, Store};

/// Lane state: repair every slot of the recorded scope.
pub(crate) const SCOPE: u64 = u64::MAX;
/// How many slots a lane lists; a commit of more records its scope instead.
pub(crate) const LISTED: usize = 3;
/// A lane claimed for longer than this is looked at by other writers (is its
/// owner alive?); a live commit gives its lane back within microseconds. With
/// the coarse clock this means "claimed before the last clock tick" (a tick is
/// 1 to 4 ms), so a live commit is looked at about once in thousands.
const OLD_LANE_MS: u32 = 1;

const W_OWNER: usize = 0;
const W_NAMESPACE_TIME: usize = 8;
const W_STATE: usize = 16;
const W_SCOPE_FIRST: usize = 24;
const W_SCOPE_LEN: usize = 32;
const W_SLOTS: usize = 40;

/// This process, as lanes record it: its pid and pid namespace, read once.
/// (A `Store` used in a child after `fork` records its parent's pid: open
/// stores again after forking.)
struct Me {
    pid: u32,
    namespace: u32,
}

fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| Me { pid: std::process::id(), namespace: pid_namespace_of("self").unwrap_or(0) })
}

/// The low 32 bits of the inode of `/proc/<pid>/ns/pid`, if readable.
fn pid_namespace_of(pid: &str) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok().map(|m| m.ino() as u32)
}

/// A claim number unique within this process for as long as a claim may be
/// looked at, so that two claims of one lane never have the same owner word:
/// the thread's index (high 12 bits) and a count of its claims (low 20 bits,
/// wrapping). Thread-local, so a commit pays no shared read-modify-write for it.
fn next_claim() -> u32 {
    static THREADS: AtomicU32 = AtomicU32::new(1);
    thread_local! {
        static CLAIMS: std::cell::Cell<u32> = std::cell::Cell::new(THREADS.fetch_add(1, Ordering::Relaxed) << 20);
    }
    CLAIMS.with(|claims| {
        let n = claims.get();
        let next = (n & 0xfff0_0000) | (n.wrapping_add(1) & 0x000f_ffff);
        claims.set(next);
        next.max(1)
    })
}

/// Milliseconds of the coarse monotonic clock (a vDSO read, a few ns), wrapping.
fn now_ms() -> u32 {
    // SAFETY: clock_gettime writes one timespec, which all-zero initialises.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to that timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1000).wrapping_add(ts.tv_nsec as u64 / 1_000_000) as u32
}

/// Whether `pid` is alive in this pid namespace (`kill(pid, 0)`).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 delivers nothing; no memory is involved.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// What a claimed lane records, read by whoever may have to repair it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LaneRecord {
    pub index: usize,
    pub owner: u64,
    pub state: u64,
    pub scope: LockScope,
    pub slots: [u64; LISTED],
}

impl LaneRecord {
    /// The slots to repair: the listed ones, or `None` for the whole scope.
    pub fn listed(&self) -> Option<&[u64]> {
        match self.state {
            SCOPE => None,
            n => Some(&self.slots[..(n.saturating_sub(1) as usize).min(LISTED)]),
        }
    }
}

/// A lane this commit holds. Given back with [`Store::release_lane`].
#[derive(Debug)]
pub(crate) struct Lane {
    index: usize,
    owner: u64,
    /// Claimed with plain stores by a holder that excludes every other writer.
    exclusive: bool,
}

/// How a commit claims its lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The holder excludes every other writer of the store: no one else claims
    /// or gives back a lane meanwhile, and every other claimed lane is dead.
    Exclusive,
    /// Other writers may be mid-commit: claim with a compare-and-swap.
    Shared,
    /// Not even writers are excluded (`Uncoordinated`): as `Shared`, and honour
    /// a repair in progress (`Error::UnderRepair`).
    Uncoordinated,
}

impl Store {
    fn lane_word(&self, lane: usize, word: usize) -> &crate::sync::AtomicU64 {
        debug_assert!(lane < LANES);
        self.region.word(LANES_OFFSET + lane * LANE_STRIDE + word)
    }

    pub(crate) fn lanes_busy(&self) -> u64 {
        // Acquire: pairs with the Release that gives a lane back, so a lane seen
        // free is seen with its words cleared.
        self.region.word(OFF_LANES_BUSY).load(Ordering::Acquire)
    }

    /// Claims a lane for a commit holding `scope`, with state [`SCOPE`] (a
    /// holder that dies before listing its slots had its whole scope repaired).
    pub(crate) fn claim_lane(&self, claim: Claim, scope: LockScope) -> Result<Lane> {
        let busy_word = self.region.word(OFF_LANES_BUSY);
        let index = match claim {
            // No one else claims or gives back a lane meanwhile: plain stores
            // suffice (and the caller repaired every claimed lane before this).
            Claim::Exclusive => match busy_word.load(Ordering::Relaxed) {
                u64::MAX => self.claim_free_lane()?,
                busy => {
                    let index = (!busy).trailing_zeros() as usize;
                    busy_word.store(busy | 1 << index, Ordering::Relaxed);
                    index
                }
            },
            Claim::Shared | Claim::Uncoordinated => self.claim_free_lane()?,
        };
        let me = me();
        let owner = u64::from(me.pid) << 32 | u64::from(next_claim());
        self.lane_word(index, W_OWNER).store(owner, Ordering::Relaxed);
        // Only range writers judge a lane by its age; an exclusive holder's lane
        // is repaired by whoever holds the store next, so it skips the clock (a
        // claim time of 0 reads as old: a range writer then asks whether the pid
        // is alive).
        let claimed_at = if claim == Claim::Exclusive { 0 } else { now_ms() };
        self.lane_word(index, W_NAMESPACE_TIME)
            .store(u64::from(me.namespace) << 32 | u64::from(claimed_at), Ordering::Relaxed);
        let (first, len) = match scope {
            LockScope::Whole => (0, 0),
            LockScope::Window { first, len, .. } => (first, u64::from(len)),
        };
        self.lane_word(index, W_SCOPE_FIRST).store(first, Ordering::Relaxed);
        self.lane_word(index, W_SCOPE_LEN).store(len, Ordering::Relaxed);
        self.lane_word(index, W_STATE).store(SCOPE, Ordering::Relaxed);
        let lane = Lane { index, owner, exclusive: claim == Claim::Exclusive };
        if claim == Claim::Uncoordinated {
            // SeqCst with the repairer's SeqCst store of the mark and load of
            // the busy word: one of the two sees the other (see `repair`).
            let repairer = self.region.word(OFF_MAINTENANCE).load(Ordering::SeqCst);
            if repairer != 0 && alive(repairer as u32) {
                self.release_lane(lane);
                return Err(Error::UnderRepair { pid: repairer as u32 });
            }
        }
        // Release: the record is in memory before any slot store that follows
        // (it is what a repairer reads after this process dies).
        crate::sync::fence(Ordering::Release);
        Ok(lane)
    }

    fn claim_free_lane(&self) -> Result<usize> {
        let busy_word = self.region.word(OFF_LANES_BUSY);
        let mut waited = None;
        loop {
            let busy = busy_word.load(Ordering::Relaxed);
            if busy != u64::MAX {
                let index = (!busy).trailing_zeros() as usize;
                // SeqCst: also orders the claim before the maintenance check.
                if busy_word.compare_exchange_weak(busy, busy | 1 << index, Ordering::SeqCst, Ordering::Relaxed).is_ok()
                {
                    return Ok(index);
                }
                continue;
            }
            // 64 commits in flight, or lanes of dead writers nobody has
            // repaired yet: wait a little for one to be given back.
            let started = *waited.get_or_insert_with(std::time::Instant::now);
            if started.elapsed() > Duration::from_secs(1) {
                return Err(Error::Coordination {
                    strategy: self.layout.strategy,
                    detail: format!(
                        "all {LANES} write-intent lanes of {} stayed claimed for a second: too many commits at \
                         once, or writers died mid-commit and nothing repaired their lanes; run `maph verify \
                         --repair` on the store",
                        self.path().display()
                    ),
                });
            }
            std::thread::yield_now();
        }
    }

    /// Lists the slots the commit is about to write (up to [`LISTED`]; more, and
    /// the lane keeps its scope). Called before the first slot store.
    pub(crate) fn record_slots(&self, lane: &Lane, slots: impl ExactSizeIterator<Item = u64>) {
        if slots.len() > LISTED {
            return;
        }
        let n = slots.len();
        for (i, slot) in slots.enumerate() {
            self.lane_word(lane.index, W_SLOTS + 8 * i).store(slot, Ordering::Relaxed);
        }
        self.lane_word(lane.index, W_STATE).store(n as u64 + 1, Ordering::Relaxed);
        crate::sync::fence(Ordering::Release);
    }

    /// Gives a lane back once every slot of its commit is published.
    pub(crate) fn release_lane(&self, lane: Lane) {
        let owner = self.lane_word(lane.index, W_OWNER);
        // Release: every slot store of the commit comes before the lane is free.
        if lane.exclusive {
            self.lane_word(lane.index, W_STATE).store(0, Ordering::Relaxed);
            owner.store(0, Ordering::Relaxed);
            let busy = self.region.word(OFF_LANES_BUSY);
            busy.store(busy.load(Ordering::Relaxed) & !(1 << lane.index), Ordering::Release);
            return;
        }
        // Someone may have judged us dead and repaired the lane meanwhile (our
        // lease lapsed while we were paused): then it is no longer ours.
        self.lane_word(lane.index, W_STATE).store(0, Ordering::Relaxed);
        if owner.compare_exchange(lane.owner, 0, Ordering::Release, Ordering::Relaxed).is_ok() {
            self.region.word(OFF_LANES_BUSY).fetch_and(!(1 << lane.index), Ordering::Release);
        }
    }

    /// The record of lane `index`, if it is claimed.
    pub(crate) fn lane_record(&self, index: usize) -> Option<LaneRecord> {
        let owner = self.lane_word(index, W_OWNER).load(Ordering::Acquire);
        if owner == 0 {
            return None;
        }
        let first = self.lane_word(index, W_SCOPE_FIRST).load(Ordering::Relaxed);
        let len = self.lane_word(index, W_SCOPE_LEN).load(Ordering::Relaxed);
        let scope = if len == 0 || first >= self.layout.slot_count {
            LockScope::Whole
        } else {
            LockScope::window(first, len.min(u64::from(u32::MAX)) as u32, self.layout.slot_count)
        };
        let mut slots = [0; LISTED];
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = self.lane_word(index, W_SLOTS + 8 * i).load(Ordering::Relaxed);
        }
        let state = self.lane_word(index, W_STATE).load(Ordering::Relaxed);
        // A listed slot beyond the table is damage: repair the scope instead.
        let state = if state != SCOPE
            && slots[..(state.saturating_sub(1) as usize).min(LISTED)].iter().any(|&s| s >= self.layout.slot_count)
        {
            SCOPE
        } else {
            state
        };
        Some(LaneRecord { index, owner, state, scope, slots })
    }

    /// Whether the owner of the claimed lane `index` may be dead: its claim is
    /// old (a live commit takes microseconds) and its pid is gone (or lives in
    /// another pid namespace, where this process cannot tell).
    pub(crate) fn lane_owner_may_be_dead(&self, index: usize) -> bool {
        let owner = self.lane_word(index, W_OWNER).load(Ordering::Acquire);
        if owner == 0 {
            return false;
        }
        let stamp = self.lane_word(index, W_NAMESPACE_TIME).load(Ordering::Relaxed);
        let (namespace, claimed_at) = ((stamp >> 32) as u32, stamp as u32);
        if now_ms().wrapping_sub(claimed_at) < OLD_LANE_MS {
            return false;
        }
        namespace != me().namespace || !alive((owner >> 32) as u32)
    }

    /// Frees lane `index` after it was repaired, if `owner` still owns it.
    pub(crate) fn free_repaired_lane(&self, index: usize, owner: u64, exclusive: bool) {
        let owner_word = self.lane_word(index, W_OWNER);
        if owner_word.compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.lane_word(index, W_STATE).store(0, Ordering::Relaxed);
            let busy = self.region.word(OFF_LANES_BUSY);
            if exclusive {
                busy.store(busy.load(Ordering::Relaxed) & !(1 << index), Ordering::Release);
            } else {
                busy.fetch_and(!(1 << index), Ordering::Release);
            }
        }
    }

    /// Clears the busy bit of lane `index`, claimed but without an owner: its
    /// claimer died between the two steps of a claim (or the bit is damage).
    /// Only for a caller that excludes every other writer.
    pub(crate) fn free_unowned_lane(&self, index: usize) {
        let busy = self.region.word(OFF_LANES_BUSY);
        busy.store(busy.load(Ordering::Relaxed) & !(1 << index), Ordering::Release);
    }

    /// The pid of a live process that holds a lane of this store now (for
    /// a repair of an uncoordinated store that waits for commits in flight).
    pub(crate) fn live_lane_holder(&self) -> Option<u32> {
        let busy = self.lanes_busy();
        (0..LANES).filter(|&i| busy & (1 << i) != 0).find_map(|i| {
            let owner = self.lane_word(i, W_OWNER).load(Ordering::Acquire);
            let pid = (owner >> 32) as u32;
            (owner != 0 && pid != me().pid && alive(pid)).then_some(pid)
        })
    }
}

/// Marks an uncoordinated store as under repair by this process (its writers
/// refuse to commit until the mark is gone), and removes the mark on drop.
pub(crate) struct MaintenanceMark<'s> {
    store: &'s Store,
}

impl<'s> MaintenanceMark<'s> {
    pub(crate) fn set(store: &'s Store) -> Result<MaintenanceMark<'s>> {
        let word = store.region.word(OFF_MAINTENANCE);
        let mine = u64::from(me().pid);
        let current = word.load(Ordering::SeqCst);
        if current != 0 && current != mine && alive(current as u32) {
            return Err(Error::UnderRepair { pid: current as u32 });
        }
        // SeqCst: pairs with the writers' SeqCst claim and check (see `claim_lane`).
        word.store(mine, Ordering::SeqCst);
        Ok(MaintenanceMark { store })
    }
}

impl Drop for MaintenanceMark<'_> {
    fn drop(&mut self) {
        self.store.region.word(OFF_MAINTENANCE).store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_nonsense_pids_are_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn uncoordinated_writers_are_refused_while_the_maintenance_mark_is_set() {
        use crate::{Config, Mode, Strategy, Uncoordinated};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marked.maph");
        Store::create(&path, Config::new(64).strategy(Strategy::UNCOORDINATED)).unwrap();
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        let writer = Store::open(&path, Mode::ReadWrite).unwrap();
        let mark = MaintenanceMark::set(&store).unwrap();
        match writer.set(&Uncoordinated::new(), b"k", b"v") {
            Err(Error::UnderRepair { pid }) => assert_eq!(pid, std::process::id()),
            other => panic!("a write during a repair gave {other:?}"),
        }
        assert_eq!(store.lanes_busy(), 0, "the refused writer gave its lane back");
        drop(mark);
        writer.set(&Uncoordinated::new(), b"k", b"v").unwrap();
        assert_eq!(writer.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now_ms();
        std::thread::sleep(Duration::from_millis(30));
        assert!(now_ms().wrapping_sub(a) >= 20);
    }
}
