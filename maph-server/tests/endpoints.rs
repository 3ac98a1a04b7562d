//! The endpoints the dashboard and operators use: batch, key listing, stats
//! and Prometheus metrics, with good and bad input, over real HTTP.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Api;
use maph_server::{ServerConfig, ServerHandle};
use serde_json::{json, Value};

fn start(adjust: impl FnOnce(ServerConfig) -> ServerConfig) -> (tempfile::TempDir, ServerHandle, Api) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerHandle::start(adjust(ServerConfig::new(dir.path()).port(0))).expect("start the server");
    let api = Api::new(server.url());
    (dir, server, api)
}

fn generation(api: &Api, store: &str) -> u64 {
    api.get(&format!("/stores/{store}/stats")).json()["generation"].as_u64().unwrap()
}

#[test]
fn batch_mset_mget_mdel_each_in_one_commit_or_one_pass() {
    let (_dir, _server, api) = start(|c| c);
    assert_eq!(api.post("/stores/b").status, 201);
    let before = generation(&api, "b");
    // maph v3's page sends exactly this shape.
    let mset = api.post_body(
        "/stores/b/batch",
        br#"{"operation": "mset", "pairs": [
            {"key": "a", "value": "1"},
            {"key": "obj", "value": {"n": 2}},
            {"key": "bin", "value_base64": "/wA="},
            {"key": "a", "value": "again"}]}"#,
    );
    assert_eq!(mset.status, 200, "{mset:?}");
    assert_eq!(mset.json(), json!({"success": true, "operation": "mset", "count": 4, "created": 3, "updated": 1}));
    assert_eq!(generation(&api, "b"), before + 1, "one commit for the whole batch");
    assert_eq!(api.get("/stores/b/keys/a").json()["value"], "again");
    assert_eq!(api.get("/stores/b/keys/obj").json()["value"], r#"{"n":2}"#);
    assert_eq!(api.get("/stores/b/keys/bin").json()["value_base64"], "/wA=");

    let mget = api.post_body("/stores/b/batch", br#"{"operation": "mget", "keys": ["a", "missing", "bin"]}"#);
    assert_eq!(mget.status, 200);
    assert_eq!(
        mget.json(),
        json!({"success": true, "operation": "mget", "count": 2, "missing": ["missing"],
               "pairs": [{"key": "a", "value": "again"}, {"key": "bin", "value": null, "value_base64": "/wA="}]})
    );
    assert_eq!(generation(&api, "b"), before + 1, "a read commits nothing");

    let mdel = api.post_body("/stores/b/batch", br#"{"operation": "mdel", "keys": ["a", "missing", "obj"]}"#);
    assert_eq!(mdel.json(), json!({"success": true, "operation": "mdel", "count": 2, "missing": ["missing"]}));
    assert_eq!(generation(&api, "b"), before + 2);
    api.get("/stores/b/keys/a").assert_error(404, "Key not found");
    let empty = api.post_body("/stores/b/batch", br#"{"operation": "mset", "pairs": []}"#);
    assert_eq!((empty.status, empty.json()["count"].clone()), (200, json!(0)));
}

#[test]
fn batch_errors_are_clear_and_nothing_is_half_written() {
    let (_dir, server, anonymous) = start(|c| {
        let mut c = c.max_body_bytes(4096).token(Some("t".into()));
        c.max_batch = 5;
        c
    });
    let api = Api::new(server.url()).with_token("t");
    assert_eq!(api.post("/stores/e?slot_size=128").status, 201);
    let batch = |body: &str| api.post_body("/stores/e/batch", body.as_bytes());
    batch("{not json").assert_error(400, "not a JSON object");
    batch("[1, 2]").assert_error(400, "not a JSON object");
    batch(r#"{"operation": "mput", "pairs": []}"#).assert_error(400, "unknown or missing \"operation\"");
    batch(r#"{"pairs": []}"#).assert_error(400, "unknown or missing \"operation\"");
    batch(r#"{"operation": "mset"}"#).assert_error(400, "needs a \"pairs\" array");
    batch(r#"{"operation": "mget", "pairs": []}"#).assert_error(400, "needs a \"keys\" array");
    batch(r#"{"operation": "mset", "pairs": [{"key": 7, "value": "v"}]}"#).assert_error(400, "item 0: the key must be");
    batch(r#"{"operation": "mset", "pairs": [{"key": "", "value": "v"}]}"#).assert_error(400, "the key is empty");
    batch(r#"{"operation": "mset", "pairs": [{"key": "k"}]}"#).assert_error(400, "pair 0: no \"value\"");
    batch(r#"{"operation": "mset", "pairs": [{"key": "k", "value_base64": "!!"}]}"#).assert_error(400, "base64");
    batch(r#"{"operation": "mget", "keys": ["a", null]}"#).assert_error(400, "item 1");
    let six = r#"{"operation": "mget", "keys": ["a", "b", "c", "d", "e", "f"]}"#;
    batch(six).assert_error(413, "limit of 5 (--max-batch)");
    let big = format!(r#"{{"operation": "mset", "pairs": [{{"key": "k", "value": "{}"}}]}}"#, "v".repeat(5000));
    batch(&big).assert_error(413, "limit of 4096 bytes");
    // One value too large for a 128-byte slot: the whole batch is refused.
    let one_too_large = format!(
        r#"{{"operation": "mset", "pairs": [{{"key": "first", "value": "ok"}}, {{"key": "second", "value": "{}"}}]}}"#,
        "v".repeat(200)
    );
    batch(&one_too_large).assert_error(413, "item 1");
    api.get("/stores/e/keys/first").assert_error(404, "Key not found");
    api.post_body("/stores/nostore/batch", br#"{"operation": "mset", "pairs": [{"key": "k", "value": "v"}]}"#)
        .assert_error(404, "Store not found");
    api.post_body("/stores/..%2Fx/batch", br#"{"operation": "mget", "keys": []}"#)
        .assert_error(400, "invalid store name");
    // Reads need no token, writes do.
    let write = br#"{"operation": "mset", "pairs": [{"key": "k", "value": "v"}]}"#;
    let refused = anonymous.post_body("/stores/e/batch", write);
    refused.assert_error(401, "Authorization: Bearer");
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    anonymous.post_body("/stores/e/batch", br#"{"operation": "mdel", "keys": ["k"]}"#).assert_error(401, "token");
    assert_eq!(anonymous.post_body("/stores/e/batch", br#"{"operation": "mget", "keys": ["k"]}"#).status, 200);
    assert_eq!(api.post_body("/stores/e/batch", write).status, 200);
}

#[test]
fn the_key_listing_pages_through_a_prefix() {
    let (_dir, _server, api) = start(|c| c);
    assert_eq!(api.post("/stores/l").status, 201);
    let pairs: Vec<Value> = (0..250)
        .map(|i| json!({"key": format!("user:{i}"), "value": format!("name {i}")}))
        .chain((0..50).map(|i| json!({"key": format!("order:{i}"), "value": "x"})))
        .collect();
    let body = json!({"operation": "mset", "pairs": pairs}).to_string();
    assert_eq!(api.post_body("/stores/l/batch", body.as_bytes()).status, 200);

    let page_through = |prefix: &str, limit: usize| {
        let mut seen = BTreeSet::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let page = api.get(&format!("/stores/l/keys?prefix={prefix}&limit={limit}&cursor={cursor}"));
            assert_eq!(page.status, 200, "{page:?}");
            let page = page.json();
            let keys = page["keys"].as_array().unwrap();
            assert!(keys.len() <= limit);
            for item in keys {
                let key = item["key"].as_str().unwrap().to_string();
                assert!(key.starts_with(prefix), "{key}");
                assert!(item["value_bytes"].as_u64().unwrap() > 0);
                assert!(seen.insert(key), "a key listed twice");
            }
            pages += 1;
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => break,
            }
        }
        (seen, pages)
    };
    let (users, pages) = page_through("user:", 100);
    assert_eq!((users.len(), pages), (250, 3));
    assert_eq!(page_through("", 1000).0.len(), 300);
    assert_eq!(page_through("order:", 50).0.len(), 50);
    assert!(page_through("nobody", 10).0.is_empty());
    let first = api.get("/stores/l/keys?prefix=user:17&limit=20").json(); // user:17 and user:170..179
    let previews: BTreeMap<String, String> = first["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap().to_string(), i["preview"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(previews.len(), 11, "{first}");
    assert_eq!(previews.get("user:17").map(String::as_str), Some("name 17"), "{first}");
    assert_eq!(first["next_cursor"], Value::Null);

    api.get("/stores/l/keys?limit=0").assert_error(400, "limit must be 1 to 1000");
    api.get("/stores/l/keys?limit=1001").assert_error(400, "limit must be 1 to 1000");
    api.get("/stores/l/keys?cursor=abc").assert_error(400, "next_cursor");
    api.get("/stores/l/keys?colour=red").assert_error(400, "colour");
    api.get("/stores/nostore/keys").assert_error(404, "Store not found");
    assert_eq!(api.get("/stores/l/stats").json()["read_waits"], 0, "a scan is not a read that waited");
}

/// Parses the Prometheus text format strictly enough to catch a malformed
/// line: every sample belongs to a family declared with HELP and TYPE.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut declared = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            declared.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(declared.contains(name) || declared.contains(family), "undeclared family: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn metrics_in_the_prometheus_format_agree_with_stats() {
    let (_dir, _server, api) = start(|c| c);
    assert_eq!(api.post("/stores/m").status, 201);
    for i in 0..10 {
        assert_eq!(api.put(&format!("/stores/m/keys/k{i}"), b"v").status, 201);
    }
    api.get("/stores/m/keys/k0");
    api.get("/stores/m/keys/nope");
    let reply = api.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/plain; version=0.0.4"), "{}", reply.content_type);
    let samples = parse_prometheus(&String::from_utf8(reply.body).unwrap());
    let stats = api.get("/stores/m/stats").json();
    let at = |series: &str| *samples.get(series).unwrap_or_else(|| panic!("no {series} in {samples:#?}"));
    assert_eq!(at(r#"maph_http_requests_total{method="PUT",route="/stores/{name}/keys/{*key}",status="201"}"#), 10.0);
    assert_eq!(at(r#"maph_http_requests_total{method="GET",route="/stores/{name}/keys/{*key}",status="404"}"#), 1.0);
    assert_eq!(at(r#"maph_store_keys{store="m"}"#), 10.0);
    assert_eq!(at(r#"maph_store_reads_total{store="m"}"#), 2.0);
    assert_eq!(at(r#"maph_store_writes_total{store="m"}"#), 10.0);
    assert_eq!(at(r#"maph_store_commits_total{store="m"}"#), stats["writer"]["commits"].as_f64().unwrap());
    assert_eq!(at(r#"maph_store_info{store="m",strategy="single-writer"}"#), 1.0);
    let commits = at(r#"maph_store_commits_total{store="m"}"#);
    assert_eq!(at(r#"maph_store_group_commit_size_bucket{store="m",le="+Inf"}"#), commits);
    assert_eq!(at(r#"maph_store_group_commit_size_count{store="m"}"#), commits);
    assert_eq!(at(r#"maph_store_group_commit_size_sum{store="m"}"#), 10.0);
    assert_eq!(
        at(r#"maph_store_lock_wait_seconds_count{store="m"}"#),
        stats["writer"]["lock_acquisitions"].as_f64().unwrap()
    );
    let puts = r#"maph_http_request_duration_seconds_count{route="/stores/{name}/keys/{*key}"}"#;
    assert_eq!(at(puts), 12.0);
    assert!(samples.keys().any(|k| k.starts_with("maph_uptime_seconds")));

    let all = api.get("/stats").json();
    assert_eq!(all["writes_need_token"], false);
    assert_eq!(all["stores"][0]["name"], "m");
    assert_eq!(all["stores"][0]["writer"]["writes"], 10);
    assert!(all["stores"][0]["writer"]["lock_wait_p50_us"].is_u64(), "{all}");
    assert!(all["requests"].as_u64().unwrap() >= 14);
}
