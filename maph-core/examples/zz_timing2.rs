use maph_core::*;
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.maph");
    Store::create(&path, Config::new(1 << 16)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let w = SingleWriter::new(&store).unwrap();
    let keys: Vec<Vec<u8>> = (0..10_000).map(|i| format!("key:{i}").into_bytes()).collect();
    let mode = std::env::args().nth(1).unwrap();
    let n = if mode == "set" { 2 } else { 1 };
    for _ in 0..n {
        for k in &keys {
            store.set(&w, k, b"warm-value-0123456789").unwrap();
        }
    }
    if mode == "get" {
        let mut v = Vec::new();
        for _ in 0..10 {
            for k in &keys {
                store.get_into(k, &mut v).unwrap();
            }
        }
    }
}
