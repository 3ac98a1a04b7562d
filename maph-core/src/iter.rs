//! Iteration over live entries, and store statistics.

use crate::format::SlotState;
use crate::{Layout, Result, Store, Strategy};

/// Iterator over the live entries of a store, in slot order; see [`Store::iter`].
pub struct Iter<'s> {
    store: &'s Store,
    next: u64,
}

impl Iterator for Iter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.store.layout.slot_count {
            let index = self.next;
            self.next += 1;
            match self.store.slot(index).read_checked(self.store.read_patience) {
                Err(fault) => return Some(Err(self.store.slot_error(index, fault))),
                Ok(copy) if copy.meta.state == SlotState::Live => {
                    let mut key = copy.body;
                    let value = key.split_off(copy.meta.key_len);
                    return Some(Ok((key, value)));
                }
                Ok(_) => {}
            }
        }
        None
    }
}

/// A summary of a store, for people and dashboards.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreStats {
    /// Geometry and strategy from the header.
    pub layout: Layout,
    /// Live keys.
    pub len: u64,
    /// Live keys divided by slots.
    pub load_factor: f64,
    /// Committed writes since create.
    pub generation: u64,
    /// Highest fencing token accepted.
    pub highest_fence: u64,
    /// Size of the file in bytes.
    pub file_bytes: u64,
}

impl StoreStats {
    /// The coordination strategy recorded at create.
    pub fn strategy(&self) -> Strategy {
        self.layout.strategy
    }
}

impl Store {
    /// Iterates over every live `(key, value)`, each read lock-free and whole.
    /// Entries written during the iteration may or may not appear. An item is an
    /// error only for a slot a dead writer left mid-write (or a damaged one).
    ///
    /// ```
    /// # use maph_core::{Config, Mode, SingleWriter, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("iter.maph");
    /// # Store::create(&path, Config::new(64))?;
    /// # let store = Store::open(&path, Mode::ReadWrite)?;
    /// # let writer = SingleWriter::new(&store)?;
    /// store.set(&writer, b"x", b"1")?;
    /// let entries: Vec<_> = store.iter().collect::<Result<_, _>>()?;
    /// assert_eq!(entries, vec![(b"x".to_vec(), b"1".to_vec())]);
    /// # Ok::<(), maph_core::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter { store: self, next: 0 }
    }

    /// Counts and geometry.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            layout: self.layout,
            len: self.len(),
            load_factor: self.load_factor(),
            generation: self.generation(),
            highest_fence: self.highest_fence(),
            file_bytes: self.region.len() as u64,
        }
    }
}
