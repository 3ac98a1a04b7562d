use maph_core::*;
use std::time::Instant;
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.maph");
    Store::create(&path, Config::new(1 << 20)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let w = SingleWriter::new(&store).unwrap();
    let keys: Vec<Vec<u8>> = (0..100_000).map(|i| format!("key:{i}").into_bytes()).collect();
    for k in &keys {
        store.set(&w, k, b"warm-value-0123456789").unwrap();
    }
    for round in 0..3 {
        let t = Instant::now();
        for k in &keys {
            store.set(&w, k, b"some-value-0123456789").unwrap();
        }
        let set = t.elapsed() / keys.len() as u32;
        let t = Instant::now();
        let mut v = Vec::new();
        for k in &keys {
            store.get_into(k, &mut v).unwrap();
        }
        let get = t.elapsed() / keys.len() as u32;
        let t = Instant::now();
        for chunk in keys.chunks(100) {
            store
                .write(&w, |tx| {
                    for k in chunk {
                        tx.set(k, b"batch-value")?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        let batch = t.elapsed() / (keys.len() / 100) as u32;
        println!("round {round}: set {set:?}  get {get:?}  batch100 {batch:?}");
    }
}
