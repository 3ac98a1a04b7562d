//! Stores grow under load: many clients insert new keys over HTTP into a store
//! made with maph v3's default size while others read what was acknowledged.
//! Every insert is acknowledged (no 507, no 5xx), no acknowledged key is ever
//! missing or wrong, and the store ends up several times larger.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::Api;
use maph_server::{ServerConfig, ServerHandle};
use parking_lot::Mutex;
use serde_json::{json, Value};

const SINGLE_WRITERS: usize = 12;
const BATCH_WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 1500;
const BATCH: usize = 100;
const READERS: usize = 4;

fn value_of(key: &str) -> String {
    format!("value of {key}")
}

#[test]
fn concurrent_writers_and_readers_over_http_while_the_store_grows() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0)).unwrap();
    let api = Api::new(server.url());
    let created = api.post("/stores/grow"); // 10,000 slots, maph v3's default
    assert_eq!((created.status, created.json()["slots"].clone()), (201, json!(10_000)));

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers_done = Arc::new(AtomicBool::new(false));
    let writer = |t: usize| {
        let api = Api::new(server.url());
        let acknowledged = acknowledged.clone();
        std::thread::spawn(move || {
            let keys: Vec<String> = (0..KEYS_PER_WRITER).map(|i| format!("w{t}-{i}")).collect();
            if t < SINGLE_WRITERS {
                for key in keys {
                    let reply = api.put(&format!("/stores/grow/keys/{key}"), value_of(&key).as_bytes());
                    assert_eq!(reply.status, 201, "PUT {key}: {reply:?} {}", String::from_utf8_lossy(&reply.body));
                    acknowledged.lock().push(key);
                }
            } else {
                for chunk in keys.chunks(BATCH) {
                    let pairs: Vec<Value> = chunk.iter().map(|k| json!({"key": k, "value": value_of(k)})).collect();
                    let body = json!({"operation": "mset", "pairs": pairs}).to_string();
                    let reply = api.post_body("/stores/grow/batch", body.as_bytes());
                    assert_eq!(reply.status, 200, "mset: {reply:?} {}", String::from_utf8_lossy(&reply.body));
                    assert_eq!(reply.json()["created"], chunk.len());
                    acknowledged.lock().extend(chunk.iter().cloned());
                }
            }
        })
    };
    let writers: Vec<_> = (0..SINGLE_WRITERS + BATCH_WRITERS).map(writer).collect();

    // Readers check acknowledged keys while the store grows under them: the
    // newest (written just before a swap, perhaps) and a spread of older ones.
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let api = Api::new(server.url());
            let acknowledged = acknowledged.clone();
            let done = writers_done.clone();
            std::thread::spawn(move || {
                let mut checked = 0usize;
                let mut round = 0usize;
                while !done.load(Ordering::SeqCst) {
                    round += 1;
                    let sample: Vec<String> = {
                        let all = acknowledged.lock();
                        if all.is_empty() {
                            drop(all);
                            std::thread::yield_now();
                            continue;
                        }
                        let step = (all.len() / 16).max(1);
                        let mut keys: Vec<String> =
                            all.iter().skip((round + r) % step).step_by(step).cloned().collect();
                        keys.push(all[all.len() - 1].clone());
                        keys
                    };
                    let newest = sample.last().unwrap().clone();
                    let one = api.get(&format!("/stores/grow/keys/{newest}"));
                    assert_eq!(one.status, 200, "GET {newest}: {one:?}");
                    assert_eq!(one.json()["value"], value_of(&newest));
                    let body = json!({"operation": "mget", "keys": sample}).to_string();
                    let many = api.post_body("/stores/grow/batch", body.as_bytes());
                    assert_eq!(many.status, 200, "{many:?}");
                    let many = many.json();
                    assert_eq!(many["missing"], json!([]), "acknowledged keys missing during growth");
                    for pair in many["pairs"].as_array().unwrap() {
                        assert_eq!(pair["value"], value_of(pair["key"].as_str().unwrap()));
                    }
                    checked += sample.len() + 1;
                }
                checked
            })
        })
        .collect();

    for writer in writers {
        writer.join().expect("a writer failed");
    }
    writers_done.store(true, Ordering::SeqCst);
    let checked: usize = readers.into_iter().map(|r| r.join().expect("a reader failed")).sum();

    let total = (SINGLE_WRITERS + BATCH_WRITERS) * KEYS_PER_WRITER;
    let keys = acknowledged.lock().clone();
    assert_eq!(keys.len(), total);
    for chunk in keys.chunks(1000) {
        let body = json!({"operation": "mget", "keys": chunk}).to_string();
        let found = api.post_body("/stores/grow/batch", body.as_bytes()).json();
        assert_eq!(found["count"], chunk.len(), "acknowledged keys lost: {}", found["missing"]);
    }
    let stats = api.get("/stores/grow/stats").json();
    assert_eq!(stats["size"], total);
    let growths = stats["writer"]["growths"].as_u64().unwrap();
    assert!(growths >= 2, "{stats}");
    assert!(stats["slots"].as_u64().unwrap() >= 2 * total as u64, "{stats}");
    let metrics = String::from_utf8(api.get("/metrics").body).unwrap();
    let server_errors: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("maph_http_requests_total") && l.contains("status=\"5")).collect();
    assert!(server_errors.is_empty(), "{server_errors:?}");
    assert!(!metrics.contains("status=\"507\""));
    println!(
        "{total} keys in {} growths to {} slots; readers checked {checked} acknowledged keys meanwhile",
        growths, stats["slots"]
    );
    common::assert_no_rebuild_left(dir.path());
    server.stop().unwrap();
}
