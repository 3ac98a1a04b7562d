//! Damage a store the way real machines do (flipped bytes, truncation, headers
//! swapped between files): opening, reading and repairing give clear errors or
//! repaired data, never a panic, a hang or SIGBUS.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use maph_core::format::HEADER_SIZE;
use maph_core::{Config, Error, Mode, SingleWriter, Store};
use maph_testkit::{check_value, self_checking_value};

const SLOTS: u64 = 96;
const SLOT_SIZE: u32 = 128;

fn key(i: u64) -> Vec<u8> {
    format!("corrupt-{i}").into_bytes()
}

fn populated(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let path = dir.join(name);
    Store::create(&path, Config::new(SLOTS).slot_size(SLOT_SIZE).hash_seed(seed)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    for i in 0..40 {
        store.set(&writer, &key(i), &self_checking_value(&key(i), i)).unwrap();
    }
    path
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Everything a reader and then a repairing writer may do with a damaged file.
/// Returns whether the file opened at all.
fn exercise(path: &Path) -> bool {
    let store = match Store::open(path, Mode::ReadOnly) {
        Ok(store) => store.with_read_patience(Duration::from_millis(2)),
        Err(e) => {
            // Refused at open: the message must name the file and the problem.
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()) || matches!(e, Error::Io { .. }), "{text}");
            return false;
        }
    };
    for i in 0..40 {
        match store.get(&key(i)) {
            // A value read back is whole or (a flipped value byte) detectably wrong:
            // it is never another key's value.
            Ok(Some(v)) => assert!(check_value(&key(i), &v).is_none_or(|seq| seq == i)),
            Ok(None) | Err(Error::Corrupt { .. } | Error::SlotBusy { .. }) => {}
            Err(e) => panic!("unexpected read error: {e}"),
        }
    }
    for entry in store.iter() {
        assert!(matches!(entry, Ok(_) | Err(Error::Corrupt { .. } | Error::SlotBusy { .. })));
    }
    let _ = store.verify();
    drop(store);

    let store = Store::open(path, Mode::ReadWrite).unwrap().with_read_patience(Duration::from_millis(2));
    let writer = SingleWriter::new(&store).expect("a damaged store can still be written");
    let repaired = store.repair(&writer).expect("a damaged store can still be repaired");
    let after = store.verify();
    assert!(after.is_clean(), "repair left {after:?} (repaired {repaired:?})");
    for entry in store.iter() {
        let (k, v) = entry.unwrap();
        let i: u64 = std::str::from_utf8(&k[8..]).ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        // What survives repair is whole: its checksum and its key agree.
        assert_eq!(check_value(&k, &v), Some(i), "a repaired store returned a damaged value");
    }
    store.set(&writer, b"still", b"writable").unwrap();
    true
}

#[test]
fn random_byte_flips_are_refused_or_repaired() {
    let dir = maph_testkit::temp_dir();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (mut refused, mut opened) = (0, 0);
    for round in 0..300 {
        let path = populated(dir.path(), &format!("flip-{round}.maph"), 3);
        let len = std::fs::metadata(&path).unwrap().len();
        let mut file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        for _ in 0..1 + rng.next() % 8 {
            // Aim at the header a quarter of the time, at the slots otherwise.
            let at = if rng.next() % 4 == 0 { rng.next() % 128 } else { rng.next() % len };
            let mut byte = [0u8];
            use std::io::Read;
            file.seek(SeekFrom::Start(at)).unwrap();
            file.read_exact(&mut byte).unwrap();
            byte[0] ^= 1 << (rng.next() % 8);
            file.seek(SeekFrom::Start(at)).unwrap();
            file.write_all(&byte).unwrap();
        }
        drop(file);
        if exercise(&path) {
            opened += 1
        } else {
            refused += 1
        }
        std::fs::remove_file(&path).unwrap();
    }
    println!("300 damaged files: {refused} refused at open, {opened} opened, read and repaired");
    assert!(refused > 0 && opened > 0, "both outcomes must have been exercised");
}

#[test]
fn truncation_at_random_offsets_is_refused_at_open() {
    let dir = maph_testkit::temp_dir();
    let mut rng = Rng(0xfeed_face_cafe_beef);
    let path = populated(dir.path(), "cut.maph", 5);
    let full = std::fs::read(&path).unwrap();
    for _ in 0..100 {
        let cut = rng.next() % full.len() as u64;
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        match Store::open(&path, Mode::ReadOnly) {
            Err(Error::NotAStore { .. }) => assert!(cut < HEADER_SIZE as u64),
            Err(Error::Corrupt { detail, .. }) => assert!(detail.contains("truncated"), "{detail}"),
            other => panic!("a file cut to {cut} bytes opened: {other:?}"),
        }
    }
}

#[test]
fn headers_swapped_between_stores() {
    let dir = maph_testkit::temp_dir();
    // Same geometry, different seed: the header is valid but routes keys elsewhere.
    let a = populated(dir.path(), "a.maph", 11);
    let b = populated(dir.path(), "b.maph", 12);
    let header_a = std::fs::read(&a).unwrap()[..HEADER_SIZE].to_vec();
    let mut file = OpenOptions::new().write(true).open(&b).unwrap();
    file.write_all(&header_a).unwrap();
    drop(file);
    let store = Store::open(&b, Mode::ReadOnly).unwrap();
    let report = store.verify();
    assert!(!report.misplaced.is_empty(), "keys routed by another seed are reported: {report:?}");
    drop(store);
    assert!(exercise(&b));

    // Another geometry: the header and the length disagree.
    let c = dir.path().join("c.maph");
    Store::create(&c, Config::new(SLOTS * 2).slot_size(SLOT_SIZE)).unwrap();
    let mut file = OpenOptions::new().write(true).open(&c).unwrap();
    file.write_all(&header_a).unwrap();
    drop(file);
    assert!(matches!(Store::open(&c, Mode::ReadOnly), Err(Error::Corrupt { .. })));
}

#[test]
fn a_file_truncated_while_mapped_is_detected_before_it_is_read() {
    let dir = maph_testkit::temp_dir();
    let path = populated(dir.path(), "shrunk.maph", 9);
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    store.check_file_length().unwrap();
    // Another program truncates the file behind maph's back.
    OpenOptions::new().write(true).open(&path).unwrap().set_len(HEADER_SIZE as u64 + 10 * SLOT_SIZE as u64).unwrap();
    let err = store.check_file_length().unwrap_err();
    assert!(err.to_string().contains("changed length while mapped"), "{err}");
    // verify and repair check first and do not touch the lost pages.
    let report = store.verify();
    assert!(report.length_changed.is_some() && !report.is_clean());
    assert!(matches!(SingleWriter::new(&store), Err(Error::Corrupt { .. })));
    // Reopening refuses the file as it now is.
    assert!(matches!(store.reopen(), Err(Error::Corrupt { .. })));
}
