//! The atomics of the lock word: the standard library's, or loom's when the
//! protocol is model-checked (`RUSTFLAGS="--cfg loom"`, see `stripe.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicU64;
pub(crate) use std::sync::atomic::Ordering;

/// One step of a spin: a CPU hint normally; under loom a yield, which lets the
/// model checker schedule the thread being waited for.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
