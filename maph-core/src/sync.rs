//! The atomics of the seqlock: the standard library's, or loom's when the
//! protocol is model-checked (`RUSTFLAGS="--cfg loom"`, see `slot.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64};
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64};

/// One step of a spin wait for another thread or process: a CPU hint
/// (`std::hint::spin_loop`) normally; when built with `--cfg loom`, a loom
/// yield, which lets the model checker schedule the thread being waited for.
/// Coordinators whose protocols are model-checked spin with it too.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// let ready = AtomicBool::new(true);
/// while !ready.load(Ordering::Acquire) {
///     maph_core::spin_hint();
/// }
/// ```
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
