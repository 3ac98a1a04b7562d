//! Every endpoint and every error of the HTTP API, through a real HTTP client
//! against a server on an ephemeral port.

mod common;

use common::Api;
use maph_core::{Config, Mode, SingleWriter, Store};
use maph_server::{ServerConfig, ServerHandle};
use serde_json::{json, Value};

fn start(dir: &std::path::Path, adjust: impl FnOnce(ServerConfig) -> ServerConfig) -> (ServerHandle, Api) {
    let server = ServerHandle::start(adjust(ServerConfig::new(dir).port(0))).expect("start the server");
    let api = Api::new(server.url());
    (server, api)
}

#[test]
fn health_and_an_empty_listing() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);
    let health = api.get("/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok", "stores": 0}));
    let list = api.get("/stores");
    assert_eq!((list.status, list.json()), (200, json!([])));
}

#[test]
fn create_list_and_the_errors_of_create() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);

    let created = api.post("/stores/users");
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json()["slots"], 10_000, "maph v3's default size");
    assert!(dir.path().join("users.maph").is_file(), "stored as <name>.maph in the data dir");
    api.post("/stores/users").assert_error(400, "Store 'users' already exists");

    // Size from the query string, or from a JSON body.
    let small = api.post("/stores/small?slots=100&slot_size=128");
    assert_eq!(
        (small.status, small.json()["slots"].clone(), small.json()["slot_size"].clone()),
        (201, json!(100), json!(128))
    );
    let from_body = api.post_body("/stores/sized", br#"{"slots": 50, "slot_size": 256}"#);
    assert_eq!((from_body.status, from_body.json()["slots"].clone()), (201, json!(50)));

    api.post("/stores/bad?slot_size=100").assert_error(400, "slot size 100 must be a multiple of 64");
    api.post("/stores/bad?slots=0").assert_error(400, "slot count is 0");
    api.post("/stores/bad?slots=lots").assert_error(400, "slots");
    api.post_body("/stores/bad", b"{not json").assert_error(400, "JSON");
    api.post_body("/stores/bad", br#"{"slotz": 5}"#).assert_error(400, "slotz");
    api.post("/stores/huge?slots=1000000000000").assert_error(400, "--max-store-bytes");
    api.post("/stores").assert_error(400, "requires a name");
    assert!(!dir.path().join("bad.maph").exists(), "nothing half-made");

    let list = api.get("/stores").json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sized", "small", "users"]);
    assert_eq!(list[0], json!({"name": "sized", "size": 0, "load_factor": 0.0}));
}

#[test]
fn invalid_store_names_are_refused_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);
    let long = "x".repeat(65);
    for name in ["..%2Fetc", "..%2F..%2Ftmp%2Fx", "a.b", "%2E%2E", "sp%20ace", long.as_str()] {
        api.post(&format!("/stores/{name}")).assert_error(400, "invalid store name");
        api.get(&format!("/stores/{name}/stats")).assert_error(400, "invalid store name");
        api.post(&format!("/stores/{name}/optimize")).assert_error(400, "invalid store name");
        api.get(&format!("/stores/{name}/keys/k")).assert_error(400, "invalid store name");
        api.put(&format!("/stores/{name}/keys/k"), b"v").assert_error(400, "invalid store name");
        api.delete(&format!("/stores/{name}/keys/k")).assert_error(400, "invalid store name");
        api.get(&format!("/stores/{name}/keys?prefix=a")).assert_error(400, "invalid store name");
        let batch = br#"{"operation": "mset", "pairs": [{"key": "k", "value": "v"}]}"#;
        api.post_body(&format!("/stores/{name}/batch"), batch).assert_error(400, "invalid store name");
    }
    let parent = dir.path().parent().unwrap();
    assert!(!parent.join("etc.maph").exists(), "a store was created outside the data dir");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn keys_put_get_delete_with_v3_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);
    assert_eq!(api.post("/stores/db").status, 201);

    let created = api.put("/stores/db/keys/greeting", b"hello world");
    assert_eq!(created.status, 201);
    assert_eq!(created.json()["message"], "Key created");
    let updated = api.put("/stores/db/keys/greeting", b"hello again");
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json()["message"], "Key updated");
    let got = api.get("/stores/db/keys/greeting");
    assert_eq!((got.status, got.json()), (200, json!({"key": "greeting", "value": "hello again"})));

    // Keys may hold '/' and percent-encoded bytes; they are decoded once.
    assert_eq!(api.put("/stores/db/keys/user/1001%20x", b"ada").status, 201);
    assert_eq!(api.get("/stores/db/keys/user/1001%20x").json()["key"], "user/1001 x");
    // An empty value is a value.
    assert_eq!(api.put("/stores/db/keys/empty", b"").status, 201);
    assert_eq!(api.get("/stores/db/keys/empty").json()["value"], "");

    api.get("/stores/db/keys/missing").assert_error(404, "Key not found");
    api.get("/stores/nostore/keys/k").assert_error(404, "Store not found");
    api.put("/stores/nostore/keys/k", b"v").assert_error(404, "Store not found");
    api.delete("/stores/nostore/keys/k").assert_error(404, "Store not found");
    api.get("/stores/nostore/stats").assert_error(404, "Store not found");
    api.post("/stores/nostore/optimize").assert_error(404, "Store not found");
    api.get("/stores/db/keys/%FF").assert_error(400, "");

    let deleted = api.delete("/stores/db/keys/greeting");
    assert_eq!((deleted.status, deleted.body.len()), (204, 0));
    api.delete("/stores/db/keys/greeting").assert_error(404, "Key not found");
    api.get("/stores/db/keys/greeting").assert_error(404, "Key not found");
    assert!(!dir.path().join("nostore.maph").exists());
}

#[test]
fn binary_values_come_back_as_base64_or_raw() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);
    api.post("/stores/bin");
    let bytes = [0xff, 0x00, 0x80, b'a'];
    assert_eq!(api.put("/stores/bin/keys/blob", &bytes).status, 201);
    let as_json = api.get("/stores/bin/keys/blob").json();
    assert_eq!(as_json["value"], Value::Null);
    assert_eq!(as_json["value_base64"], "/wCAYQ==");
    let raw = api.get_with("/stores/bin/keys/blob", &[("Accept", "application/octet-stream")]);
    assert_eq!(
        (raw.status, raw.content_type.as_str(), raw.body.as_slice()),
        (200, "application/octet-stream", &bytes[..])
    );
}

#[test]
fn too_large_keys_values_and_bodies_get_413_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c.max_body_bytes(4096));
    api.post("/stores/small?slot_size=128"); // 96 bytes of key + value
    let long_key = "k".repeat(97);
    api.put(&format!("/stores/small/keys/{long_key}"), b"v").assert_error(413, "at most 96");
    api.put("/stores/small/keys/key", &[b'v'; 94]).assert_error(413, "at most 93");
    assert_eq!(api.put("/stores/small/keys/key", &[b'v'; 93]).status, 201, "exactly the limit fits");
    // A body over the server's cap is refused before it is read whole.
    api.post("/stores/big?slot_size=65536");
    api.put("/stores/big/keys/k", &vec![b'v'; 4097]).assert_error(413, "limit of 4096 bytes");
    assert_eq!(api.put("/stores/big/keys/k", &vec![b'v'; 4096]).status, 201);
    // Nothing of the refused writes landed.
    api.get(&format!("/stores/small/keys/{long_key}")).assert_error(404, "Key not found");
    assert_eq!(api.get("/stores/small/keys/key").json()["value"].as_str().unwrap().len(), 93);
}

#[test]
fn a_small_store_grows_instead_of_answering_507() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);
    assert_eq!(api.post("/stores/tiny?slots=4").status, 201); // every key's window is the whole table
    for i in 0..300 {
        assert_eq!(api.put(&format!("/stores/tiny/keys/k{i}"), format!("{i}").as_bytes()).status, 201, "k{i}");
    }
    let stats = api.get("/stores/tiny/stats").json();
    assert_eq!(stats["size"], 300);
    assert!(stats["slots"].as_u64().unwrap() >= 600, "{stats}");
    assert!(stats["writer"]["growths"].as_u64().unwrap() >= 2, "{stats}");
    for i in 0..300 {
        assert_eq!(api.get(&format!("/stores/tiny/keys/k{i}")).json()["value"], format!("{i}"));
    }
}

#[test]
fn a_store_at_the_size_limit_answers_507_and_keeps_the_connection_open() {
    let dir = tempfile::tempdir().unwrap();
    // Room for a 4-slot store of 512-byte slots, and not for twice that.
    let (_server, api) = start(dir.path(), |mut c| {
        c.max_store_bytes = maph_core::format::HEADER_SIZE as u64 + 4 * 512;
        c
    });
    assert_eq!(api.post("/stores/capped?slots=4").status, 201);
    let mut refused = None;
    for i in 0..5 {
        let reply = api.put(&format!("/stores/capped/keys/k{i}"), b"v");
        match reply.status {
            201 => {}
            507 => {
                refused = Some(reply);
                break;
            }
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    let refused = refused.expect("the fifth key cannot fit four slots");
    refused.assert_error(507, "--max-store-bytes");
    assert_eq!(refused.header("connection"), None, "an ordinary error keeps the connection open");
    assert_eq!(api.put("/stores/capped/keys/k0", b"updated").status, 200, "updating a present key still works");
    let stats = api.get("/stores/capped/stats").json();
    assert_eq!((stats["size"].as_u64(), stats["slots"].as_u64()), (Some(4), Some(4)));
}

#[test]
fn ordinary_errors_keep_the_connection_open_and_unread_bodies_close_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path(), |c| c.token(Some("t".into())));
    let api = Api::new(server.url()).with_token("t");
    assert_eq!(api.post("/stores/c?slot_size=128").status, 201);
    for reply in [
        api.put("/stores/nostore/keys/k", b"v"),
        api.put("/stores/c/keys/k", &[b'v'; 200]),
        api.post_body("/stores/c/batch", b"{not json"),
        api.delete("/stores/c/keys/absent"),
    ] {
        assert!(reply.status >= 400, "{reply:?}");
        assert_eq!(reply.header("connection"), None, "{reply:?}");
    }
    // Refused before the body was read: the connection cannot be reused.
    let unread = Api::new(server.url()).put("/stores/c/keys/k", b"v");
    unread.assert_error(401, "token");
    assert_eq!(unread.header("connection"), Some("close"));
}

#[test]
fn stats_report_geometry_generation_and_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);
    api.post("/stores/s?slots=1000");
    for i in 0..10 {
        api.put(&format!("/stores/s/keys/k{i}"), b"v");
    }
    let stats = api.get("/stores/s/stats").json();
    assert_eq!(stats["size"], 10);
    assert_eq!(stats["load_factor"], 0.01);
    assert_eq!(stats["slots"], 1000);
    assert_eq!(stats["slot_size"], 512);
    assert_eq!(stats["strategy"], "single-writer");
    assert_eq!(stats["writer"]["writes"], 10);
    assert!(stats["generation"].as_u64().unwrap() >= 1 && stats["generation"].as_u64().unwrap() <= 10);
    assert_eq!(stats["file"], "s.maph");
}

#[test]
fn optimize_rebuilds_to_fit_and_keeps_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);
    api.post("/stores/opt?slots=20000");
    for i in 0..500 {
        assert_eq!(api.put(&format!("/stores/opt/keys/k{i}"), format!("v{i}").as_bytes()).status, 201);
    }
    api.delete("/stores/opt/keys/k0");
    let report = api.post("/stores/opt/optimize");
    assert_eq!(report.status, 200, "{report:?}");
    let report = report.json();
    assert_eq!(report["keys"], 499);
    assert_eq!(report["slots_before"], 20000);
    let after = report["slots_after"].as_u64().unwrap();
    assert!((998..20000).contains(&after), "{report}");
    assert_eq!(api.get("/stores/opt/stats").json()["slots"], after);
    for i in 1..500 {
        assert_eq!(api.get(&format!("/stores/opt/keys/k{i}")).json()["value"], format!("v{i}"));
    }
    api.get("/stores/opt/keys/k0").assert_error(404, "Key not found");
    // Writes go to the new file, and the server still holds the lease on it.
    assert_eq!(api.put("/stores/opt/keys/after", b"yes").status, 201);
    let path = dir.path().join("opt.maph");
    let reader = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!(reader.slot_count(), after);
    assert_eq!(reader.get(b"after").unwrap(), Some(b"yes".to_vec()));
    let rival = Store::open(&path, Mode::ReadWrite).unwrap();
    assert!(matches!(SingleWriter::new(&rival), Err(maph_core::Error::WriterBusy { .. })));
    common::assert_no_rebuild_left(dir.path());
}

#[test]
fn unknown_routes_and_wrong_methods_answer_json() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = start(dir.path(), |c| c);
    api.get("/nope").assert_error(404, "Not found");
    api.get("/stores/db/keys/").assert_error(404, "Not found");
    api.get("/stores/db/other").assert_error(404, "Not found");
    let patch = api.run("PATCH", "/stores/db/keys/k", Some(b"v"), &[]);
    patch.assert_error(405, "Method not allowed");
    assert!(patch.header("allow").unwrap().contains("PUT"), "{patch:?}");
    api.delete("/stores").assert_error(405, "Method not allowed");
    api.put("/health", b"").assert_error(405, "Method not allowed");
}

#[test]
fn with_a_token_writes_need_it_and_reads_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (server, anonymous) = start(dir.path(), |c| c.token(Some("s3cret".into())));
    let authorised = Api::new(server.url()).with_token("s3cret");
    let wrong = Api::new(server.url()).with_token("guess");

    let refused = anonymous.post("/stores/t");
    refused.assert_error(401, "Authorization: Bearer");
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    wrong.post("/stores/t").assert_error(401, "wrong");
    assert!(!dir.path().join("t.maph").exists());
    assert_eq!(authorised.post("/stores/t").status, 201);

    let unread = anonymous.put("/stores/t/keys/k", b"v");
    unread.assert_error(401, "token");
    // The body was never read: the server says it closes, so no client reuses
    // a connection with a stale body in it.
    assert_eq!(unread.header("connection"), Some("close"));
    assert_eq!(authorised.put("/stores/t/keys/k", b"v").status, 201);
    assert_eq!(anonymous.get("/stores/t/keys/k").json()["value"], "v", "reads need no token");
    assert_eq!(anonymous.get("/stores").status, 200);
    anonymous.delete("/stores/t/keys/k").assert_error(401, "token");
    anonymous.post("/stores/t/optimize").assert_error(401, "token");
    assert_eq!(authorised.delete("/stores/t/keys/k").status, 204);
}

#[test]
fn stores_in_the_data_dir_are_served_at_start_and_when_they_appear() {
    let dir = tempfile::tempdir().unwrap();
    let seed = |name: &str, key: &[u8]| {
        let path = dir.path().join(format!("{name}.maph"));
        Store::create(&path, Config::new(64)).unwrap();
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        store.set(&SingleWriter::new(&store).unwrap(), key, b"seeded").unwrap();
    };
    seed("early", b"e");
    std::fs::write(dir.path().join("not.a.store.maph"), b"junk").unwrap(); // invalid name: ignored
    let (_server, api) = start(dir.path(), |c| c);
    assert_eq!(api.get("/stores/early/keys/e").json()["value"], "seeded");
    seed("late", b"l"); // made by another tool while the server runs
    api.get("/stores/late/keys/l").assert_error(404, "Store not found"); // a read serves nothing
    assert_eq!(api.put("/stores/late/keys/l", b"served").status, 200, "a write serves it");
    assert_eq!(api.get("/stores/late/keys/l").json()["value"], "served");
    seed("rescanned", b"r");
    let rescan = api.post("/rescan").json();
    assert_eq!(rescan["adopted"], json!(["rescanned"]));
    assert_eq!(rescan["skipped"][0]["file"], "not.a.store.maph");
    assert_eq!(api.get("/stores/rescanned/keys/r").json()["value"], "seeded");
    assert_eq!(api.get("/stores").json().as_array().unwrap().len(), 3);
}

#[test]
fn a_store_another_process_writes_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken.maph");
    Store::create(&path, Config::new(64)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let _lease = SingleWriter::new(&store).unwrap(); // as another writer process would
    let (_server, api) = start(dir.path(), |c| c);
    api.get("/stores/taken/keys/k").assert_error(404, "Store not found");
    api.put("/stores/taken/keys/k", b"v").assert_error(409, "cannot be served");
    api.put("/stores/taken/keys/k", b"v").assert_error(409, "single-writer lease");
    assert_eq!(store.len(), 0);
}

#[test]
fn concurrent_writers_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start(dir.path(), |c| c);
    api.post("/stores/c");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let api = Api::new(server.url());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let reply = api.put(&format!("/stores/c/keys/t{t}-{i}"), format!("{t}:{i}").as_bytes());
                    assert_eq!(reply.status, 201, "{reply:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = api.get("/stores/c/stats").json();
    assert_eq!(stats["size"], 400);
    assert_eq!(stats["writer"]["writes"], 400);
    let commits = stats["writer"]["commits"].as_u64().unwrap();
    assert!((1..=400).contains(&commits));
    println!("400 concurrent writes in {commits} commits (largest group {})", stats["writer"]["largest_group"]);
    for t in 0..8 {
        for i in 0..50 {
            assert_eq!(api.get(&format!("/stores/c/keys/t{t}-{i}")).json()["value"], format!("{t}:{i}"));
        }
    }
}

#[test]
fn a_full_write_queue_makes_writers_wait_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start(dir.path(), |mut c| {
        c.queue_capacity = 1;
        c.max_group = 2;
        c
    });
    api.post("/stores/q");
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let api = Api::new(server.url());
            std::thread::spawn(move || (0..25).all(|i| api.put(&format!("/stores/q/keys/{t}-{i}"), b"v").status == 201))
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap()), "every write succeeded");
    let writer = &api.get("/stores/q/stats").json()["writer"];
    assert_eq!(writer["writes"], 150);
    assert!(writer["largest_group"].as_u64().unwrap() <= 2, "{writer}");
}

#[test]
fn stopping_flushes_and_releases_every_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start(dir.path(), |c| c);
    api.post("/stores/a");
    api.post("/stores/b");
    api.put("/stores/a/keys/k", b"1");
    api.put("/stores/b/keys/k", b"2");
    server.stop().unwrap();
    for (name, value) in [("a", b"1"), ("b", b"2")] {
        let store = Store::open(dir.path().join(format!("{name}.maph")), Mode::ReadWrite).unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(value.to_vec()));
        SingleWriter::new(&store).expect("the lease is free once the server stopped");
    }
}
