//! The only place that touches the mapping.
//!
//! The file is mapped `MAP_SHARED` into every process that opens it, and other
//! processes write it at any moment. Rust forbids a `&[u8]` to bytes that change
//! underneath it, so this module never creates one: every access is an atomic
//! load or store of an aligned 64-bit word through a raw pointer. Word-wise
//! relaxed atomics compile to ordinary moves on x86-64 and AArch64, so the cost
//! over `memcpy` is small, and a concurrent write is a race the memory model
//! defines (the seqlock in `slot.rs` then discards what it tore) rather than
//! undefined behaviour.
//!
//! What remains the caller's responsibility, as with any mapping: the file must
//! not be truncated while mapped (a shrunk file turns accesses past its end into
//! SIGBUS). maph checks the length at open; see `docs/FORMAT.md`.

use std::fs::File;
#[cfg(not(loom))]
use std::sync::atomic::AtomicU32;

#[cfg(not(loom))]
use memmap2::{MmapOptions, MmapRaw};

use crate::sync::{AtomicU64, Ordering};
use crate::{Error, Result};

/// A shared mapping of a whole store file, accessed only word by word.
#[cfg(not(loom))]
pub(crate) struct SharedRegion {
    map: MmapRaw,
    len: usize,
}

/// Under loom, the region is ordinary memory of loom atomics, so the model
/// checker runs the real seqlock code of `slot.rs` against its memory model.
#[cfg(loom)]
pub(crate) struct SharedRegion {
    words: Box<[AtomicU64]>,
    len: usize,
}

#[cfg(loom)]
impl SharedRegion {
    /// `len` zeroed bytes (a multiple of 8).
    #[cfg(test)]
    pub fn for_model(len: usize) -> SharedRegion {
        SharedRegion { words: (0..len / 8).map(|_| AtomicU64::new(0)).collect(), len }
    }

    pub fn map(_file: &File, _len: usize, _writable: bool) -> Result<SharedRegion> {
        Err(Error::io("files are not mapped under loom", std::io::ErrorKind::Unsupported.into()))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len, "word offset {offset} out of range");
        &self.words[offset / 8]
    }

    pub fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(not(loom))]
impl SharedRegion {
    /// Maps `len` bytes of `file`. `len` must be the file's current length.
    pub fn map(file: &File, len: usize, writable: bool) -> Result<SharedRegion> {
        let mut options = MmapOptions::new();
        options.len(len);
        let map = if writable { options.map_raw(file) } else { options.map_raw_read_only(file) }
            .map_err(|e| Error::io("could not map the store into memory", e))?;
        Ok(SharedRegion { map, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The 64-bit word at byte `offset`.
    ///
    /// Panics if `offset` is misaligned or out of bounds: offsets come from the
    /// validated layout, so that would be a bug in maph, never bad input.
    #[inline]
    pub fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len, "word offset {offset} out of range");
        // SAFETY: the pointer is inside the live mapping (checked above), 8-byte
        // aligned (the mapping is page-aligned and the offset a multiple of 8),
        // and valid for as long as `self` lives. Every access to mapped bytes in
        // maph is atomic, which is what `from_ptr` requires; other processes
        // use the same protocol. A read-only mapping is only ever loaded from.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset).cast::<u64>()) }
    }

    /// The 32-bit word at byte `offset` (used for in-file lock words).
    #[inline]
    pub fn word32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len, "word offset {offset} out of range");
        // SAFETY: as for `word`, with 4-byte alignment.
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(offset).cast::<u32>()) }
    }

    /// msync: asks the kernel to write dirty pages back to the file now.
    pub fn flush(&self) -> Result<()> {
        self.map.flush().map_err(|e| Error::io("could not flush the store to disk (msync)", e))
    }
}

/// Byte-level access built from word access: the same code for both regions.
impl SharedRegion {
    /// Appends the `len` bytes at `offset` (any alignment) to `out`, loading the
    /// aligned words that cover them. The bytes may be torn by a concurrent
    /// writer; the caller validates.
    #[inline]
    pub fn copy_out(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        if len == 0 {
            return;
        }
        let start = out.len();
        out.reserve(len + 16);
        let end = offset + len;
        let first_word = offset & !7;
        // Whole words, 8 fixed-size bytes at a time (no variable-length memcpy),
        // then cut off the bytes before `offset` and after `end`.
        let mut at = first_word;
        while at < end {
            out.extend_from_slice(&self.word(at).load(Ordering::Relaxed).to_le_bytes());
            at += 8;
        }
        let skip = offset - first_word;
        if skip > 0 {
            out.copy_within(start + skip..start + skip + len, start);
        }
        out.truncate(start + len);
    }

    /// Whether the `bytes.len()` bytes at `offset` (8-aligned) equal `bytes`.
    #[inline]
    pub fn equals(&self, offset: usize, bytes: &[u8]) -> bool {
        let mut chunks = bytes.chunks(8);
        let mut at = offset;
        chunks.all(|chunk| {
            let word = self.word(at).load(Ordering::Relaxed).to_le_bytes();
            at += 8;
            word[..chunk.len()] == *chunk
        })
    }

    /// Writes `bytes` starting at `offset` (8-aligned), word by word, zero-padding
    /// the last word. Only a writer holding the slot calls this.
    /// `stored(n)` runs after the n-th word (a test's pause point; empty otherwise).
    #[inline]
    pub fn copy_in(&self, offset: usize, bytes: &[u8], stored: impl Fn(u32)) {
        let mut words = bytes.chunks_exact(8);
        let mut at = offset;
        let mut n = 0;
        for word in &mut words {
            self.word(at).store(u64::from_le_bytes(word.try_into().expect("8 bytes")), Ordering::Relaxed);
            at += 8;
            n += 1;
            stored(n);
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.word(at).store(u64::from_le_bytes(word), Ordering::Relaxed);
            stored(n + 1);
        }
    }
}
