//! The `maph-server` binary as an operator runs it: start, serve, SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::Api;
use maph_core::{Mode, SingleWriter, Store};

const EXE: &str = env!("CARGO_BIN_EXE_maph-server");

/// Starts the binary on a free port; returns the child and its base URL.
fn launch(data_dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    let mut server = Command::new(EXE)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--port", "0"])
        .args(extra)
        .env_remove("MAPH_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start maph-server");
    let mut line = String::new();
    BufReader::new(server.stdout.as_mut().unwrap()).read_line(&mut line).expect("read the address line");
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (server, url.to_string())
}

#[test]
fn sigterm_finishes_requests_flushes_and_releases_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = launch(dir.path(), &[]);
    let api = Api::new(url);
    assert_eq!(api.post("/stores/persist").status, 201);
    assert_eq!(api.put("/stores/persist/keys/k", b"kept").status, 201);

    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);
    let output = server.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{log}", output.status);
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("flushed and closed") && log.contains("persist"), "{log}");
    assert!(log.contains("uri=/stores/persist/keys/k"), "requests are logged: {log}");

    let store = Store::open(dir.path().join("persist.maph"), Mode::ReadWrite).unwrap();
    assert_eq!(store.get(b"k").unwrap(), Some(b"kept".to_vec()));
    SingleWriter::new(&store).expect("the server released the lease on exit");
}

#[test]
fn the_token_flag_and_its_environment_variable_protect_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = launch(dir.path(), &["--token", "t0ken"]);
    Api::new(url.clone()).post("/stores/x").assert_error(401, "token");
    assert_eq!(Api::new(url).with_token("t0ken").post("/stores/x").status, 201);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn bad_flags_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty_token = Command::new(EXE).arg("--data-dir").arg(dir.path()).args(["--token", ""]).output().unwrap();
    assert!(!empty_token.status.success());
    let text = String::from_utf8_lossy(&empty_token.stderr);
    assert!(text.contains("the token is empty"), "{text}");

    // A port already taken: the message names the address and what to do.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let busy = Command::new(EXE).arg("--data-dir").arg(dir.path()).args(["--port", &port]).output().unwrap();
    assert!(!busy.status.success());
    let text = String::from_utf8_lossy(&busy.stderr);
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("maph-server: could not listen on 127.0.0.1:") && last.contains("--port"), "{text}");
}
