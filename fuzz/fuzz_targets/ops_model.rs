//! Arbitrary operation sequences, checked against a `HashMap` model: the store
//! must hold exactly what the model holds after every operation.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use maph_core::{Config, Error, Mode, SingleWriter, Store};

#[derive(Arbitrary, Debug)]
enum Op {
    Set { key: u8, value: Vec<u8> },
    Remove { key: u8 },
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Update { key: u8, byte: u8 },
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    format!("k{k}{}", "-".repeat(usize::from(k % 9))).into_bytes()
}

fuzz_target!(|ops: Vec<Op>| {
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let path = dir.path().join("model.maph");
    Store::create(&path, Config::new(32).slot_size(64).max_probes(5).hash_seed(7)).unwrap();
    let mut store = Store::open(&path, Mode::ReadWrite).unwrap();
    let mut writer = SingleWriter::new(&store).unwrap();
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();

    for op in ops.into_iter().take(200) {
        let mut next = model.clone();
        let result = match &op {
            Op::Set { key: k, value } => {
                next.insert(key(*k), value.clone());
                store.set(&writer, &key(*k), value)
            }
            Op::Remove { key: k } => {
                next.remove(&key(*k));
                store.remove(&writer, &key(*k))
            }
            Op::Batch(items) => {
                for (k, v) in items {
                    match v {
                        Some(v) => next.insert(key(*k), v.clone()),
                        None => next.remove(&key(*k)),
                    };
                }
                store.write(&writer, |tx| {
                    for (k, v) in items {
                        match v {
                            Some(v) => tx.set(&key(*k), v)?,
                            None => tx.remove(&key(*k))?,
                        }
                    }
                    Ok(())
                })
            }
            Op::Update { key: k, byte } => {
                let mut v = next.get(&key(*k)).cloned().unwrap_or_default();
                v.push(*byte);
                next.insert(key(*k), v);
                store.update(&writer, &key(*k), |old| {
                    let mut v = old.map(<[u8]>::to_vec).unwrap_or_default();
                    v.push(*byte);
                    Some(v)
                })
            }
            Op::Reopen => {
                drop(writer);
                store = Store::open(&path, Mode::ReadWrite).unwrap();
                writer = SingleWriter::new(&store).unwrap();
                assert!(writer.repair_report().is_clean());
                Ok(())
            }
        };
        match result {
            Ok(()) => model = next,
            // These must leave the store exactly as it was: checked below.
            Err(Error::TableFull { .. } | Error::ValueTooLarge { .. } | Error::KeyTooLarge { .. }) => {}
            Err(e) => panic!("{op:?} failed: {e}"),
        }
        assert_eq!(store.len(), model.len() as u64);
        for k in 0..=u8::MAX {
            assert_eq!(store.get(&key(k)).unwrap(), model.get(&key(k)).cloned(), "key {k} after {op:?}");
        }
    }
    assert!(store.verify().is_clean());
});
