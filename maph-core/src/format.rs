//! The on-disk layout, byte by byte (mirrored in `docs/FORMAT.md`).
//!
//! ```text
//! file   = header (8192 bytes) ‖ slot[0] ‖ … ‖ slot[slot_count-1]
//! header = immutable part (0..128, checksummed) ‖ live words (128..512)
//!          ‖ counter shards (512..1024) ‖ coordinator region (1024..4096)
//!          ‖ write-intent lanes (4096..8192)
//! slot   = hash_version u64 ‖ meta u64 ‖ checksum u64 ‖ seq u64 ‖ key ‖ value ‖ padding
//! ```
//!
//! Every integer is little-endian; maph only builds for little-endian targets, so
//! the live atomic words (native order) and the documented order agree.

use std::path::Path;

use crate::{Error, Result, Strategy};

#[cfg(not(target_endian = "little"))]
compile_error!("the maph file format is little-endian; big-endian targets are not supported");

/// The four bytes every store starts with.
pub const MAGIC: [u8; 4] = *b"MAPH";
/// The layout version this build reads and writes. Version 1 (a 4096-byte
/// header, no store identity, no write-intent lanes, reads that did not check
/// checksums) is refused with [`Error::UnsupportedVersion`].
pub const FORMAT_VERSION: u32 = 2;
/// Size of the header; slot 0 starts here.
pub const HEADER_SIZE: usize = 8192;
/// Hash algorithm id 1: xxh3-64 with the header's seed.
pub const HASH_XXH3_64: u32 = 1;

// Immutable header fields (written once at create, covered by the header checksum).
pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION: usize = 4;
pub(crate) const OFF_HEADER_SIZE: usize = 8;
pub(crate) const OFF_SLOT_SIZE: usize = 12;
pub(crate) const OFF_SLOT_COUNT: usize = 16;
pub(crate) const OFF_HASH_ALGO: usize = 24;
pub(crate) const OFF_MAX_PROBES: usize = 28;
pub(crate) const OFF_HASH_SEED: usize = 32;
pub(crate) const OFF_STRATEGY: usize = 40;
/// The store's identity: 16 random bytes (a version 4 UUID) drawn at create.
pub(crate) const OFF_UUID: usize = 56;
pub(crate) const OFF_HEADER_CHECKSUM: usize = 120;
/// Bytes covered by the header checksum (72..120 are reserved, zero).
pub(crate) const CHECKSUMMED_LEN: usize = 120;
/// Length of the immutable part of the header.
pub(crate) const IMMUTABLE_LEN: usize = 128;

// Live words: 8-byte aligned atomics, changed by writers while readers look.
/// Highest fencing token any write has presented (a live word; tools that
/// inspect or damage a file on purpose, like the fence-repair tests, find it here).
pub const OFF_HIGHEST_FENCE: usize = 128;
/// [`RETIRED`] once another file has replaced this one at its path (see
/// `Store::swap_in`); any other value means the file is in service.
pub(crate) const OFF_RETIRED: usize = 136;
/// The pid of the process holding the single-writer lease (0: none), for
/// `WriterBusy` messages; believed only while that process lives.
pub(crate) const OFF_WRITER_PID: usize = 144;
/// Bit `i` set while write-intent lane `i` is claimed (its own cache line:
/// every commit writes it).
pub(crate) const OFF_LANES_BUSY: usize = 192;
/// The pid of a process repairing an uncoordinated store (0: none); its
/// writers refuse to commit meanwhile (`Error::UnderRepair`).
pub(crate) const OFF_MAINTENANCE: usize = 200;
/// The retired mark: the bytes `RETIRED!`. A full word rather than a flag, so a
/// flipped bit cannot retire a store by accident.
pub(crate) const RETIRED: u64 = u64::from_le_bytes(*b"RETIRED!");

/// The commit counters are split into this many shards, each on a cache line of
/// its own, by slot region: writers of far-apart keys (different lock stripes,
/// say) then never write the same line. One shared counter made two writer
/// processes on different stripes *slower* than one (0.90x); sharded, 1.94x.
pub const COUNTER_SHARDS: usize = 8;
/// Start of the counter shards: shard `k` is the cache line at
/// `COUNTERS_OFFSET + 64 k`; its first word counts committed writes (the
/// generation), its second the live keys in its slot region.
pub(crate) const COUNTERS_OFFSET: usize = 512;
/// Distance between counter shards (a cache line).
pub(crate) const COUNTER_STRIDE: usize = 64;

/// Start of the region reserved for coordinators that keep lock words in the file.
pub const COORDINATOR_REGION_OFFSET: usize = 1024;
/// Length of the coordinator region.
pub const COORDINATOR_REGION_LEN: usize = LANES_OFFSET - COORDINATOR_REGION_OFFSET;

/// Start of the write-intent lanes: lane `i` is the cache line at
/// `LANES_OFFSET + 64 i`. A commit records there, before it writes any slot,
/// which slots it is about to write; a writer that dies mid-commit leaves its
/// lane claimed, and the next holder repairs exactly those slots.
pub(crate) const LANES_OFFSET: usize = 4096;
/// Number of write-intent lanes (bits of the busy word): how many commits may
/// be in flight at once.
pub(crate) const LANES: usize = 64;
/// Size of one lane.
pub(crate) const LANE_STRIDE: usize = 64;

// Slot layout.
/// Bytes of per-slot bookkeeping before the key.
pub const SLOT_HEADER_SIZE: usize = 32;
pub(crate) const SLOT_OFF_META: usize = 8;
pub(crate) const SLOT_OFF_CHECKSUM: usize = 16;
/// The commit sequence of the key in the slot: one more than the sequence of
/// the copy it replaced, so that of two copies of one key (a writer died
/// between the two slots of a move) the newer is known.
pub(crate) const SLOT_OFF_SEQ: usize = 24;
pub(crate) const SLOT_OFF_BODY: usize = SLOT_HEADER_SIZE;

/// Smallest slot accepted (32 bytes of bookkeeping plus 32 of data).
pub const MIN_SLOT_SIZE: u32 = 64;
/// Largest slot accepted; a larger one makes every probe touch too many pages.
pub const MAX_SLOT_SIZE: u32 = 1 << 20;
/// Default slot size.
pub const DEFAULT_SLOT_SIZE: u32 = 512;
/// Default probe window. The reference design used 10, which (measured by
/// simulating random inserts into 10^6 slots) makes the first insert fail at
/// about 21 % load; 64 carries the store to about 58 %. A lookup stops at the
/// first empty slot, so the larger window costs nothing until a store is full.
///
/// | window | 10 | 16 | 32 | 64 | 128 |
/// |---|---|---|---|---|---|
/// | load at the first `TableFull` (10^6 slots, median of 3) | 0.21 | 0.32 | 0.49 | 0.58 | 0.72 |
pub const DEFAULT_MAX_PROBES: u32 = 64;
/// Largest probe window accepted (it is also the largest range a writer locks).
pub const MAX_PROBES_LIMIT: u32 = 4096;

/// What a slot holds. Slots never return to `Empty`: deletes and repairs leave a
/// `Tombstone`, so a key is never stored beyond an empty slot of its window and a
/// lookup may stop at the first empty slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SlotState {
    /// Never written.
    Empty = 0,
    /// Holds a key and its value.
    Live = 1,
    /// Held a key that was removed; reusable, but lookups probe past it.
    Tombstone = 2,
}

impl SlotState {
    pub(crate) fn from_byte(b: u8) -> Option<SlotState> {
        match b {
            0 => Some(SlotState::Empty),
            1 => Some(SlotState::Live),
            2 => Some(SlotState::Tombstone),
            _ => None,
        }
    }
}

/// The slot's meta word: key length (bits 0..16), state (16..24), zero (24..32),
/// value length (32..64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub key_len: usize,
    pub state: SlotState,
    pub value_len: usize,
}

impl Meta {
    pub fn encode(self) -> u64 {
        self.key_len as u64 | (self.state as u64) << 16 | (self.value_len as u64) << 32
    }

    /// Decodes a meta word; `None` if the state byte or reserved byte is invalid
    /// or the lengths do not fit in `capacity` (a torn read or a damaged slot).
    pub fn decode(word: u64, capacity: usize) -> Option<Meta> {
        let key_len = (word & 0xffff) as usize;
        let state = SlotState::from_byte((word >> 16) as u8)?;
        let value_len = (word >> 32) as usize;
        let reserved_ok = (word >> 24) & 0xff == 0;
        let fits = key_len + value_len <= capacity;
        let shape_ok = state == SlotState::Live || (key_len == 0 && value_len == 0);
        (reserved_ok && fits && shape_ok).then_some(Meta { key_len, state, value_len })
    }
}

/// Geometry and identity of a store, as recorded in the immutable header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Number of slots.
    pub slot_count: u64,
    /// Bytes per slot (a multiple of 64).
    pub slot_size: u32,
    /// Length of each key's probe window.
    pub max_probes: u32,
    /// Seed of the key hash.
    pub hash_seed: u64,
    /// Strategy whose writers may write this store.
    pub strategy: Strategy,
}

/// A store's identity: 16 random bytes drawn at create (a version 4 UUID),
/// kept in the immutable header. Every process that opens the file reads the
/// same id, whatever path it used, so coordinators outside the file (a Redis
/// token, a lock file) can be named after the store itself.
///
/// A byte-for-byte copy (`cp`) has the same id; see `docs/FORMAT.md` for what
/// that means and [`Store::assign_new_uuid`](crate::Store::assign_new_uuid) to give a copy its own.
///
/// ```
/// use maph_core::StoreUuid;
/// let id = StoreUuid::from_bytes([0x12; 16]);
/// assert_eq!(id.to_string(), "12121212-1212-1212-1212-121212121212");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreUuid([u8; 16]);

impl StoreUuid {
    /// The id with these bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> StoreUuid {
        StoreUuid(bytes)
    }

    /// The 16 bytes, as stored in the header.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A fresh random id (version 4, variant 1), from the kernel's random source.
    pub(crate) fn random() -> Result<StoreUuid> {
        let mut bytes = [0u8; 16];
        let mut filled = 0;
        while filled < bytes.len() {
            // SAFETY: getrandom writes at most the given length into the buffer.
            let n = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0) };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("could not draw a random store id (getrandom)", err));
            }
            filled += n as usize;
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Ok(StoreUuid(bytes))
    }
}

impl std::fmt::Display for StoreUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for StoreUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUuid({self})")
    }
}

impl Layout {
    /// Checks that the geometry is usable; the message says which value is wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.slot_count == 0 {
            return Err("slot count is 0; a store needs at least one slot".into());
        }
        if self.slot_size < MIN_SLOT_SIZE || self.slot_size > MAX_SLOT_SIZE || self.slot_size % 64 != 0 {
            return Err(format!(
                "slot size {} must be a multiple of 64 between {MIN_SLOT_SIZE} and {MAX_SLOT_SIZE}",
                self.slot_size
            ));
        }
        if self.max_probes == 0 || self.max_probes > MAX_PROBES_LIMIT {
            return Err(format!("max_probes {} must be between 1 and {MAX_PROBES_LIMIT}", self.max_probes));
        }
        if u64::from(self.max_probes) > self.slot_count {
            return Err(format!("max_probes {} exceeds the slot count {}", self.max_probes, self.slot_count));
        }
        self.file_len()
            .ok_or_else(|| format!("{} slots of {} bytes overflow a file size", self.slot_count, self.slot_size))?;
        Ok(())
    }

    /// Exact length of the file this layout describes; `None` on overflow.
    pub fn file_len(&self) -> Option<u64> {
        let slots = self.slot_count.checked_mul(u64::from(self.slot_size))?;
        let total = slots.checked_add(HEADER_SIZE as u64)?;
        // The whole file is mapped, so it must fit in the address space.
        usize::try_from(total).ok().map(|_| total)
    }

    /// Bytes of key plus value that fit in one slot.
    pub fn capacity(&self) -> usize {
        self.slot_size as usize - SLOT_HEADER_SIZE
    }

    /// Encodes the immutable part of the header (bytes 0..128).
    pub(crate) fn encode_header(&self, uuid: StoreUuid) -> [u8; IMMUTABLE_LEN] {
        let mut h = [0u8; IMMUTABLE_LEN];
        h[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&MAGIC);
        h[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[OFF_HEADER_SIZE..OFF_HEADER_SIZE + 4].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        h[OFF_SLOT_SIZE..OFF_SLOT_SIZE + 4].copy_from_slice(&self.slot_size.to_le_bytes());
        h[OFF_SLOT_COUNT..OFF_SLOT_COUNT + 8].copy_from_slice(&self.slot_count.to_le_bytes());
        h[OFF_HASH_ALGO..OFF_HASH_ALGO + 4].copy_from_slice(&HASH_XXH3_64.to_le_bytes());
        h[OFF_MAX_PROBES..OFF_MAX_PROBES + 4].copy_from_slice(&self.max_probes.to_le_bytes());
        h[OFF_HASH_SEED..OFF_HASH_SEED + 8].copy_from_slice(&self.hash_seed.to_le_bytes());
        h[OFF_STRATEGY..OFF_STRATEGY + 16].copy_from_slice(&self.strategy.to_bytes());
        h[OFF_UUID..OFF_UUID + 16].copy_from_slice(uuid.as_bytes());
        let sum = header_checksum(&h[..CHECKSUMMED_LEN]);
        h[OFF_HEADER_CHECKSUM..OFF_HEADER_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// Decodes and validates the first 128 header bytes of `path`, whose length is `file_len`.
    pub(crate) fn decode_header(path: &Path, h: &[u8; IMMUTABLE_LEN], file_len: u64) -> Result<(Layout, StoreUuid)> {
        let not_a_store = |reason: &str| Error::NotAStore { path: path.to_path_buf(), reason: reason.to_string() };
        let corrupt = |detail: String| Error::Corrupt { path: path.to_path_buf(), detail };
        if h[OFF_MAGIC..OFF_MAGIC + 4] != MAGIC {
            return Err(not_a_store("it does not start with the magic bytes MAPH"));
        }
        let version = u32_at(h, OFF_VERSION);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let stored_sum = u64_at(h, OFF_HEADER_CHECKSUM);
        if header_checksum(&h[..CHECKSUMMED_LEN]) != stored_sum {
            return Err(corrupt("the header checksum does not match its contents".into()));
        }
        let header_size = u32_at(h, OFF_HEADER_SIZE);
        if header_size as usize != HEADER_SIZE {
            return Err(corrupt(format!("header size is {header_size}, expected {HEADER_SIZE}")));
        }
        let algo = u32_at(h, OFF_HASH_ALGO);
        if algo != HASH_XXH3_64 {
            return Err(corrupt(format!("unknown hash algorithm id {algo}")));
        }
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&h[OFF_STRATEGY..OFF_STRATEGY + 16]);
        let strategy =
            Strategy::from_bytes(tag).ok_or_else(|| corrupt("the strategy tag is not printable ASCII".into()))?;
        let layout = Layout {
            slot_count: u64_at(h, OFF_SLOT_COUNT),
            slot_size: u32_at(h, OFF_SLOT_SIZE),
            max_probes: u32_at(h, OFF_MAX_PROBES),
            hash_seed: u64_at(h, OFF_HASH_SEED),
            strategy,
        };
        layout.validate().map_err(corrupt)?;
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&h[OFF_UUID..OFF_UUID + 16]);
        let expected = layout.file_len().unwrap_or(u64::MAX);
        if expected != file_len {
            return Err(corrupt(format!(
                "the header describes {} slots of {} bytes ({expected} bytes in all) but the file has {file_len} bytes \
                 (truncated or extended by something other than maph)",
                layout.slot_count, layout.slot_size
            )));
        }
        Ok((layout, StoreUuid(uuid)))
    }
}

fn header_checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

fn u32_at(h: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(h[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(h: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(h[off..off + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout { slot_count: 100, slot_size: 512, max_probes: 10, hash_seed: 7, strategy: Strategy::SINGLE_WRITER }
    }

    #[test]
    fn header_round_trips() {
        let l = layout();
        let id = StoreUuid::random().unwrap();
        let h = l.encode_header(id);
        let back = Layout::decode_header(Path::new("x"), &h, l.file_len().unwrap()).unwrap();
        assert_eq!(back, (l, id));
    }

    #[test]
    fn every_flipped_header_byte_is_rejected() {
        let l = layout();
        let h = l.encode_header(StoreUuid::random().unwrap());
        for i in 0..IMMUTABLE_LEN {
            let mut bad = h;
            bad[i] ^= 0x20;
            assert!(
                Layout::decode_header(Path::new("x"), &bad, l.file_len().unwrap()).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn random_ids_are_version_4_and_differ() {
        let (a, b) = (StoreUuid::random().unwrap(), StoreUuid::random().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.as_bytes()[6] >> 4, 4);
        assert_eq!(a.as_bytes()[8] >> 6, 0b10);
        assert_eq!(a.to_string().len(), 36);
    }

    #[test]
    fn meta_rejects_lengths_beyond_capacity() {
        let m = Meta { key_len: 3, state: SlotState::Live, value_len: 5 };
        assert_eq!(Meta::decode(m.encode(), 8), Some(m));
        assert_eq!(Meta::decode(m.encode(), 7), None);
        assert_eq!(Meta::decode(m.encode() | 0x0300_0000, 8), None);
        let tomb_with_len = Meta { key_len: 1, state: SlotState::Tombstone, value_len: 0 };
        assert_eq!(Meta::decode(tomb_with_len.encode(), 8), None);
    }
}
