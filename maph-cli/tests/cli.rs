//! The `maph` command driven end to end, as a person or a script would.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const MAPH: &str = env!("CARGO_BIN_EXE_maph");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        &self.stdout
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Asserts a failure with `code`, one line on stderr containing `text`, nothing on stdout.
    #[track_caller]
    fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "stdout: {} stderr: {}", self.stdout, self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "one line: {:?}", self.stderr);
        assert!(self.stderr.starts_with("maph: ") && self.stderr.contains(text), "{:?} lacks {text:?}", self.stderr);
        assert!(self.stdout.is_empty(), "{:?}", self.stdout);
    }
}

fn command(dir: &Path) -> Command {
    let mut command = Command::new(MAPH);
    command.current_dir(dir).env_remove("MAPH_REDIS_URL").env_remove("MAPH_TOKEN");
    command
}

fn maph(dir: &Path, args: &[&str]) -> Run {
    finished(command(dir).args(args).stdin(Stdio::null()).output().expect("run maph"))
}

fn maph_with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Run {
    let mut child =
        command(dir).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    finished(child.wait_with_output().unwrap())
}

fn finished(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn create_set_get_stats_scan_verify_as_a_person_would() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created = maph(d, &["create", "users.maph", "--slots", "1000"]);
    assert!(created.ok().starts_with("created users.maph: 1000 slots of 512 bytes"), "{}", created.stdout);

    assert_eq!(maph(d, &["set", "users.maph", "user:1", "ada"]).ok(), "created user:1\n");
    assert_eq!(maph(d, &["set", "users.maph", "user:1", "grace"]).ok(), "updated user:1\n");
    assert_eq!(maph_with_stdin(d, &["set", "users.maph", "bio"], b"line one\nline two").ok(), "created bio\n");
    assert_eq!(maph(d, &["get", "users.maph", "user:1"]).ok(), "grace\n");
    assert_eq!(maph(d, &["get", "users.maph", "bio"]).ok(), "line one\nline two\n");

    let stats = maph(d, &["stats", "users.maph"]);
    assert!(stats.ok().contains("keys          2 in 1000 slots"), "{}", stats.stdout);
    assert!(stats.stdout.contains("strategy      single-writer"), "{}", stats.stdout);

    let scan = maph(d, &["scan", "users.maph"]);
    let mut lines: Vec<&str> = scan.ok().lines().collect();
    lines.sort();
    assert_eq!(lines, ["bio\tline one\\nline two", "user:1\tgrace"]);

    let verify = maph(d, &["verify", "users.maph"]);
    assert!(verify.ok().contains("1000 slots checked, 2 live, 0 tombstones\nclean"), "{}", verify.stdout);
    assert!(maph(d, &["verify", "--repair", "users.maph"]).ok().contains("repaired 0 slots"));

    assert_eq!(maph(d, &["del", "users.maph", "user:1"]).ok(), "deleted user:1\n");
    maph(d, &["get", "users.maph", "user:1"]).fails(1, "key \"user:1\" not found");
    maph(d, &["del", "users.maph", "user:1"]).fails(1, "not found");
}

#[test]
fn json_output_is_one_parseable_document_per_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created =
        maph(d, &["--json", "create", "s.maph", "--slots", "64", "--slot-size", "128", "--strategy", "flock"]);
    let created = created.json();
    assert_eq!((created["slots"].as_u64(), created["slot_size"].as_u64()), (Some(64), Some(128)));
    assert_eq!(created["strategy"], "flock");

    assert_eq!(maph(d, &["set", "s.maph", "k", "v", "--json"]).json()["outcome"], "created");
    assert_eq!(maph(d, &["--json", "set", "s.maph", "k", "w"]).json()["outcome"], "updated");
    let got = maph(d, &["--json", "get", "s.maph", "k"]).json();
    assert_eq!(got, serde_json::json!({"key": "k", "value": "w"}));
    let stats = maph(d, &["--json", "stats", "s.maph"]).json();
    assert_eq!((stats["size"].as_u64(), stats["strategy"].as_str()), (Some(1), Some("flock")));
    assert_eq!(stats["generation"], 2);
    maph(d, &["set", "s.maph", "k2", "v2"]).ok();
    let scan = maph(d, &["--json", "scan", "s.maph"]);
    let entries: Vec<Value> = scan.ok().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(maph(d, &["--json", "scan", "--limit", "1", "s.maph"]).ok().lines().count(), 1);
    let verify = maph(d, &["--json", "verify", "s.maph"]).json();
    assert_eq!((verify["clean"].as_bool(), verify["live"].as_u64()), (Some(true), Some(2)));
    assert_eq!(maph(d, &["--json", "del", "s.maph", "k"]).json()["outcome"], "deleted");
}

#[test]
fn bad_input_gets_one_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    maph(d, &["create", "a.maph", "--slots", "16"]).ok();
    maph(d, &["create", "a.maph", "--slots", "16"]).fails(2, "already exists");
    maph(d, &["create", "b.maph", "--slots", "16", "--slot-size", "100"]).fails(2, "multiple of 64");
    maph(d, &["create", "b.maph", "--slots", "0"]).fails(2, "slot count is 0");
    maph(d, &["create", "b.maph", "--slots", "16", "--strategy", "carrier-pigeon"]).fails(2, "possible values");
    maph(d, &["create", "b.maph"]).fails(2, "--slots");
    assert!(!d.join("b.maph").exists(), "nothing half-made");
    maph(d, &["get", "missing.maph", "k"]).fails(2, "create it first");
    std::fs::write(d.join("junk.maph"), b"not a store at all").unwrap();
    maph(d, &["stats", "junk.maph"]).fails(2, "not a maph store");
    let long = "x".repeat(600);
    maph(d, &["set", "a.maph", "k", &long]).fails(2, "at most 479 fit");
    maph(d, &["set", "a.maph", &long, "v"]).fails(2, "at most 480");
    maph(d, &["frobnicate"]).fails(2, "unrecognized subcommand");
    maph(d, &["race", "--strategy", "single", "--procs", "0", "r.maph"]).fails(2, "--procs");
    maph(d, &["race", "--strategy", "flock", "--procs", "2", "--increments", "5", "a.maph"])
        .fails(2, "race it with --strategy single");
    assert_eq!(maph(d, &["--json", "get", "a.maph", "k"]).code, 1, "nothing was written by the failures");
}

fn race(dir: &Path, strategy: &str, procs: &str, increments: &str) -> Value {
    let path = format!("race-{strategy}.maph");
    let run =
        maph(dir, &["--json", "race", "--strategy", strategy, "--procs", procs, "--increments", increments, &path]);
    let report = run.json();
    println!("{strategy}: {report}");
    report
}

#[test]
fn races_under_safe_strategies_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for strategy in ["single", "flock", "fcntl"] {
        let report = race(dir.path(), strategy, "3", "1000");
        assert_eq!(report["expected"], 3000, "{report}");
        assert_eq!(report["actual"], 3000, "{report}");
        assert_eq!(report["lost"], 0, "{report}");
        assert_eq!(report["acquisitions"], 3000, "one lock acquisition per increment: {report}");
    }
    // Racing the same store again counts from where the counter stands.
    let again = race(dir.path(), "flock", "2", "500");
    assert_eq!((again["expected"].as_u64(), again["actual"].as_u64()), (Some(1000), Some(1000)));
    let counter = maph(dir.path(), &["get", "race-flock.maph", "race:counter"]);
    assert_eq!(counter.ok(), "4000\n");
    let human = maph(dir.path(), &["race", "--strategy", "single", "--procs", "2", "--increments", "100", "h.maph"]);
    assert!(human
        .ok()
        .starts_with("2 processes x 100 increments under single-writer: expected 200, actual 200, lost 0"));
}

#[test]
fn an_uncoordinated_race_reports_what_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let report = race(dir.path(), "uncoordinated", "3", "5000");
    let (expected, actual, lost) =
        (report["expected"].as_u64().unwrap(), report["actual"].as_u64().unwrap(), report["lost"].as_u64().unwrap());
    assert_eq!(expected, 15_000);
    // Not even actual <= expected holds without coordination: two writers in one
    // slot can mix their digits into a larger number.
    assert!(actual > 0, "{report}");
    assert_eq!(lost, expected.saturating_sub(actual));
    // Whether updates are lost in one run depends on scheduling; the report is what matters here.
}

/// `maph serve` holds every store's writer lease: the command line reads the
/// same file directly, and its writes are refused with a pointer to the server.
#[test]
fn serve_owns_the_writes_and_the_command_line_reads_alongside() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    maph(&data, &["create", "shared.maph", "--slots", "100"]).ok();
    maph(&data, &["set", "shared.maph", "before", "cli"]).ok();

    let mut server = command(dir.path())
        .args(["serve", "data", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let address = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_string();

    let refused = maph(&data, &["set", "shared.maph", "k", "v"]);
    refused.fails(2, "single-writer lease");
    assert!(refused.stderr.contains(&format!("process {}", server.id())), "{}", refused.stderr);
    assert!(refused.stderr.contains("curl -X PUT"), "{}", refused.stderr);

    assert_eq!(http(&address, "PUT /stores/shared/keys/k HTTP/1.1", b"via http"), 201);
    assert_eq!(maph(&data, &["get", "shared.maph", "k"]).ok(), "via http\n", "read directly from the file");
    assert_eq!(maph(&data, &["get", "shared.maph", "before"]).ok(), "cli\n");

    // SAFETY: kill(2) on a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);
    let status = server.wait().unwrap();
    let mut log = String::new();
    server.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "{status:?} {log}");
    assert!(log.contains("flushed and closed"), "{log}");
    assert_eq!(maph(&data, &["set", "shared.maph", "k", "after"]).ok(), "updated k\n", "the lease is free again");
}

/// A minimal HTTP/1.1 request over a plain socket; returns the status code.
fn http(address: &str, request_line: &str, body: &[u8]) -> u16 {
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    let head =
        format!("{request_line}\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(body).unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{response:?}"))
}

/// A redis-server of the test's own on a free loopback port, killed on drop.
struct Redis {
    process: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let mut dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let process = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is needed for this test: install it (scripts/test does: apt-get install redis-server)");
            let mut redis = Redis { process, url: format!("redis://127.0.0.1:{port}/"), _dir: dir };
            if redis.ready(port) {
                return redis;
            }
            // Dropping it kills the server; try another port in a fresh directory.
            drop(redis);
            dir = tempfile::tempdir().unwrap();
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Waits (bounded) until the server answers PING; false if it exited.
    fn ready(&mut self, port: u16) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return false; // the port was taken meanwhile
            }
            if let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut answer = [0u8; 7];
                if socket.write_all(b"PING\r\n").is_ok()
                    && socket.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    return true;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn the_redis_strategy_is_wired_in() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = &redis.url.clone();
    maph(d, &["create", "r.maph", "--slots", "64", "--strategy", "redis"]).ok();
    assert_eq!(maph(d, &["--redis-url", url, "set", "r.maph", "k", "v"]).ok(), "created k\n");
    assert_eq!(maph(d, &["get", "r.maph", "k"]).ok(), "v\n");
    let run = maph(
        d,
        &["--json", "--redis-url", url, "race", "--strategy", "redis", "--procs", "2", "--increments", "200", "r.maph"],
    );
    let report = run.json();
    assert_eq!((report["expected"].as_u64(), report["lost"].as_u64()), (Some(400), Some(0)), "{report}");
    drop(redis);
    // With Redis gone, a write fails with one line that says where it looked.
    maph(d, &["--redis-url", url, "set", "r.maph", "k", "w"]).fails(2, "could not connect to Redis");
    assert_eq!(maph(d, &["get", "r.maph", "k"]).ok(), "v\n", "nothing was written");
}

/// `maph verify --repair` repairs any store, uncoordinated ones included: a
/// slot a writer left mid-write with torn content is cleared, and the store
/// verifies clean afterwards.
#[test]
fn verify_repair_repairs_an_uncoordinated_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    maph(d, &["create", "u.maph", "--slots", "64", "--strategy", "uncoordinated"]).ok();
    maph(d, &["set", "u.maph", "torn-key", "a value that will be torn"]).ok();
    maph(d, &["set", "u.maph", "kept", "intact"]).ok();
    // The slot starts 32 bytes before its key (docs/FORMAT.md): make its
    // version odd and tear a value byte, as a writer dying mid-write would.
    let path = d.join("u.maph");
    let mut bytes = std::fs::read(&path).unwrap();
    let key_at = bytes.windows(8).position(|w| w == b"torn-key").unwrap();
    bytes[key_at - 32] |= 1;
    bytes[key_at + 10] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let before = maph(d, &["--json", "verify", "u.maph"]);
    assert_ne!(before.code, 0, "verify reports the torn slot: {}", before.stdout);
    let repaired = maph(d, &["--json", "verify", "--repair", "u.maph"]).json();
    assert_eq!(repaired["clean"].as_bool(), Some(true), "{repaired}");
    assert_eq!(repaired["repaired"]["cleared"].as_array().map(Vec::len), Some(1), "{repaired}");
    assert_eq!(maph(d, &["get", "u.maph", "kept"]).ok(), "intact\n");
}

/// A copy made with cp keeps the store's identity; `maph new-id` gives it its
/// own, and nothing else changes.
#[test]
fn new_id_gives_a_copy_its_own_identity() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created = maph(d, &["--json", "create", "a.maph", "--slots", "64"]).json();
    maph(d, &["set", "a.maph", "k", "v"]).ok();
    std::fs::copy(d.join("a.maph"), d.join("b.maph")).unwrap();
    let renamed = maph(d, &["--json", "new-id", "b.maph"]).json();
    assert_eq!(renamed["old_uuid"], created["uuid"], "cp kept the id: {renamed}");
    assert_ne!(renamed["uuid"], created["uuid"]);
    assert_eq!(maph(d, &["get", "b.maph", "k"]).ok(), "v\n");
    assert!(maph(d, &["verify", "b.maph"]).ok().contains("clean"));
}

/// `maph create` reserves the file's blocks unless told `--sparse`.
#[test]
fn create_reserves_blocks_unless_sparse() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(maph(d, &["create", "full.maph", "--slots", "4096"]).ok().contains("reserved on disk"));
    assert!(maph(d, &["create", "sparse.maph", "--slots", "4096", "--sparse"]).ok().contains("sparse"));
    let blocks = |name: &str| std::fs::metadata(d.join(name)).unwrap().blocks() * 512;
    let len = std::fs::metadata(d.join("full.maph")).unwrap().len();
    assert!(blocks("full.maph") >= len, "{} of {len} bytes reserved", blocks("full.maph"));
    assert!(blocks("sparse.maph") < len / 2, "{} bytes allocated for a sparse store", blocks("sparse.maph"));
}

/// `maph migrate` refuses to overwrite, and an old-format store is refused by
/// every command with the migrate command in the message.
#[test]
fn an_old_format_store_names_the_migrate_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    maph(d, &["create", "s.maph", "--slots", "64"]).ok();
    let mut bytes = std::fs::read(d.join("s.maph")).unwrap();
    bytes[4] = 1; // format version 1
    std::fs::write(d.join("old.maph"), &bytes).unwrap();
    maph(d, &["get", "old.maph", "k"]).fails(2, "maph migrate old.maph NEW");
    maph(d, &["migrate", "s.maph", "new.maph"]).fails(2, "not 1");
}
