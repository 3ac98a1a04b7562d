//! Arbitrary HTTP requests against a real maph-server on a loopback port: every
//! request gets an answer, every error answer is a JSON `{"error": …}`, nothing
//! outside the data directory is created, and no handler ever panics (a panic
//! aborts the fuzzer, which reports it as a crash).
#![no_main]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use maph_server::{ServerConfig, ServerHandle};

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Put,
    Post,
    Delete,
    Patch,
    Other(u8),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    Stores,
    Keys,
    Stats,
    Optimize,
    Health,
    Batch,
    Rescan,
    Metrics,
    Dashboard,
    Name(u8),
    Raw(String),
    Encoded(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Request {
    method: Method,
    path: Vec<Segment>,
    query: Option<String>,
    token: Option<String>,
    body: Body,
    lie_about_length: Option<u16>,
}

/// A request body: raw bytes, or a batch request of arbitrary items.
#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Batch { operation: u8, items: Vec<(String, Option<String>)> },
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Raw(bytes) => bytes.clone(),
            Body::Batch { operation, items } => {
                let operation = ["mset", "mget", "mdel", "other"][*operation as usize % 4];
                let pairs: Vec<_> =
                    items.iter().take(64).map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect();
                let keys: Vec<_> = items.iter().take(64).map(|(k, _)| k).collect();
                serde_json::json!({"operation": operation, "pairs": pairs, "keys": keys}).to_string().into_bytes()
            }
        }
    }
}

struct Fixture {
    server: ServerHandle,
    outside: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // A handler panic must not be swallowed by the async runtime.
        std::panic::set_hook(Box::new(|info| {
            eprintln!("panic: {info}");
            std::process::abort();
        }));
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let server = ServerHandle::start(ServerConfig::new(&data).port(0).max_body_bytes(4096)).unwrap();
        Fixture { server, outside: dir.path().to_path_buf(), _dir: dir }
    })
}

fn render(request: &Request) -> Vec<u8> {
    let method = match &request.method {
        Method::Get => "GET".to_string(),
        Method::Put => "PUT".into(),
        Method::Post => "POST".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(b) => format!("X{}", b % 26),
    };
    let mut path = String::new();
    for segment in request.path.iter().take(6) {
        path.push('/');
        match segment {
            Segment::Stores => path.push_str("stores"),
            Segment::Keys => path.push_str("keys"),
            Segment::Stats => path.push_str("stats"),
            Segment::Optimize => path.push_str("optimize"),
            Segment::Health => path.push_str("health"),
            Segment::Batch => path.push_str("batch"),
            Segment::Rescan => path.push_str("rescan"),
            Segment::Metrics => path.push_str(["metrics", "stats"][path.len() % 2]),
            Segment::Dashboard => path.push_str("dashboard"),
            Segment::Name(n) => path.push_str(["users", "s1", "..", "%2E%2E", "..%2Fetc", "a-b_c"][*n as usize % 6]),
            Segment::Raw(s) => path.extend(s.chars().filter(|c| c.is_ascii_graphic() && *c != '?' && *c != '#').take(80)),
            Segment::Encoded(bytes) => bytes.iter().take(40).for_each(|b| path.push_str(&format!("%{b:02X}"))),
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    if let Some(query) = &request.query {
        path.push('?');
        path.extend(query.chars().filter(|c| c.is_ascii_graphic() && *c != '#').take(80));
    }
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(token) = &request.token {
        let token: String = token.chars().filter(|c| c.is_ascii_graphic()).take(40).collect();
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = request.body.bytes();
    let length = request.lie_about_length.map_or(body.len(), usize::from);
    head.push_str(&format!("Content-Length: {length}\r\n\r\n"));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

fuzz_target!(|request: Request| {
    let fixture = fixture();
    let mut stream = TcpStream::connect(fixture.server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(&render(&request));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    if let Some(status) = text.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) {
        if status >= 400 && status != 408 {
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
            assert!(body.is_empty() || body.contains("\"error\""), "error without a JSON error body: {text}");
        }
    }
    // Nothing escapes the data directory.
    let names: Vec<_> = std::fs::read_dir(&fixture.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.iter().all(|n| n == "data"), "created outside the data directory: {names:?}");
});
