//! No coordination at all: the unsafe baseline.

use super::{Access, ContentionCounters, LockScope, Ticket, Wait, WriteCoordinator};
use crate::{Result, Strategy};

/// A coordinator that lets every writer in at once.
///
/// **Unsafe with more than one writer.** Two processes (or threads) doing a
/// read-modify-write of the same key will lose updates, and two writers in the
/// same slot can leave it torn until the next repair. It exists to measure the
/// cost of coordination against nothing and to demonstrate the race; a store
/// must be created with [`Strategy::UNCOORDINATED`] to be written through it.
///
/// ```
/// use maph_core::{Config, Mode, Store, Strategy, Uncoordinated};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("race.maph");
/// Store::create(&path, Config::new(64).strategy(Strategy::UNCOORDINATED))?;
/// let store = Store::open(&path, Mode::ReadWrite)?;
/// store.set(&Uncoordinated::new(), b"k", b"v")?; // fine with one writer
/// # Ok::<(), maph_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Uncoordinated {
    counters: ContentionCounters,
}

impl Uncoordinated {
    /// The strategy tag of uncoordinated stores.
    pub const STRATEGY: Strategy = Strategy::UNCOORDINATED;

    /// A coordinator that does not coordinate.
    pub fn new() -> Uncoordinated {
        Uncoordinated::default()
    }
}

impl WriteCoordinator for Uncoordinated {
    fn strategy(&self) -> Strategy {
        Self::STRATEGY
    }

    fn acquire(&self, access: Access, scope: LockScope, _wait: Wait) -> Result<Option<Ticket>> {
        Ok(Some(Ticket::new(access, scope)))
    }

    unsafe fn release(&self, _ticket: Ticket) {}

    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }

    fn excludes_writers(&self) -> bool {
        false
    }
}
