//! Arbitrary bytes as a store file: opening, reading, verifying and repairing
//! must give errors or repaired data, never a panic, a hang or a crash.
//!
//! Half the inputs are taken as the whole file; the other half get a valid
//! header for a small geometry chosen by the first bytes, so the fuzzer spends
//! its time inside the slots rather than on the header checksum.
#![no_main]

use std::io::Write;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use maph_core::{Config, Mode, SingleWriter, Store};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let path = dir.path().join("fuzz.maph");
    if mode & 1 == 0 {
        std::fs::write(&path, rest).unwrap();
    } else {
        // A real store of a small geometry, its slots overwritten by the input.
        let slots = 1 + u64::from(mode >> 4);
        let slot_size = if mode & 2 == 0 { 64 } else { 128 };
        Store::create(&path, Config::new(slots).slot_size(slot_size).max_probes(slots.min(4) as u32).hash_seed(1))
            .unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(maph_core::format::HEADER_SIZE as u64)).unwrap();
        let room = (slots * slot_size as u64) as usize;
        file.write_all(&rest[..rest.len().min(room)]).unwrap();
    }

    let Ok(store) = Store::open(&path, Mode::ReadOnly) else { return };
    // A slot left odd by the input stays odd: do not wait long for it.
    let store = store.with_read_patience(Duration::from_millis(1));
    for entry in store.iter().take(64) {
        if let Ok((key, value)) = entry {
            let _ = store.get(&key);
            let _ = store.contains(&value);
        }
    }
    let _ = store.verify();
    drop(store);

    let store = Store::open(&path, Mode::ReadWrite).unwrap().with_read_patience(Duration::from_millis(1));
    let Ok(writer) = SingleWriter::new(&store) else { return }; // another strategy's store
    let repaired = store.repair(&writer).expect("a store that opens can be repaired");
    let after = store.verify();
    assert!(after.is_clean(), "repair left {after:?} after {repaired:?}");
    assert_eq!(store.len(), after.live);
    let _ = store.set(&writer, b"after repair", b"works");
});
