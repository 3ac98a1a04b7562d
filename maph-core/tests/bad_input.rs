//! Every kind of bad input gets a clear error and changes nothing.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use maph_core::format::HEADER_SIZE;
use maph_core::{Config, Error, LockScope, Mode, SingleWriter, Store, Strategy, Uncoordinated, WriteCoordinator};

fn fresh(dir: &Path, name: &str, config: Config) -> std::path::PathBuf {
    let path = dir.join(name);
    Store::create(&path, config).unwrap();
    path
}

fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn empty_file_is_not_a_store() {
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("empty.maph");
    std::fs::write(&path, b"").unwrap();
    let err = Store::open(&path, Mode::ReadOnly).unwrap_err();
    assert!(matches!(&err, Error::NotAStore { reason, .. } if reason.contains("empty")), "{err}");
}

#[test]
fn short_and_foreign_files_are_not_stores() {
    let dir = maph_testkit::temp_dir();
    let short = dir.path().join("short.maph");
    std::fs::write(&short, b"MAPH").unwrap();
    assert!(matches!(Store::open(&short, Mode::ReadOnly), Err(Error::NotAStore { .. })));

    let foreign = dir.path().join("foreign.maph");
    std::fs::write(&foreign, vec![0x7fu8; 8192]).unwrap();
    let err = Store::open(&foreign, Mode::ReadOnly).unwrap_err();
    assert!(matches!(&err, Error::NotAStore { reason, .. } if reason.contains("magic")), "{err}");

    assert!(matches!(Store::open(dir.path(), Mode::ReadOnly), Err(Error::NotAStore { .. } | Error::Io { .. })));
    let missing = Store::open(dir.path().join("nope.maph"), Mode::ReadOnly).unwrap_err();
    assert!(missing.to_string().contains("create it first"), "{missing}");
}

#[test]
fn another_format_version_is_refused_by_name() {
    let dir = maph_testkit::temp_dir();
    let path = fresh(dir.path(), "v1.maph", Config::new(16));
    overwrite(&path, 4, &1u32.to_le_bytes());
    match Store::open(&path, Mode::ReadOnly) {
        Err(e @ Error::UnsupportedVersion { found: 1, supported: 2, .. }) => {
            let text = e.to_string();
            assert!(text.contains("maph migrate") && text.contains("v1.maph"), "says what to do: {text}");
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    overwrite(&path, 4, &3u32.to_le_bytes());
    match Store::open(&path, Mode::ReadOnly) {
        Err(e @ Error::UnsupportedVersion { found: 3, supported: 2, .. }) => {
            assert!(e.to_string().contains("newer maph"), "{e}");
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn damaged_header_is_corrupt() {
    let dir = maph_testkit::temp_dir();
    let path = fresh(dir.path(), "bad.maph", Config::new(16));
    overwrite(&path, 16, &17u64.to_le_bytes()); // slot count, without fixing the checksum
    let err = Store::open(&path, Mode::ReadOnly).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("checksum")), "{err}");
}

#[test]
fn truncated_or_extended_file_is_corrupt_and_never_mapped() {
    let dir = maph_testkit::temp_dir();
    let path = fresh(dir.path(), "cut.maph", Config::new(16));
    let full = std::fs::metadata(&path).unwrap().len();
    for len in [HEADER_SIZE as u64, full - 1, full + 512] {
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len).unwrap();
        let err = Store::open(&path, Mode::ReadOnly).unwrap_err();
        assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("truncated")), "len {len}: {err}");
    }
}

#[test]
fn invalid_configs_are_refused_before_any_file_exists() {
    let dir = maph_testkit::temp_dir();
    for config in [
        Config::new(0),
        Config::new(16).slot_size(100),
        Config::new(16).slot_size(32),
        Config::new(16).max_probes(0),
        Config::new(4).max_probes(5),
        Config::new(u64::MAX / 2),
    ] {
        let path = dir.path().join("never.maph");
        assert!(matches!(Store::create(&path, config), Err(Error::InvalidConfig(_))), "{config:?}");
        assert!(!path.exists());
    }
}

#[test]
fn create_never_clobbers_an_existing_file() {
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("precious.maph");
    std::fs::write(&path, b"not yours").unwrap();
    let err = Store::create(&path, Config::new(16)).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not yours");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
}

#[test]
fn oversized_keys_and_values_write_nothing() {
    let dir = maph_testkit::temp_dir();
    let path = fresh(dir.path(), "sizes.maph", Config::new(16).slot_size(64));
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    assert_eq!(store.max_key_len(), 32);

    let long_key = vec![b'k'; 33];
    assert!(matches!(store.set(&writer, &long_key, b""), Err(Error::KeyTooLarge { len: 33, max: 32 })));
    assert!(matches!(store.set(&writer, b"key", &[0; 30]), Err(Error::ValueTooLarge { len: 30, max: 29 })));
    // A batch with one bad operation writes none of its operations.
    let err = store.write(&writer, |tx| {
        tx.set(b"fine", b"ok")?;
        tx.set(b"key", &[0; 30])
    });
    assert!(matches!(err, Err(Error::ValueTooLarge { .. })));
    assert_eq!((store.len(), store.generation()), (0, 0));
    assert_eq!(store.get(b"fine").unwrap(), None);
    // The largest value that fits does fit.
    store.set(&writer, b"key", &[7; 29]).unwrap();
    assert_eq!(store.get(b"key").unwrap().unwrap(), vec![7; 29]);
    assert_eq!(store.get(&long_key).unwrap(), None, "a too-long key is simply absent");
}

#[test]
fn a_full_window_fails_the_whole_commit() {
    let dir = maph_testkit::temp_dir();
    let path = fresh(dir.path(), "full.maph", Config::new(4).max_probes(4).slot_size(64));
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    let err = store.write(&writer, |tx| {
        for i in 0..5u8 {
            tx.set(&[i], b"v")?;
        }
        Ok(())
    });
    assert!(matches!(err, Err(Error::TableFull { probes: 4 })), "{err:?}");
    assert_eq!(store.len(), 0, "nothing of the failed commit was written");
    for i in 0..4u8 {
        store.set(&writer, &[i], b"v").unwrap();
    }
    assert!(matches!(store.set(&writer, &[9], b"v"), Err(Error::TableFull { .. })));
    // Replacing an existing key still works in a full table, and so does a delete + insert.
    store.set(&writer, &[0], b"w").unwrap();
    store
        .write(&writer, |tx| {
            tx.remove(&[1])?;
            tx.set(&[9], b"v")
        })
        .unwrap();
    assert_eq!(store.get(&[9]).unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(store.len(), 4);
}

#[test]
fn read_only_handles_and_wrong_strategies_are_refused() {
    let dir = maph_testkit::temp_dir();
    let path = fresh(dir.path(), "modes.maph", Config::new(16));
    let reader = Store::open(&path, Mode::ReadOnly).unwrap();
    assert!(matches!(SingleWriter::new(&reader), Err(Error::ReadOnly)));
    assert!(matches!(reader.coordinator_word(0), Err(Error::ReadOnly)));
    assert!(matches!(reader.coordinator_word64(0), Err(Error::ReadOnly)));

    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    // The reference design's pitfall 3: a writer that does not lock is refused.
    match store.set(&Uncoordinated::new(), b"k", b"v") {
        Err(Error::StrategyMismatch { store, coordinator }) => {
            assert_eq!((store, coordinator), (Strategy::SINGLE_WRITER, Strategy::UNCOORDINATED));
        }
        other => panic!("expected StrategyMismatch, got {other:?}"),
    }
    assert_eq!(store.len(), 0);
}

#[test]
fn a_coordinator_cannot_write_another_store() {
    let dir = maph_testkit::temp_dir();
    let a = Store::open(fresh(dir.path(), "a.maph", Config::new(16)), Mode::ReadWrite).unwrap();
    let b = Store::open(fresh(dir.path(), "b.maph", Config::new(16)), Mode::ReadWrite).unwrap();
    let writer_a = SingleWriter::new(&a).unwrap();
    assert!(matches!(b.set(&writer_a, b"k", b"v"), Err(Error::WrongStore)));
}

#[test]
fn keys_outside_the_guard_scope_are_refused() {
    let dir = maph_testkit::temp_dir();
    let store = Store::open(fresh(dir.path(), "scope.maph", Config::new(1024)), Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    let guard = writer.lock_exclusive(store.scope_of(b"mine")).unwrap();
    store.write_with(&guard, |tx| tx.set(b"mine", b"1")).unwrap();
    // Find a key whose window does not overlap "mine"'s.
    let other = (0..).map(|i| format!("other-{i}")).find(|k| !guard.scope().covers(&store.scope_of(k.as_bytes())));
    let err = store.write_with(&guard, |tx| tx.set(other.unwrap().as_bytes(), b"2")).unwrap_err();
    assert!(matches!(err, Error::OutOfScope { .. }), "{err}");
    drop(guard);
    let whole = writer.lock_exclusive(LockScope::Whole).unwrap();
    store.write_with(&whole, |tx| tx.set(b"anything", b"3")).unwrap();
}

#[test]
fn damaged_slot_contents_are_errors_not_panics() {
    let dir = maph_testkit::temp_dir();
    let path = fresh(dir.path(), "slots.maph", Config::new(8).max_probes(8).slot_size(64));
    {
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        let writer = SingleWriter::new(&store).unwrap();
        for i in 0..8u8 {
            store.set(&writer, &[i], b"value").unwrap();
        }
    }
    // Give every slot an impossible meta word (lengths far beyond the slot).
    for i in 0..8u64 {
        overwrite(&path, HEADER_SIZE as u64 + i * 64 + 8, &u64::MAX.to_le_bytes());
    }
    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert!(matches!(store.get(&[3]), Err(Error::Corrupt { .. })));
    assert!(store.iter().all(|e| e.is_err()));
    let report = store.verify();
    assert_eq!(report.corrupt.len(), 8);
    // Repair clears them; nothing panics and the store is usable again.
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    assert!(writer.repair_report().is_clean(), "damage no writer left is not looked for at start");
    assert_eq!(store.repair(&writer).unwrap().damaged.len(), 8);
    assert!(store.verify().is_clean());
    store.set(&writer, b"again", b"ok").unwrap();
    assert_eq!(store.len(), 1);
}
