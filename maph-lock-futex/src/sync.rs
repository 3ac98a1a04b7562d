//! The atomics of the lock word: the standard library's, or loom's when the
//! protocol is model-checked (`RUSTFLAGS="--cfg loom"`, see `stripe.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicU64;
pub(crate) use std::sync::atomic::Ordering;

/// One step of a spin: a CPU hint, or a loom yield under loom (maph-core's).
pub(crate) use maph_core::spin_hint;
