//! A real `redis-server` for tests and benchmarks: started on a free loopback
//! port with persistence off, ready when it answers PING, killed when dropped.
//!
//! Set `MAPH_REDIS_URL` to use a running server instead ([`RedisServer::start`]);
//! tests that stop or restart the server always start their own
//! ([`RedisServer::start_own`]). No Redis client library is needed: readiness is
//! checked with an inline `PING` over a plain TCP connection.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The conventional variable naming a Redis server to use instead of starting one.
pub const ENV_URL: &str = "MAPH_REDIS_URL";
const BINARY: &str = "redis-server";
/// How long a starting server may take to answer PING (generous: the machine
/// may be busy compiling).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A redis-server this process owns, or the one `MAPH_REDIS_URL` names.
#[derive(Debug)]
pub struct RedisServer {
    own: Option<Own>,
    url: String,
}

#[derive(Debug)]
struct Own {
    process: Option<std::process::Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// The server in `MAPH_REDIS_URL` if set, otherwise one of our own.
    /// Panics with one clear message if neither is possible.
    pub fn start() -> RedisServer {
        match std::env::var(ENV_URL) {
            Ok(url) if !url.trim().is_empty() => RedisServer { own: None, url: url.trim().to_string() },
            _ => RedisServer::start_own(&[]),
        }
    }

    /// Whether a server can be had at all: `MAPH_REDIS_URL` is set or the
    /// `redis-server` binary is installed. For code that skips Redis rows
    /// instead of failing (the benchmark).
    pub fn available() -> bool {
        std::env::var(ENV_URL).is_ok_and(|u| !u.trim().is_empty()) || binary_installed()
    }

    /// A server of our own, with extra command-line arguments (for example
    /// `["--requirepass", "pw"]`). Panics with a clear message if it cannot start.
    pub fn start_own(extra_args: &[&str]) -> RedisServer {
        require_binary();
        RedisServer::try_start_own(extra_args).unwrap_or_else(|reason| panic!("{reason}"))
    }

    /// As [`start_own`](Self::start_own), but says why instead of panicking (for
    /// the benchmark, whose Redis rows are skipped without a server).
    pub fn try_start_own(extra_args: &[&str]) -> Result<RedisServer, String> {
        if !binary_installed() {
            return Err(format!(
                "redis-server is not installed and {ENV_URL} is not set (Debian: apt-get install redis-server)"
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("maph-redis-")
            .tempdir()
            .map_err(|e| format!("no directory for redis-server: {e}"))?;
        let mut own =
            Own { process: None, port: 0, dir, extra_args: extra_args.iter().map(|s| s.to_string()).collect() };
        // Another process may take the free port between our check and the
        // server's bind; then the server exits and we try another port.
        for _ in 0..5 {
            own.port = free_port();
            if own.launch()? {
                let url = format!("redis://127.0.0.1:{}/", own.port);
                return Ok(RedisServer { own: Some(own), url });
            }
        }
        Err(format!("redis-server did not start on any of 5 free ports; its log:\n{}", own.log()))
    }

    /// The server's version as `redis-server --version` prints it (`v7.0.15`).
    pub fn version() -> Option<String> {
        let out = Command::new(BINARY).arg("--version").output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map(|v| format!("v{v}"))
    }

    /// The server's URL (without any password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with a password.
    pub fn url_with_password(&self, password: &str) -> String {
        self.url.replacen("redis://", &format!("redis://:{password}@"), 1)
    }

    /// Whether this server was started here (and so may be stopped or restarted).
    pub fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// Kills the server (our own only).
    pub fn stop(&mut self) {
        self.own.as_mut().expect("only a server of our own can be stopped").kill();
    }

    /// Kills the server and starts a fresh one (empty: no persistence) on the
    /// same port, ready when this returns.
    pub fn restart(&mut self) {
        let own = self.own.as_mut().expect("only a server of our own can be restarted");
        own.kill();
        let restarted = own.launch().unwrap_or_else(|reason| panic!("{reason}"));
        assert!(restarted, "redis-server did not restart on port {}; its log:\n{}", own.port, own.log());
    }
}

impl Own {
    /// Starts the server on `self.port`; true once it answers PING, false if it
    /// exited (port taken), an error if it never answered.
    fn launch(&mut self) -> Result<bool, String> {
        let log = self.dir.path().join("redis.log");
        let mut command = Command::new(BINARY);
        // Killed with us even if we are killed: no orphaned servers.
        let mut process = crate::die_with_parent(&mut command)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not run {BINARY}: {e}"))?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            if let Ok(Some(_)) = process.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = process.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                eprintln!("redis-server exited at start on port {}: {stderr}{}", self.port, self.log());
                return Ok(false);
            }
            if answers_ping(self.port) {
                self.process = Some(process);
                return Ok(true);
            }
            if started.elapsed() > READY_WITHIN {
                let _ = process.kill();
                let _ = process.wait();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {READY_WITHIN:?}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            // Polling a real condition (the server answering), with growing pauses.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a server on `port` answers an inline PING: `+PONG`, or `-NOAUTH`
/// from a server started with `--requirepass` (which also proves it is up).
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

fn binary_installed() -> bool {
    Command::new(BINARY).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn require_binary() {
    match Command::new(BINARY).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "redis-server is not installed, and these tests need a real one. Run scripts/test (it installs it), \
             or apt-get install redis-server, or set {ENV_URL} to a running server."
        ),
        Err(e) => panic!("could not run {BINARY}: {e}"),
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("its address").port()
}
