//! The atomics of the seqlock: the standard library's, or loom's when the
//! protocol is model-checked (`RUSTFLAGS="--cfg loom"`, see `slot.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64};
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64};

/// One step of waiting for another thread: a CPU hint normally; under loom a
/// yield, which lets the model checker schedule the thread being waited for.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
