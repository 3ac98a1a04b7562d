//! Pause points for tests that must stop a writer at an exact step (only with
//! the `test-hooks` feature; without it nothing here is compiled, and the
//! points in the write path are empty).
//!
//! A test process arms one point with [`pause_once`]; the next time this
//! process reaches it, it stops itself with `SIGSTOP`. The parent waits for the
//! stop (`waitpid` with `WUNTRACED`, see maph-testkit's `Child::wait_until_stopped`),
//! does what the scenario needs (another writer repairs the slot, a SIGKILL
//! lands mid-write), and resumes the writer with `SIGCONT` or kills it.
//!
//! ```
//! use maph_core::test_hooks::{pause_once, Pause};
//! pause_once(Pause::InSlotBody { words: 2 }); // armed, for this process only
//! maph_core::test_hooks::disarm();
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// Where a writer stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// Inside a slot write, after the odd version and `words` 8-byte words of
    /// the slot's body (meta, sequence, checksum, key and value) are stored,
    /// before the rest and before the publishing compare-and-swap.
    InSlotBody {
        /// Body words stored before the stop.
        words: u32,
    },
    /// Inside a commit, after `slots` of its slots are written (published),
    /// before the next one.
    BetweenSlots {
        /// Slots written before the stop.
        slots: u32,
    },
}

const IN_SLOT_BODY: u64 = 1 << 32;
const BETWEEN_SLOTS: u64 = 2 << 32;

/// The armed point: kind in the high half, count in the low half; 0 = none.
static ARMED: AtomicU64 = AtomicU64::new(0);

fn encode(at: Pause) -> u64 {
    match at {
        Pause::InSlotBody { words } => IN_SLOT_BODY | u64::from(words),
        Pause::BetweenSlots { slots } => BETWEEN_SLOTS | u64::from(slots),
    }
}

/// Arms `at`: the next time this process reaches it, it stops (`SIGSTOP`),
/// once; the point is disarmed as it fires.
pub fn pause_once(at: Pause) {
    ARMED.store(encode(at), Ordering::SeqCst);
}

/// Disarms whatever point is armed.
pub fn disarm() {
    ARMED.store(0, Ordering::SeqCst);
}

#[inline]
fn reached(at: Pause) {
    let code = encode(at);
    if ARMED.load(Ordering::Relaxed) == code
        && ARMED.compare_exchange(code, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    {
        // SAFETY: raise(3) sends a signal to this process; no memory is involved.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

/// Whether a pause inside slot bodies is armed: read once per slot write, so
/// that the per-word points cost nothing when none is.
#[inline]
pub(crate) fn slot_body_armed() -> bool {
    ARMED.load(Ordering::Relaxed) & !0xffff_ffff == IN_SLOT_BODY
}

pub(crate) fn slot_body_word_stored(words: u32) {
    reached(Pause::InSlotBody { words });
}

pub(crate) fn slots_written(slots: u32) {
    reached(Pause::BetweenSlots { slots });
}
