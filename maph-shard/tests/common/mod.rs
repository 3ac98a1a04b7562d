//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::File;
use std::os::fd::AsRawFd;

use maph_core::{
    poll_until, Access, Backoff, ContentionCounters, LocalGate, LockScope, Store, StoreId, Strategy, Ticket, Wait,
    WriteCoordinator,
};
use maph_shard::Router;

/// The first `count` keys `prefix{i}` that route to `shard`.
pub fn keys_of_shard(router: &Router, shard: u32, prefix: &str, count: usize) -> Vec<String> {
    (0u64..).map(|i| format!("{prefix}{i}")).filter(|k| router.route(k.as_bytes()) == shard).take(count).collect()
}

/// The value every partitioned test writes for `key`.
pub fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

/// A minimal cross-process lock for the "lock within a partition" tests: a
/// whole-file `flock` on the shard's store file per acquisition, behind an
/// in-process gate (flock does not exclude threads sharing the descriptor).
/// The real lock coordinators live in their own crates; this one exists so that
/// maph-shard's tests depend on none of them.
pub struct TestFlock {
    file: File,
    gate: LocalGate,
    counters: ContentionCounters,
    store: StoreId,
}

impl TestFlock {
    pub const STRATEGY: Strategy = Strategy::new("test-flock");

    pub fn new(store: &Store) -> maph_core::Result<TestFlock> {
        store.check_writer(Self::STRATEGY)?;
        let file = store.lock_description()?;
        Ok(TestFlock { file, gate: LocalGate::new(), counters: ContentionCounters::new(), store: store.id() })
    }

    fn flock(&self, operation: libc::c_int) -> std::io::Result<bool> {
        loop {
            // SAFETY: flock on a descriptor this coordinator owns; no memory is involved.
            let rc = unsafe { libc::flock(self.file.as_raw_fd(), operation) };
            if rc == 0 {
                return Ok(true);
            }
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::WouldBlock => return Ok(false),
                std::io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
    }
}

impl WriteCoordinator for TestFlock {
    fn strategy(&self) -> Strategy {
        Self::STRATEGY
    }

    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> maph_core::Result<Option<Ticket>> {
        // Shared requests are served exclusively: simpler, and still correct.
        if !self.gate.acquire(Access::Exclusive, wait) {
            return Ok(None);
        }
        let locked = poll_until(wait, Backoff::new(), || {
            self.flock(libc::LOCK_EX | libc::LOCK_NB)
                .map(|got| got.then_some(()))
                .map_err(|e| maph_core::Error::io("test flock", e))
        });
        match locked {
            Ok(Some(())) => Ok(Some(Ticket::new(access, scope))),
            other => {
                // SAFETY: taken exclusively just above and not yet released.
                unsafe { self.gate.release(Access::Exclusive) };
                other.map(|_| None)
            }
        }
    }

    unsafe fn release(&self, _ticket: Ticket) {
        let _ = self.flock(libc::LOCK_UN);
        // SAFETY: the caller guarantees the ticket is held; every ticket holds the gate exclusively.
        unsafe { self.gate.release(Access::Exclusive) };
    }

    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }

    fn bound_store(&self) -> Option<StoreId> {
        Some(self.store)
    }
}

/// Runs `attempt` again while it fails with `WriterBusy` naming no owner, for
/// at most 30 s.
///
/// A lease this process just released can still be held for a moment: another
/// test thread spawning a child copies every open descriptor into it, and the
/// child's copy of the lease keeps the `flock` until the child execs (Rust
/// opens files close-on-exec, so no longer). The released lease's pid record
/// is empty, so such a busy lease names no owner. A live owner always does.
pub fn retry_while_released_lease_lingers<T>(
    mut attempt: impl FnMut() -> maph_shard::Result<T>,
) -> maph_shard::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match attempt() {
            Err(maph_shard::Error::Store(maph_core::Error::WriterBusy { pid: None }))
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            other => return other,
        }
    }
}
