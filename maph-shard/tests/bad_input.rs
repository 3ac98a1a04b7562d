//! Bad input: every broken manifest or shard file is refused with an error that
//! names the file, and nothing is written.

use std::fs;
use std::path::{Path, PathBuf};

use maph_core::{Config, Error as CoreError, Mode, Store};
use maph_shard::{shard_path, Error, ShardConfig, ShardedStore, MANIFEST_FILE};

/// A 4-shard store in a fresh directory.
fn store() -> (tempfile::TempDir, PathBuf) {
    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    ShardedStore::create(&dir, &ShardConfig::new(4, 64)).unwrap();
    (tmp, dir)
}

/// Every file in `dir` with its bytes, to show that a refused operation wrote nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).map(|p| (p.clone(), fs::read(&p).unwrap())).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Opens `dir` read-write, expecting an error whose message names `file`.
fn open_fails_naming(dir: &Path, file: &Path) -> Error {
    let before = snapshot(dir);
    let err = ShardedStore::open(dir, Mode::ReadWrite).expect_err("open must fail");
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()), "the error names {}: {message}", file.display());
    assert_eq!(snapshot(dir), before, "a failed open wrote nothing");
    err
}

/// Rewrites the manifest with `edit` applied to its fields and a correct
/// checksum, as documented: xxh3-64 (seed 0) of every byte before the checksum line.
fn rewrite_manifest(dir: &Path, edit: impl Fn(&str) -> String) {
    let path = dir.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let body_end = text.find("checksum = ").unwrap();
    let body = edit(&text[..body_end]);
    let sum = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
    fs::write(&path, format!("{body}checksum = {sum:#018x}\n")).unwrap();
}

#[test]
fn a_rewritten_manifest_with_a_correct_checksum_still_opens() {
    // The helper below the other tests rely on produces a valid manifest.
    let (_tmp, dir) = store();
    rewrite_manifest(&dir, |body| body.to_string());
    ShardedStore::open(&dir, Mode::ReadOnly).unwrap();
}

#[test]
fn zero_shards_is_refused_at_create_with_nothing_written() {
    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    let err = ShardedStore::create(&dir, &ShardConfig::new(0, 64)).unwrap_err();
    assert!(matches!(err, Error::ZeroShards { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    assert!(!dir.exists(), "nothing was created");
}

#[test]
fn invalid_slot_configuration_is_refused_at_create_with_nothing_written() {
    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    for config in [
        ShardConfig::new(2, 64).slot_size(100),
        ShardConfig::new(2, 0),
        ShardConfig::new(2, 8).max_probes(9),
        ShardConfig::new(maph_shard::MAX_SHARDS + 1, 64),
    ] {
        let err = ShardedStore::create(&dir, &config).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{config:?}: {err:?}");
        assert!(!dir.exists(), "nothing was created for {config:?}");
    }
}

#[test]
fn create_over_an_existing_store_is_refused_and_changes_nothing() {
    let (_tmp, dir) = store();
    let before = snapshot(&dir);
    let err = ShardedStore::create(&dir, &ShardConfig::new(4, 64)).unwrap_err();
    assert!(matches!(&err, Error::AlreadyExists { path } if path.ends_with(MANIFEST_FILE)), "{err:?}");
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn create_beside_a_stray_shard_file_is_refused_and_removes_what_it_made() {
    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    fs::create_dir(&dir).unwrap();
    let stray = shard_path(&dir, 2);
    fs::write(&stray, b"someone else's file").unwrap();
    let err = ShardedStore::create(&dir, &ShardConfig::new(4, 64)).unwrap_err();
    assert!(matches!(&err, Error::AlreadyExists { path } if *path == stray), "{err:?}");
    assert_eq!(snapshot(&dir), vec![(stray, b"someone else's file".to_vec())], "shards 0 and 1 were removed again");
}

#[test]
fn missing_manifest() {
    let tmp = maph_testkit::temp_dir();
    let manifest = tmp.path().join(MANIFEST_FILE);
    let err = open_fails_naming(tmp.path(), &manifest);
    assert!(matches!(err, Error::ManifestMissing { .. }), "{err:?}");
    // A directory that does not exist at all: the same error, and it is not created.
    let absent = tmp.path().join("absent");
    assert!(matches!(ShardedStore::open(&absent, Mode::ReadOnly), Err(Error::ManifestMissing { .. })));
    assert!(!absent.exists());
}

#[test]
fn corrupt_manifests() {
    let (_tmp, dir) = store();
    let path = dir.join(MANIFEST_FILE);
    let good = fs::read(&path).unwrap();
    let flipped = {
        let mut b = good.clone();
        let at = String::from_utf8_lossy(&good).find("slot_size = ").unwrap() + "slot_size = ".len();
        b[at] = b'9'; // 512 -> 912: a plausible edit the checksum must catch
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("one byte changed", flipped),
        ("binary garbage", vec![0xff, 0x00, 0x13, 0x37, b'\n']),
        ("another file's text", b"[workspace]\nmembers = []\n".to_vec()),
        ("huge", vec![b'x'; 1 << 20]),
    ];
    for (what, bytes) in cases {
        fs::write(&path, &bytes).unwrap();
        let err = open_fails_naming(&dir, &path);
        assert!(matches!(err, Error::ManifestCorrupt { .. }), "{what}: {err:?}");
    }
}

#[test]
fn manifest_fields_that_checksum_but_make_no_sense() {
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: Vec<(&str, Edit)> = vec![
        ("unknown field", Box::new(|b| format!("{b}colour = blue\n"))),
        ("duplicate field", Box::new(|b| format!("{b}slot_size = 512\n"))),
        (
            "missing field",
            Box::new(|b| b.lines().filter(|l| !l.starts_with("max_probes = ")).map(|l| format!("{l}\n")).collect()),
        ),
        ("unknown routing", Box::new(|b| b.replace("routing = xxh3-64+jump", "routing = modulo"))),
        ("bad number", Box::new(|b| b.replace("slot_size = 512", "slot_size = five hundred"))),
        ("bad slot size", Box::new(|b| b.replace("slot_size = 512", "slot_size = 100"))),
        ("bad strategy", Box::new(|b| b.replace("strategy = single-writer", "strategy = has space"))),
        ("too many shards", Box::new(|b| b.replace("shard_count = 4", "shard_count = 99999"))),
    ];
    for (what, edit) in cases {
        let (_tmp, dir) = store();
        rewrite_manifest(&dir, edit);
        let err = open_fails_naming(&dir, &dir.join(MANIFEST_FILE));
        assert!(matches!(err, Error::ManifestCorrupt { .. }), "{what}: {err:?}");
    }
}

#[test]
fn manifest_of_another_version() {
    let (_tmp, dir) = store();
    // A later format might checksum differently: the version is judged first.
    let path = dir.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).unwrap().replace("format_version = 1", "format_version = 2");
    fs::write(&path, text).unwrap();
    let err = open_fails_naming(&dir, &path);
    assert!(matches!(err, Error::ManifestVersion { found: 2, supported: 1, .. }), "{err:?}");
}

#[test]
fn manifest_with_zero_shards() {
    let (_tmp, dir) = store();
    rewrite_manifest(&dir, |b| b.replace("shard_count = 4", "shard_count = 0"));
    let err = open_fails_naming(&dir, &dir.join(MANIFEST_FILE));
    assert!(matches!(err, Error::ZeroShards { .. }), "{err:?}");
}

#[test]
fn opening_with_another_shard_count_seed_or_slot_configuration_is_refused() {
    let tmp = maph_testkit::temp_dir();
    let dir = tmp.path().join("store");
    let config = ShardConfig::new(4, 64).routing_seed(7);
    ShardedStore::create(&dir, &config).unwrap();
    ShardedStore::open_expecting(&dir, Mode::ReadWrite, &config).expect("the same configuration opens");
    let unseeded = ShardConfig { routing_seed: None, ..config };
    ShardedStore::open_expecting(&dir, Mode::ReadWrite, &unseeded).expect("no seed expected: any seed is accepted");

    let cases = [
        (ShardConfig { shard_count: 5, ..config }, "shard_count"),
        (config.routing_seed(8), "routing_seed"),
        (ShardConfig { slots_per_shard: 128, ..config }, "slots_per_shard"),
        (config.slot_size(256), "slot_size"),
        (config.max_probes(4), "max_probes"),
        (config.strategy(maph_core::Strategy::new("flock")), "strategy"),
    ];
    for (expected, field_name) in cases {
        let before = snapshot(&dir);
        let err = ShardedStore::open_expecting(&dir, Mode::ReadWrite, &expected).unwrap_err();
        assert!(matches!(&err, Error::ManifestMismatch { field, .. } if *field == field_name), "{err:?}");
        assert!(err.to_string().contains(&dir.join(MANIFEST_FILE).display().to_string()), "{err}");
        assert_eq!(snapshot(&dir), before);
    }
}

#[test]
fn missing_shard_file() {
    let (_tmp, dir) = store();
    let path = shard_path(&dir, 2);
    fs::remove_file(&path).unwrap();
    let err = open_fails_naming(&dir, &path);
    assert!(matches!(err, Error::ShardMissing { shard: 2, .. }), "{err:?}");
}

#[test]
fn shard_file_of_another_store() {
    let (_tmp, dir) = store();
    let (_tmp2, other) = store(); // same configuration, other seeds
    let path = shard_path(&dir, 1);
    fs::copy(shard_path(&other, 1), &path).unwrap();
    let err = open_fails_naming(&dir, &path);
    assert!(matches!(&err, Error::ForeignShard { shard: 1, detail, .. } if detail.contains("another")), "{err:?}");
}

#[test]
fn shard_files_swapped() {
    let (_tmp, dir) = store();
    let (a, b, t) = (shard_path(&dir, 0), shard_path(&dir, 1), dir.join("swap"));
    fs::rename(&a, &t).unwrap();
    fs::rename(&b, &a).unwrap();
    fs::rename(&t, &b).unwrap();
    let err = open_fails_naming(&dir, &a);
    assert!(matches!(&err, Error::ForeignShard { shard: 0, detail, .. } if detail.contains("shard 1")), "{err:?}");
}

#[test]
fn shard_file_with_another_geometry_or_strategy() {
    let (_tmp, dir) = store();
    let manifest = ShardedStore::open(&dir, Mode::ReadOnly).unwrap().manifest().to_owned();
    let path = shard_path(&dir, 3);
    for config in [
        Config::new(128).hash_seed(manifest.shard_seed(3)),
        Config::new(64).hash_seed(manifest.shard_seed(3)).strategy(maph_core::Strategy::UNCOORDINATED),
    ] {
        fs::remove_file(&path).unwrap();
        Store::create(&path, config).unwrap();
        let err = open_fails_naming(&dir, &path);
        assert!(matches!(err, Error::ForeignShard { shard: 3, .. }), "{err:?}");
    }
}

#[test]
fn shard_file_that_is_not_a_store() {
    let (_tmp, dir) = store();
    let path = shard_path(&dir, 0);
    let good = fs::read(&path).unwrap();
    for (what, bytes) in [("garbage", b"not a store".to_vec()), ("truncated", good[..good.len() - 1].to_vec())] {
        fs::write(&path, bytes).unwrap();
        let err = open_fails_naming(&dir, &path);
        assert!(
            matches!(err, Error::Store(CoreError::NotAStore { .. } | CoreError::Corrupt { .. })),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn misuse_is_refused_with_nothing_written() {
    let (_tmp, dir) = store();
    let mut reader = ShardedStore::open(&dir, Mode::ReadOnly).unwrap();
    assert!(matches!(reader.claim(0), Err(Error::Store(CoreError::ReadOnly))));
    assert!(matches!(reader.set(b"k", b"v"), Err(Error::Store(CoreError::ReadOnly))));
    let mut store = ShardedStore::open(&dir, Mode::ReadWrite).unwrap();
    assert!(matches!(store.claim(4), Err(Error::NoSuchShard { shard: 4, count: 4 })));
    assert!(matches!(store.write(9, |_| Ok(())), Err(Error::NoSuchShard { shard: 9, count: 4 })));
    assert!(matches!(store.shard(4), Err(Error::NoSuchShard { .. })));

    // A multi-key write holding shard 0 refuses a key of shard 1, and writes none of its keys.
    store.claim(0).unwrap();
    store.claim(1).unwrap();
    let router = store.router();
    let mine = (0..).map(|i| format!("a{i}")).find(|k| router.route(k.as_bytes()) == 0).unwrap();
    let theirs = (0..).map(|i| format!("b{i}")).find(|k| router.route(k.as_bytes()) == 1).unwrap();
    let err = store
        .write(0, |tx| {
            tx.set(mine.as_bytes(), b"1")?;
            tx.set(theirs.as_bytes(), b"2")
        })
        .unwrap_err();
    assert!(matches!(err, Error::WrongShard { key_shard: 1, write_shard: 0 }), "{err:?}");
    assert_eq!(store.len(), 0, "nothing of the refused write landed");

    // Errors of the store inside a write come back as they are.
    let err = store.write(0, |tx| tx.set(mine.as_bytes(), &vec![0u8; 10_000])).unwrap_err();
    assert!(matches!(err, Error::Store(CoreError::ValueTooLarge { .. })), "{err:?}");
    assert_eq!(store.len(), 0);
}
