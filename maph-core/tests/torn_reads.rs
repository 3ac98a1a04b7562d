//! The torn-read detector: one writer process rewrites values that embed their
//! own checksum, while two reader processes verify every read.

use std::path::Path;

use maph_core::{Config, Mode, SingleWriter, Store};
use maph_testkit::{child, spawn};

const TEST: &str = "readers_never_see_a_torn_value";
const KEYS: u64 = 64;
const READS_PER_READER: u64 = 600_000;

/// A value of varying length whose last 8 bytes checksum the key and the rest.
fn value_for(key: &[u8], seq: u64) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    let fill = (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8;
    v.extend(std::iter::repeat_n(fill, 8 + (seq % 300) as usize));
    let sum = xxhash_rust::xxh3::xxh3_64(&[key, &v].concat());
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

fn is_whole(key: &[u8], value: &[u8]) -> bool {
    value.len() >= 24 && {
        let (body, sum) = value.split_at(value.len() - 8);
        xxhash_rust::xxh3::xxh3_64(&[key, body].concat()).to_le_bytes() == sum
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("torn-{i}").into_bytes()
}

#[test]
fn readers_never_see_a_torn_value() {
    if let Some(ctx) = child(TEST) {
        let path = &ctx.args()[0];
        let stop = Path::new(path).with_extension("stop");
        match ctx.role() {
            "writer" => {
                let store = Store::open(path, Mode::ReadWrite).unwrap();
                let writer = SingleWriter::new(&store).unwrap();
                let mut seq = KEYS;
                ctx.report("ready", 1);
                // Rewrite until the parent says stop (a file appears): a condition,
                // checked every thousand writes.
                while seq % 1000 != 0 || !stop.exists() {
                    let k = key(seq % KEYS);
                    store.set(&writer, &k, &value_for(&k, seq)).unwrap();
                    seq += 1;
                }
                ctx.report("writes", seq - KEYS);
            }
            "reader" => {
                let store = Store::open(path, Mode::ReadOnly).unwrap();
                ctx.wait_for_start();
                let (mut torn, mut found) = (0u64, 0u64);
                let mut first_seq = vec![u64::MAX; KEYS as usize];
                let mut changed = 0u64;
                let mut value = Vec::new();
                for i in 0..READS_PER_READER {
                    let k = key(i % KEYS);
                    if store.get_into(&k, &mut value).unwrap() {
                        found += 1;
                        if !is_whole(&k, &value) {
                            torn += 1;
                            continue;
                        }
                        let seq = u64::from_le_bytes(value[..8].try_into().unwrap());
                        let first = &mut first_seq[(i % KEYS) as usize];
                        if *first == u64::MAX {
                            *first = seq;
                        } else if seq != *first {
                            changed += 1;
                        }
                    }
                }
                ctx.report("torn", torn);
                ctx.report("found", found);
                ctx.report("changed", changed);
            }
            other => panic!("unknown role {other}"),
        }
        ctx.exit();
    }

    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("torn.maph");
    Store::create(&path, Config::new(1024)).unwrap();
    {
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        let writer = SingleWriter::new(&store).unwrap();
        for i in 0..KEYS {
            store.set(&writer, &key(i), &value_for(&key(i), i)).unwrap();
        }
    }
    let arg = vec![path.display().to_string()];
    let mut writer = spawn(TEST, "writer", &arg);
    writer.start();
    writer.wait_for_report("ready");
    let mut readers: Vec<_> = (0..2).map(|_| spawn(TEST, "reader", &arg)).collect();
    maph_testkit::start_all(&mut readers);
    let readers: Vec<_> = readers.into_iter().map(|r| r.finish_ok()).collect();
    std::fs::write(path.with_extension("stop"), b"").unwrap();
    let writer = writer.finish_ok();

    let writes: u64 = writer.report("writes");
    let reads = 2 * READS_PER_READER;
    let torn: u64 = readers.iter().map(|r| r.report::<u64>("torn")).sum();
    let found: u64 = readers.iter().map(|r| r.report::<u64>("found")).sum();
    let changed: u64 = readers.iter().map(|r| r.report::<u64>("changed")).sum();
    println!("{reads} reads ({found} found, {changed} saw a newer value) against {writes} writes: {torn} torn");
    assert_eq!(torn, 0);
    assert_eq!(found, reads, "every key always exists");
    assert!(changed > 0, "the readers must actually have raced the writer");
}
