//! What a lock covers: the whole store, or the slots of one key's probe window.

use std::ops::Range;

/// The part of a store a write needs exclusive access to.
///
/// A key's probe window is `max_probes` consecutive slots starting at its home
/// slot, wrapping at the end of the table. Every read and write of that key
/// touches only those slots (deletes leave tombstones; nothing is shifted), so a
/// coordinator that locks ranges may let writers of far-apart keys run in parallel.
///
/// ```
/// use maph_core::LockScope;
/// // 4 slots starting at slot 8 of a 10-slot table wrap around to 0 and 1.
/// let scope = LockScope::window(8, 4, 10);
/// assert_eq!(scope.ranges().collect::<Vec<_>>(), vec![0..2, 8..10]);
/// assert!(LockScope::Whole.covers(&scope));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockScope {
    /// Every slot (and the right to write any key).
    Whole,
    /// The `len` slots starting at `first`, modulo `slot_count`.
    Window {
        /// First slot of the window.
        first: u64,
        /// Number of slots in the window (at most `slot_count`).
        len: u32,
        /// Slots in the table (where the window wraps).
        slot_count: u64,
    },
}

impl LockScope {
    /// The window of `len` slots from `first` in a table of `slot_count` slots.
    pub fn window(first: u64, len: u32, slot_count: u64) -> LockScope {
        LockScope::Window { first: first % slot_count.max(1), len: u64::from(len).min(slot_count) as u32, slot_count }
    }

    /// The slot ranges covered, in ascending order (at most two, when a window
    /// wraps). Lockers take ranges in this order so no two of them deadlock.
    /// `Whole` yields nothing: it is not a set of slot ranges but the whole store.
    pub fn ranges(&self) -> impl Iterator<Item = Range<u64>> {
        let (low, high) = match *self {
            LockScope::Whole => (None, None),
            LockScope::Window { first, len, slot_count } => {
                let end = first + u64::from(len);
                if end <= slot_count {
                    (Some(first..end), None)
                } else {
                    (Some(0..end - slot_count), Some(first..slot_count))
                }
            }
        };
        low.into_iter().chain(high)
    }

    /// Whether slot `index` is inside this scope.
    pub fn contains_slot(&self, index: u64) -> bool {
        match self {
            LockScope::Whole => true,
            LockScope::Window { .. } => self.ranges().any(|r| r.contains(&index)),
        }
    }

    /// Whether every slot of `other` is inside this scope.
    pub fn covers(&self, other: &LockScope) -> bool {
        match (self, other) {
            (LockScope::Whole, _) => true,
            (LockScope::Window { .. }, LockScope::Whole) => false,
            (LockScope::Window { .. }, LockScope::Window { .. }) => {
                other.ranges().all(|r| self.ranges().any(|mine| mine.start <= r.start && r.end <= mine.end))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_that_fits_is_one_range() {
        assert_eq!(LockScope::window(3, 4, 10).ranges().collect::<Vec<_>>(), vec![3..7]);
        assert_eq!(LockScope::window(6, 4, 10).ranges().collect::<Vec<_>>(), vec![6..10]);
    }

    #[test]
    fn a_window_never_exceeds_the_table() {
        assert_eq!(LockScope::window(0, 20, 10).ranges().collect::<Vec<_>>(), vec![0..10]);
    }

    #[test]
    fn coverage() {
        let w = LockScope::window(8, 4, 10);
        assert!(w.covers(&LockScope::window(9, 2, 10)));
        assert!(w.covers(&LockScope::window(8, 1, 10)));
        assert!(!w.covers(&LockScope::window(7, 2, 10)));
        assert!(!w.covers(&LockScope::Whole));
        assert!(w.contains_slot(1) && !w.contains_slot(2) && w.contains_slot(9));
    }
}
