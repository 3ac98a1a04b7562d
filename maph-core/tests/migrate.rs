//! A store of format version 1 is refused with a message that names the way
//! out, and `migrate_v1` copies its whole entries into a new store.

use std::path::Path;

use maph_core::{migrate_v1, Config, Error, Mode, SingleWriter, Store};

const SLOTS: u64 = 16;
const SLOT_SIZE: u64 = 128;

/// A version 1 file, byte by byte as version 1 defined it (docs/FORMAT.md,
/// "what changed"): `entries` live, plus one slot left mid-write.
fn write_v1(path: &Path, entries: &[(&[u8], &[u8])], seed: u64) {
    let mut file = vec![0u8; 4096 + (SLOTS * SLOT_SIZE) as usize];
    let h = &mut file[..64];
    h[..4].copy_from_slice(b"MAPH");
    h[4..8].copy_from_slice(&1u32.to_le_bytes());
    h[8..12].copy_from_slice(&4096u32.to_le_bytes());
    h[12..16].copy_from_slice(&(SLOT_SIZE as u32).to_le_bytes());
    h[16..24].copy_from_slice(&SLOTS.to_le_bytes());
    h[24..28].copy_from_slice(&1u32.to_le_bytes());
    h[28..32].copy_from_slice(&(SLOTS as u32).to_le_bytes());
    h[32..40].copy_from_slice(&seed.to_le_bytes());
    h[40..53].copy_from_slice(b"single-writer");
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..56]);
    h[56..64].copy_from_slice(&sum.to_le_bytes());
    let mut slot_at = |i: usize, key: &[u8], value: &[u8], odd: bool| {
        let s = &mut file[4096 + i * SLOT_SIZE as usize..][..SLOT_SIZE as usize];
        let meta = key.len() as u64 | 1 << 16 | (value.len() as u64) << 32;
        let covered = [&meta.to_le_bytes()[..], key, value].concat();
        let version: u64 = if odd { 3 } else { 2 };
        s[..8].copy_from_slice(&version.to_le_bytes()); // the tag is recomputed by the copy
        s[8..16].copy_from_slice(&meta.to_le_bytes());
        s[16..24].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(&covered).to_le_bytes());
        s[32..32 + key.len()].copy_from_slice(key);
        s[32 + key.len()..32 + key.len() + value.len()].copy_from_slice(value);
    };
    for (i, (k, v)) in entries.iter().enumerate() {
        slot_at(i, k, v, false);
    }
    slot_at(entries.len(), b"mid-write", b"half", true);
    std::fs::write(path, file).unwrap();
}

#[test]
fn a_version_1_store_is_refused_then_migrated() {
    let dir = maph_testkit::temp_dir();
    let (old, new) = (dir.path().join("old.maph"), dir.path().join("new.maph"));
    let entries: [(&[u8], &[u8]); 3] = [(b"user:1", b"ada"), (b"user:2", b"grace"), (b"user:3", b"")];
    write_v1(&old, &entries, 77);

    let err = Store::open(&old, Mode::ReadOnly).unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion { found: 1, .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("maph migrate {}", old.display())), "{err}");

    let report = migrate_v1(&old, &new).unwrap();
    assert_eq!(report.entries, 3);
    assert_eq!(report.skipped, vec![3], "the slot left mid-write is reported, not copied");
    let store = Store::open(&new, Mode::ReadWrite).unwrap();
    assert_eq!((store.slot_count(), store.layout().slot_size, store.layout().hash_seed), (SLOTS, 128, 77));
    for (k, v) in entries {
        assert_eq!(store.get(k).unwrap().as_deref(), Some(v));
    }
    assert_eq!(store.get(b"mid-write").unwrap(), None);
    assert!(store.verify().is_clean());
    let writer = SingleWriter::new(&store).unwrap();
    store.set(&writer, b"user:4", b"new").unwrap();
    assert_eq!(store.len(), 4);

    // The old file is untouched; a second migration to an existing path is refused.
    assert!(matches!(Store::open(&old, Mode::ReadOnly), Err(Error::UnsupportedVersion { .. })));
    let again = migrate_v1(&old, &new).unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file is left");

    // A version 2 store is not migrated.
    let current = dir.path().join("current.maph");
    Store::create(&current, Config::new(8)).unwrap();
    assert!(migrate_v1(&current, &dir.path().join("x.maph")).is_err());
}
