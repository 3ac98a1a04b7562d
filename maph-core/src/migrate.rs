//! Copying a store of format version 1 into a new store of this version.
//!
//! Version 1 (docs/FORMAT.md, "what changed") had a 4096-byte header whose
//! immutable part was bytes 0..64 (checksum at 56, over 0..56), and slots of the
//! same layout as now except that the word at offset 24 was reserved and the
//! slot checksum covered meta ‖ key ‖ value. The migration reads the old file
//! with read(2) (never mapping it), keeps every slot that is live, whole (even
//! version) and matches its version 1 checksum, and writes those entries into a
//! new store with the same geometry, hash seed and strategy, built under a
//! temporary name and linked into place only when complete.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::coordinator::{Access, ContentionCounters, LockScope, Ticket, Wait, WriteCoordinator};
use crate::format::{Meta, SlotState, MAGIC};
use crate::{Config, Error, Mode, Result, Store, Strategy};

const V1_HEADER_SIZE: u64 = 4096;
const V1_CHECKSUMMED: usize = 56;

/// What [`migrate_v1`] copied and left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Entries copied into the new store.
    pub entries: u64,
    /// Slots of the old file left out: mid-write (odd version), or not matching
    /// their checksum (torn or damaged). Empty after a clean shutdown.
    pub skipped: Vec<u64>,
}

/// The geometry of a version 1 header.
struct V1Layout {
    slot_count: u64,
    slot_size: u32,
    max_probes: u32,
    hash_seed: u64,
    strategy: Strategy,
}

/// Copies every whole entry of the version 1 store at `old` into a new store
/// at `new` (which must not exist), with the same geometry, hash seed and
/// strategy. The old file is only read. Its writers must be stopped first: a
/// slot being written while it is read is left out (and reported).
///
/// The command line runs it as `maph migrate OLD NEW`.
pub fn migrate_v1(old: &Path, new: &Path) -> Result<MigrateReport> {
    let file = File::open(old).map_err(|e| Error::io(format!("could not open {}", old.display()), e))?;
    let layout = read_v1_header(old, &file)?;
    let config = Config::new(layout.slot_count)
        .slot_size(layout.slot_size)
        .max_probes(layout.max_probes)
        .hash_seed(layout.hash_seed)
        .strategy(layout.strategy);
    let tmp = crate::files::temp_sibling(new, "migrating");
    Store::create(&tmp, config)?;
    let copied =
        copy_entries(&file, &layout, &tmp).and_then(|report| crate::files::link_into_place(&tmp, new).map(|()| report));
    let _ = std::fs::remove_file(&tmp);
    copied
}

fn read_v1_header(path: &Path, file: &File) -> Result<V1Layout> {
    let not_v1 = |why: &str| Error::NotAStore { path: path.to_path_buf(), reason: why.to_string() };
    let mut h = [0u8; 64];
    file.read_exact_at(&mut h, 0).map_err(|_| not_v1("it is shorter than a maph header"))?;
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    if h[..4] != MAGIC {
        return Err(not_v1("it does not start with the magic bytes MAPH"));
    }
    if u32_at(4) != 1 {
        return Err(Error::InvalidConfig(format!(
            "{} is of format version {}, not 1: only version 1 stores are migrated",
            path.display(),
            u32_at(4)
        )));
    }
    let corrupt = |detail: &str| Error::Corrupt { path: path.to_path_buf(), detail: detail.to_string() };
    if xxhash_rust::xxh3::xxh3_64(&h[..V1_CHECKSUMMED]) != u64_at(56) {
        return Err(corrupt("the version 1 header checksum does not match its contents"));
    }
    if u64::from(u32_at(8)) != V1_HEADER_SIZE || u32_at(24) != crate::format::HASH_XXH3_64 {
        return Err(corrupt("the version 1 header names another header size or hash"));
    }
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&h[40..56]);
    let strategy = Strategy::from_bytes(tag).ok_or_else(|| corrupt("the strategy tag is not printable ASCII"))?;
    let layout = V1Layout {
        slot_count: u64_at(16),
        slot_size: u32_at(12),
        max_probes: u32_at(28),
        hash_seed: u64_at(32),
        strategy,
    };
    let expected =
        layout.slot_count.checked_mul(u64::from(layout.slot_size)).and_then(|n| n.checked_add(V1_HEADER_SIZE));
    let len = file.metadata().map_err(|e| Error::io(format!("could not stat {}", path.display()), e))?.len();
    if expected != Some(len) {
        return Err(corrupt("its length does not match the version 1 header"));
    }
    Ok(layout)
}

/// Writes the old file's whole entries into the new store at `tmp`, which no
/// other process knows of yet.
fn copy_entries(file: &File, layout: &V1Layout, tmp: &Path) -> Result<MigrateReport> {
    let store = Store::open(tmp, Mode::ReadWrite)?;
    let writer = Offline { strategy: layout.strategy, counters: ContentionCounters::new() };
    let mut report = MigrateReport::default();
    let mut slot = vec![0u8; layout.slot_size as usize];
    let capacity = layout.slot_size as usize - crate::format::SLOT_HEADER_SIZE;
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for index in 0..layout.slot_count {
        let at = V1_HEADER_SIZE + index * u64::from(layout.slot_size);
        file.read_exact_at(&mut slot, at).map_err(|e| Error::io("could not read the old store", e))?;
        let word = |o: usize| u64::from_le_bytes(slot[o..o + 8].try_into().expect("8 bytes"));
        let (version, meta, checksum) = (word(0), word(8), word(16));
        let Some(meta) = Meta::decode(meta, capacity) else {
            report.skipped.push(index);
            continue;
        };
        if meta.state != SlotState::Live {
            continue;
        }
        let body = &slot[32..32 + meta.key_len + meta.value_len];
        let covered = [&slot[8..16], body].concat();
        if version & 1 == 1 || xxhash_rust::xxh3::xxh3_64(&covered) != checksum {
            report.skipped.push(index);
            continue;
        }
        let (key, value) = body.split_at(meta.key_len);
        batch.push((key.to_vec(), value.to_vec()));
        if batch.len() == 1024 {
            write_batch(&store, &writer, &mut batch, &mut report)?;
        }
    }
    write_batch(&store, &writer, &mut batch, &mut report)?;
    store.flush()?;
    Ok(report)
}

fn write_batch(
    store: &Store,
    writer: &Offline,
    batch: &mut Vec<(Vec<u8>, Vec<u8>)>,
    report: &mut MigrateReport,
) -> Result<()> {
    store.write(writer, |tx| batch.iter().try_for_each(|(k, v)| tx.set(k, v)))?;
    report.entries += batch.len() as u64;
    batch.clear();
    Ok(())
}

/// The writer of a store that no other process can know of yet (it has only a
/// temporary name): it excludes every writer by construction. Private to the
/// migration, so no one can write a store in use through it.
struct Offline {
    strategy: Strategy,
    counters: ContentionCounters,
}

impl WriteCoordinator for Offline {
    fn strategy(&self) -> Strategy {
        self.strategy
    }
    fn acquire(&self, access: Access, scope: LockScope, _wait: Wait) -> Result<Option<Ticket>> {
        Ok(Some(Ticket::new(access, scope)))
    }
    unsafe fn release(&self, _ticket: Ticket) {}
    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }
    fn locks_whole_store(&self) -> bool {
        true
    }
}
