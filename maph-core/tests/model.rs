//! Property test: the store behaves like a `HashMap` over random operation
//! sequences, including deletes, batches and reopening the file.

use std::collections::HashMap;

use maph_core::{Config, Error, Mode, SingleWriter, Store};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Set(u8, Vec<u8>),
    Remove(u8),
    /// Several operations in one `store.write`.
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    /// Increment-style update of a key.
    Append(u8, u8),
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    // Varied lengths, including ones that are not multiples of 8.
    format!("key-{k}-{}", "x".repeat(k as usize % 13)).into_bytes()
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        4 => (0u8..48, value.clone()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => (0u8..48).prop_map(Op::Remove),
        1 => prop::collection::vec((0u8..48, prop::option::of(value)), 1..6).prop_map(Op::Batch),
        1 => (0u8..48, any::<u8>()).prop_map(|(k, b)| Op::Append(k, b)),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_a_hashmap(ops in prop::collection::vec(op(), 1..120)) {
        let dir = maph_testkit::temp_dir();
        let path = dir.path().join("model.maph");
        // 64 slots for up to 48 keys with a window of 6: full windows happen,
        // and a full window must change nothing.
        Store::create(&path, Config::new(64).slot_size(128).max_probes(6)).unwrap();
        let mut store = Store::open(&path, Mode::ReadWrite).unwrap();
        let mut writer = SingleWriter::new(&store).unwrap();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();

        for op in ops {
            let mut next = model.clone();
            let result = match &op {
                Op::Set(k, v) => {
                    next.insert(key(*k), v.clone());
                    store.set(&writer, &key(*k), v)
                }
                Op::Remove(k) => {
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
                Op::Append(k, b) => {
                    let mut v = next.get(&key(*k)).cloned().unwrap_or_default();
                    v.push(*b);
                    next.insert(key(*k), v);
                    store.update(&writer, &key(*k), |old| {
                        let mut v = old.map(<[u8]>::to_vec).unwrap_or_default();
                        v.push(*b);
                        Some(v)
                    })
                }
                Op::Reopen => {
                    drop(writer);
                    store = Store::open(&path, Mode::ReadWrite).unwrap();
                    writer = SingleWriter::new(&store).unwrap();
                    prop_assert!(writer.repair_report().is_clean());
                    Ok(())
                }
            };
            match result {
                Ok(()) => model = next,
                // A full window (or an oversized append) must leave the store as it was.
                Err(Error::TableFull { .. } | Error::ValueTooLarge { .. }) => {}
                Err(e) => return Err(TestCaseError::fail(format!("{op:?} failed: {e}"))),
            }

            prop_assert_eq!(store.len(), model.len() as u64);
            for k in 0..48u8 {
                prop_assert_eq!(store.get(&key(k)).unwrap(), model.get(&key(k)).cloned(), "key {} after {:?}", k, op);
            }
        }
        let mut listed: Vec<_> = store.iter().map(Result::unwrap).collect();
        listed.sort();
        let mut expected: Vec<_> = model.into_iter().collect();
        expected.sort();
        prop_assert_eq!(listed, expected);
        prop_assert!(store.verify().is_clean());
    }
}
