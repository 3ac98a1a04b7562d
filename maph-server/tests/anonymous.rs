//! Anonymous requests change nothing: reads never serve (lease, repair) a
//! store, answers never show where the server keeps its files, the Bearer
//! scheme is matched as RFC 7235 says, and a read that waits for a slot
//! mid-write never holds an async worker. Over real HTTP.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Api;
use maph_core::{Config, Error, Mode, SingleWriter, Store};
use maph_server::{ServerConfig, ServerHandle};
use serde_json::json;

/// Generous bound for the server to reach a state; only a stuck server fails it.
const PATIENCE: Duration = Duration::from_secs(120);

/// Makes a store at `dir/<name>.maph` holding `key = seeded`, as `maph create`
/// and `maph set` would while the server runs, and releases its lease.
fn made_by_another_tool(dir: &Path, name: &str, key: &[u8]) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.maph"));
    Store::create(&path, Config::new(64)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    store.set(&SingleWriter::new(&store).unwrap(), key, b"seeded").unwrap();
    path
}

/// Whether a process may take the store's writer lease now.
fn lease_is_free(path: &Path) -> bool {
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    match SingleWriter::new(&store) {
        Ok(_) => true,
        Err(Error::WriterBusy { .. }) => false,
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn reads_never_serve_a_store_that_appeared_after_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0).token(Some("s3cret".into()))).unwrap();
    let anonymous = Api::new(server.url());
    let path = made_by_another_tool(dir.path(), "late", b"l");
    let before = std::fs::read(&path).unwrap();

    anonymous.get("/stores/late/keys/l").assert_error(404, "Store not found");
    anonymous.get("/stores/late/stats").assert_error(404, "Store not found");
    anonymous.get("/stores/late/keys?prefix=l").assert_error(404, "Store not found");
    anonymous
        .post_body("/stores/late/batch", br#"{"operation":"mget","keys":["l"]}"#)
        .assert_error(404, "Store not found");
    assert_eq!(anonymous.get("/stores").json(), json!([]));
    assert!(!String::from_utf8_lossy(&anonymous.get("/metrics").body).contains("late"));
    // Writes without the token change nothing either.
    anonymous.put("/stores/late/keys/l", b"v").assert_error(401, "token");
    anonymous.post("/rescan").assert_error(401, "token");
    anonymous.post("/stores/late/optimize").assert_error(401, "token");
    anonymous
        .post_body("/stores/late/batch", br#"{"operation":"mset","pairs":[{"key":"l","value":"v"}]}"#)
        .assert_error(401, "token");

    assert!(lease_is_free(&path), "a read took the writer lease");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file was written");

    // Serving it is a write: an authorised rescan (or write) takes the lease.
    let authorised = Api::new(server.url()).with_token("s3cret");
    let rescan = authorised.post("/rescan");
    assert_eq!((rescan.status, rescan.json()["adopted"].clone()), (200, json!(["late"])), "{rescan:?}");
    assert_eq!(anonymous.get("/stores/late/keys/l").json()["value"], "seeded");
    assert!(!lease_is_free(&path), "the server serves it now");
    let other = made_by_another_tool(dir.path(), "later", b"x");
    assert_eq!(authorised.put("/stores/later/keys/x", b"written").status, 200, "a write serves it too");
    assert!(!lease_is_free(&other));
    server.stop().unwrap();
}

#[test]
fn answers_never_show_where_the_server_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = dir.path().canonicalize().unwrap();
    std::fs::write(dir.path().join("junk.maph"), b"not a store at all, but long enough to be read").unwrap();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0)).unwrap();
    let api = Api::new(server.url());
    let mut bodies = Vec::new();
    let created = api.post("/stores/s");
    assert_eq!(created.status, 201);
    assert_eq!(created.json()["file"], "s.maph");
    bodies.push(created.body);
    api.put("/stores/s/keys/k", b"v");
    let stats = api.get("/stores/s/stats");
    assert_eq!(stats.json()["file"], "s.maph");
    bodies.push(stats.body);
    for path in ["/stats", "/metrics", "/stores", "/health"] {
        bodies.push(api.get(path).body);
    }
    let rescan = api.post("/rescan");
    assert!(rescan.json()["skipped"][0]["reason"].as_str().unwrap().contains("junk.maph"), "{rescan:?}");
    bodies.push(rescan.body);
    let unservable = api.put("/stores/junk/keys/k", b"v");
    assert!(unservable.status >= 400, "{unservable:?}");
    bodies.push(unservable.body);
    for body in bodies {
        let text = String::from_utf8_lossy(&body);
        for shown in [dir.path().display().to_string(), absolute.display().to_string()] {
            assert!(!text.contains(&shown), "an answer shows the data directory {shown}: {text}");
        }
    }
    server.stop().unwrap();
}

#[test]
fn the_bearer_scheme_is_matched_case_insensitively() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0).token(Some("s3cret".into()))).unwrap();
    let api = Api::new(server.url());
    let with = |value: &str, key: &str| {
        api.run("PUT", &format!("/stores/t/keys/{key}"), Some(b"v"), &[("Authorization", value)])
    };
    assert_eq!(api.run("POST", "/stores/t", None, &[("Authorization", "bearer s3cret")]).status, 201);
    for (i, value) in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR   s3cret"].iter().enumerate() {
        assert_eq!(with(value, &format!("k{i}")).status, 201, "{value:?}");
    }
    with("bearer S3CRET", "no").assert_error(401, "wrong");
    with("Basic s3cret", "no").assert_error(401, "Authorization: Bearer");
    with("Bearers3cret", "no").assert_error(401, "Authorization: Bearer");
    api.get("/stores/t/keys/no").assert_error(404, "Key not found");
    server.stop().unwrap();
}

/// Holds the slot that stores `key` mid-write (its version word odd), as a
/// writer process stopped inside a write would, until dropped.
struct SlotHeldMidWrite {
    map: memmap2::MmapMut,
    offset: usize,
    version: u64,
}

impl SlotHeldMidWrite {
    fn hold(path: &Path, slot_size: usize, key: &[u8]) -> SlotHeldMidWrite {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        // SAFETY: a shared mapping of a store file; the test only touches the
        // one aligned version word below, through an atomic.
        let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
        let at = map.windows(key.len()).position(|w| w == key).expect("the key is in the file");
        let header = maph_core::format::HEADER_SIZE;
        let offset = header + (at - header) / slot_size * slot_size;
        let mut held = SlotHeldMidWrite { map, offset, version: 0 };
        held.version = held.word().fetch_or(1, Ordering::SeqCst);
        assert_eq!(held.version & 1, 0, "the slot was not mid-write before");
        held
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: slots start at multiples of 64 bytes in a page-aligned
        // mapping, so the word is aligned; it lives as long as `self.map`.
        unsafe { &*(self.map.as_ptr().add(self.offset) as *const AtomicU64) }
    }
}

impl Drop for SlotHeldMidWrite {
    fn drop(&mut self) {
        self.word().store(self.version, Ordering::SeqCst);
    }
}

#[test]
fn a_read_waiting_for_a_slot_mid_write_leaves_the_async_workers_free() {
    const WAITING: usize = 6; // more than the server's async workers
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path()).port(0);
    config.read_patience = PATIENCE; // the reads wait until the slot is released
    let server = ServerHandle::start(config).unwrap();
    let api = Api::new(server.url());
    assert_eq!(api.post("/stores/busy?slots=1000").status, 201);
    assert_eq!(api.put("/stores/busy/keys/the-key-held-mid-write", b"value").status, 201);
    assert_eq!(api.post("/stores/free").status, 201);
    let held = SlotHeldMidWrite::hold(&dir.path().join("busy.maph"), 512, b"the-key-held-mid-write");

    let answered = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..WAITING)
        .map(|_| {
            let api = Api::new(server.url());
            let answered = answered.clone();
            std::thread::spawn(move || {
                let reply = api.get("/stores/busy/keys/the-key-held-mid-write");
                answered.fetch_add(1, Ordering::SeqCst);
                reply
            })
        })
        .collect();
    // Every read is waiting on a blocking thread, and meanwhile the server
    // answers other requests at once: no worker is held.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = api.get("/stores/busy/stats").json();
        if stats["reads_waiting"] == WAITING {
            break;
        }
        assert_eq!(answered.load(Ordering::SeqCst), 0, "a read did not wait: {stats}");
        assert!(Instant::now() < deadline, "the reads never all waited: {stats}");
        std::thread::yield_now();
    }
    assert_eq!(api.get("/health").status, 200);
    assert_eq!(api.put("/stores/free/keys/other", b"w").status, 201, "writes go on too");
    assert_eq!(answered.load(Ordering::SeqCst), 0, "the waiting reads were answered before the slot was released");

    drop(held); // the write "finishes"
    for reader in readers {
        let reply = reader.join().unwrap();
        assert_eq!((reply.status, reply.json()["value"].clone()), (200, json!("value")), "{reply:?}");
    }
    let stats = api.get("/stores/busy/stats").json();
    assert_eq!((stats["reads_waiting"].clone(), stats["read_waits"].clone()), (json!(0), json!(WAITING)));
    server.stop().unwrap();
}
