//! The hybrid architecture across real processes: the server writes through
//! HTTP while other processes read the same file directly, and cannot write it.

mod common;

use std::time::{Duration, Instant};

use common::Api;
use maph_core::{Error, Mode, SingleWriter, Store};
use maph_server::{ServerConfig, ServerHandle};
use maph_testkit::{child, spawn};

/// Generous bound for a child to see a write the server already committed;
/// only a machine stalled for this long fails the test.
const PATIENCE: Duration = Duration::from_secs(60);

/// A separate process maps the store read-only and sees what the server wrote
/// over HTTP, before and while it writes; a second process asking for the
/// writer lease is refused with the server's pid.
#[test]
fn readers_in_other_processes_see_server_writes_and_cannot_write() {
    const TEST: &str = "readers_in_other_processes_see_server_writes_and_cannot_write";
    if let Some(ctx) = child(TEST) {
        let path: String = ctx.arg(0);
        let seeded: usize = ctx.arg(1);
        let reader = Store::open(&path, Mode::ReadOnly).expect("open read-only");
        ctx.report("opened", 1);
        ctx.wait_for_start();
        let matched = (0..seeded)
            .filter(|i| reader.get(format!("seed{i}").as_bytes()).unwrap() == Some(format!("value{i}").into_bytes()))
            .count();
        ctx.report("matched", matched);
        // The parent wrote live=1 before the start and writes nothing more
        // until it has this first reading.
        let first = String::from_utf8(reader.get(b"live").unwrap().unwrap_or_default()).unwrap();
        ctx.report("first", &first);
        // Follow the key while the server keeps updating it, until it says "done".
        let deadline = Instant::now() + PATIENCE;
        let (mut last, mut distinct, mut backwards) = (first.parse::<u64>().unwrap_or(0), 0u64, false);
        loop {
            match reader.get(b"live").unwrap().as_deref() {
                Some(b"done") => break,
                Some(v) => {
                    let n: u64 = std::str::from_utf8(v).unwrap().parse().unwrap();
                    backwards |= n < last;
                    distinct += u64::from(n != last);
                    last = n;
                }
                None => {}
            }
            assert!(Instant::now() < deadline, "never saw the final write (last {last})");
            std::thread::yield_now();
        }
        ctx.report("distinct", distinct);
        ctx.report("backwards", backwards);
        // Writing is the server's job: the lease is taken.
        let rival = Store::open(&path, Mode::ReadWrite).expect("open read-write");
        match SingleWriter::new(&rival) {
            Err(Error::WriterBusy { pid }) => ctx.report("busy_pid", pid.unwrap_or(0)),
            other => panic!("expected WriterBusy, got {other:?}"),
        }
        ctx.exit();
    }

    let dir = maph_testkit::temp_dir();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0)).unwrap();
    let api = Api::new(server.url());
    assert_eq!(api.post("/stores/shared").status, 201);
    let seeded = 200;
    for i in 0..seeded {
        assert_eq!(api.put(&format!("/stores/shared/keys/seed{i}"), format!("value{i}").as_bytes()).status, 201);
    }
    let path = dir.path().join("shared.maph");
    let mut reader = spawn(TEST, "reader", &[path.display().to_string(), seeded.to_string()]);
    reader.wait_for_report("opened");
    assert_eq!(api.put("/stores/shared/keys/live", b"1").status, 201);
    reader.start();
    assert_eq!(reader.wait_for_report("first"), "1", "the reader sees the server's write at once");
    for n in 2..=300u64 {
        assert_eq!(api.put("/stores/shared/keys/live", n.to_string().as_bytes()).status, 200);
    }
    assert_eq!(api.put("/stores/shared/keys/live", b"done").status, 200);
    let done = reader.finish_ok();
    assert_eq!(done.report::<usize>("matched"), seeded, "{}", done.describe());
    assert!(!done.report::<bool>("backwards"), "a reader saw the counter go back");
    println!("the reader saw {} of the 299 later values of the live key", done.report::<u64>("distinct"));
    assert_eq!(done.report::<u32>("busy_pid"), std::process::id(), "the lease holder is the server's process");
    server.stop().unwrap();
}

/// An optimize swaps a new file in while another process has the old one
/// mapped: the reader notices (`is_retired`), reopens, and finds every key,
/// including one written after the swap.
#[test]
fn optimize_while_another_process_reads_the_old_file() {
    const TEST: &str = "optimize_while_another_process_reads_the_old_file";
    if let Some(ctx) = child(TEST) {
        let path: String = ctx.arg(0);
        let keys: usize = ctx.arg(1);
        let old = Store::open(&path, Mode::ReadOnly).expect("open read-only");
        ctx.report("slots_before", old.slot_count());
        ctx.wait_for_start(); // the parent optimizes meanwhile
        ctx.report("retired", old.is_retired());
        // The old mapping stays valid: it still answers with the old entries.
        ctx.report("old_still_reads", old.get(b"k0").unwrap() == Some(b"v0".to_vec()));
        let new = old.reopen().expect("reopen the path");
        ctx.report("slots_after", new.slot_count());
        ctx.report("new_retired", new.is_retired());
        let found = (0..keys).filter(|i| new.get(format!("k{i}").as_bytes()).unwrap().is_some()).count();
        ctx.report("found", found);
        ctx.report("after", String::from_utf8(new.get(b"after").unwrap().unwrap_or_default()).unwrap());
        ctx.exit();
    }

    let dir = maph_testkit::temp_dir();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0)).unwrap();
    let api = Api::new(server.url());
    assert_eq!(api.post("/stores/opt?slots=5000").status, 201);
    let keys = 300;
    for i in 0..keys {
        assert_eq!(api.put(&format!("/stores/opt/keys/k{i}"), format!("v{i}").as_bytes()).status, 201);
    }
    let path = dir.path().join("opt.maph");
    let mut reader = spawn(TEST, "reader", &[path.display().to_string(), keys.to_string()]);
    assert_eq!(reader.wait_for_report("slots_before"), "5000");
    let optimized = api.post("/stores/opt/optimize");
    assert_eq!(optimized.status, 200, "{optimized:?}");
    let slots_after = optimized.json()["slots_after"].as_u64().unwrap();
    assert_eq!(api.put("/stores/opt/keys/after", b"swap").status, 201);
    reader.start();
    let done = reader.finish_ok();
    assert!(done.report::<bool>("retired"), "the reader noticed the swap: {}", done.describe());
    assert!(done.report::<bool>("old_still_reads"));
    assert_eq!(done.report::<u64>("slots_after"), slots_after);
    assert!(!done.report::<bool>("new_retired"));
    assert_eq!(done.report::<usize>("found"), keys);
    assert_eq!(done.report::<String>("after"), "swap");
    server.stop().unwrap();
}

/// A store grows (rebuilt larger and swapped in, several times) while another
/// process reads it through its own mapping: the reader follows each swap
/// (`is_retired`, `reopen`) and never misses a key the server acknowledged.
#[test]
fn growth_while_another_process_reads_the_file() {
    const TEST: &str = "growth_while_another_process_reads_the_file";
    const BATCHES: u64 = 60;
    const PER_BATCH: u64 = 200;
    if let Some(ctx) = child(TEST) {
        let path: String = ctx.arg(0);
        let mut reader = Store::open(&path, Mode::ReadOnly).expect("open read-only");
        ctx.report("opened", 1);
        ctx.wait_for_start();
        let (mut reopened, mut checked, mut missing) = (0u64, 0u64, 0u64);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if reader.is_retired() {
                reader = reader.reopen().expect("reopen after a swap");
                reopened += 1;
            }
            // `acknowledged` is written after the keys below it were
            // acknowledged: read from one mapping, they are all there.
            let acknowledged: u64 = match reader.get(b"acknowledged").unwrap() {
                Some(n) => String::from_utf8(n).unwrap().parse().unwrap(),
                None => 0,
            };
            let newest = acknowledged.saturating_sub(PER_BATCH);
            for i in (0..acknowledged).step_by(97).chain(newest..acknowledged) {
                checked += 1;
                if reader.get(format!("k{i}").as_bytes()).unwrap().as_deref() != Some(format!("v{i}").as_bytes()) {
                    missing += 1;
                }
            }
            if acknowledged == BATCHES * PER_BATCH {
                break;
            }
            assert!(Instant::now() < deadline, "never saw the last batch (at {acknowledged})");
            std::thread::yield_now();
        }
        ctx.report("reopened", reopened);
        ctx.report("checked", checked);
        ctx.report("missing", missing);
        ctx.exit();
    }

    let dir = maph_testkit::temp_dir();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0)).unwrap();
    let api = Api::new(server.url());
    assert_eq!(api.post("/stores/grows?slots=1000").status, 201);
    let path = dir.path().join("grows.maph");
    let mut reader = spawn(TEST, "reader", &[path.display().to_string()]);
    reader.wait_for_report("opened");
    reader.start();
    for batch in 0..BATCHES {
        let pairs: Vec<serde_json::Value> = (batch * PER_BATCH..(batch + 1) * PER_BATCH)
            .map(|i| serde_json::json!({"key": format!("k{i}"), "value": format!("v{i}")}))
            .collect();
        let body = serde_json::json!({"operation": "mset", "pairs": pairs}).to_string();
        assert_eq!(api.post_body("/stores/grows/batch", body.as_bytes()).status, 200);
        let acknowledged = ((batch + 1) * PER_BATCH).to_string();
        assert!(api.put("/stores/grows/keys/acknowledged", acknowledged.as_bytes()).status < 300);
    }
    let done = reader.finish_ok();
    let growths = api.get("/stores/grows/stats").json()["writer"]["growths"].as_u64().unwrap();
    assert!(growths >= 3, "{growths} growths");
    assert_eq!(done.report::<u64>("missing"), 0, "the reader missed acknowledged keys: {}", done.describe());
    assert!(done.report::<u64>("reopened") >= 1, "{}", done.describe());
    println!(
        "a reader process checked {} keys across {growths} growths, reopening {} times",
        done.report::<u64>("checked"),
        done.report::<u64>("reopened")
    );
    server.stop().unwrap();
}
