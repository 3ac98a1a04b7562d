//! What every row of the table is measured through: a [`Subject`].
//!
//! The workloads ([`crate::workload`], [`crate::worker`]) are written once,
//! against this trait. A maph store behind any [`WriteCoordinator`](maph_core::WriteCoordinator)
//! is one implementation ([`crate::subjects::MaphSubject`], generic over the
//! coordinator), and each peer database is another. Rows are handled as
//! `Box<dyn Subject>`: every row, the baseline included, pays the same one
//! indirect call per operation, and every maph row's lock-free read runs the
//! one, non-generic `Store::get_into`.

use crate::timer::monotonic_ns;

/// One thing the benchmark measures: a store and the way its writes are coordinated.
pub trait Subject {
    /// Stores `value` under `key`: the "write" column. A maph store locks only
    /// the key's probe window where its coordinator can (`Store::set`).
    fn set(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()>;

    /// Reads `key` into `out` the cheapest way the subject offers: the "read"
    /// column (lock-free for maph, a read transaction for the peers).
    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool>;

    /// Reads `key` while holding the strategy's shared lock on its window, as
    /// the reference's `flock(LOCK_SH)` reader does. What that means for each
    /// row is its [`SharedLock`](crate::rows::SharedLock).
    fn get_locked(&mut self, key: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        self.get(key, out)
    }

    /// Stores `value` under every key of `keys` in one write (one lock
    /// acquisition, or one transaction): the "100 writes" column.
    fn set_batch(&mut self, keys: &[&[u8]], value: &[u8]) -> anyhow::Result<()>;

    /// Reads every key of `keys` (lock-free for maph, one read transaction for
    /// the peers) and returns how many were found: the "100 reads" column.
    fn get_batch(&mut self, keys: &[&[u8]], out: &mut Vec<u8>) -> anyhow::Result<usize>;

    /// Takes the exclusive lock a write of `key` would take, and gives it back,
    /// writing nothing: the "lock + unlock" column. Peers begin and abort a
    /// write transaction (which takes their writer lock).
    fn lock_unlock(&mut self, key: &[u8]) -> anyhow::Result<()>;

    /// Adds one to the little-endian `u64` counter under `key` as one atomic
    /// read-modify-write (what the contention runs do). With `time_lock`, also
    /// times how long the lock took to get (two more clock reads, so only
    /// asked for a sample of increments).
    fn increment(&mut self, key: &[u8], time_lock: bool) -> anyhow::Result<Increment>;

    /// Gives back anything held between operations (a lease), before the
    /// process waits: workers call it between warm-up and start.
    fn idle(&mut self) {}

    /// The counter under `key` (zero if absent).
    fn counter(&mut self, key: &[u8]) -> anyhow::Result<u64> {
        let mut out = Vec::new();
        Ok(if self.get(key, &mut out)? { decode_counter(&out).unwrap_or(0) } else { 0 })
    }

    /// Which of `writers` writer processes may write `key`: `None` for any
    /// (writers then really collide), `Some(i)` when only writer `i` may
    /// (a partitioned store: each key belongs to one owner).
    fn writer_of(&self, key: &[u8], writers: usize) -> Option<usize> {
        let _ = (key, writers);
        None
    }
}

/// How one increment went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Increment {
    /// From asking for the lock to holding it (ns), when asked to time it.
    pub lock_wait_ns: Option<u64>,
    /// The old value could not be decoded (a torn or foreign value): the
    /// increment started again from zero. Only uncoordinated writers see this.
    pub damaged: bool,
}

/// The key of counter `i` in the contention runs.
pub fn counter_key(i: usize) -> Vec<u8> {
    format!("counter:{i:04}").into_bytes()
}

/// A counter's stored form: 8 bytes, little-endian.
pub fn encode_counter(n: u64) -> [u8; 8] {
    n.to_le_bytes()
}

/// Decodes a counter; `None` if the bytes are not one.
pub fn decode_counter(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// The next value of a counter whose stored bytes are `old`: old + 1, or 1
/// (and `damaged`) when `old` is not a counter.
pub fn next_counter(old: Option<&[u8]>) -> (u64, bool) {
    match old {
        None => (1, false),
        Some(bytes) => match decode_counter(bytes) {
            Some(n) => (n.wrapping_add(1), false),
            None => (1, true),
        },
    }
}

/// Runs `acquire`, and when `time` is set, times it: returns its value and the
/// nanoseconds it took.
#[inline]
pub fn timed_if<T>(time: bool, acquire: impl FnOnce() -> T) -> (T, Option<u64>) {
    if !time {
        return (acquire(), None);
    }
    let started = monotonic_ns();
    let value = acquire();
    (value, Some(monotonic_ns().saturating_sub(started)))
}
