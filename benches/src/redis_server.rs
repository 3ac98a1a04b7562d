//! A private `redis-server` for the Redis rows, or the one `MAPH_REDIS_URL` names.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that points the Redis rows at an existing server.
pub const REDIS_URL_VAR: &str = "MAPH_REDIS_URL";

/// Where the Redis rows get their server.
#[derive(Debug)]
pub enum RedisSource {
    /// `MAPH_REDIS_URL` was set: used as is.
    External(String),
    /// A `redis-server` this run started on a loopback port (stopped on drop).
    Private(PrivateRedis),
    /// Neither: the Redis rows are skipped, for this reason.
    Unavailable(String),
}

impl RedisSource {
    /// `MAPH_REDIS_URL` if set; otherwise a private server if `redis-server`
    /// is on the PATH; otherwise the reason there is none.
    pub fn find_or_start(scratch: &Path) -> RedisSource {
        if let Ok(url) = std::env::var(REDIS_URL_VAR) {
            if !url.trim().is_empty() {
                return RedisSource::External(url);
            }
        }
        match PrivateRedis::start(scratch) {
            Ok(server) => RedisSource::Private(server),
            Err(reason) => RedisSource::Unavailable(reason),
        }
    }

    /// The URL to connect to, if there is a server.
    pub fn url(&self) -> Option<&str> {
        match self {
            RedisSource::External(url) => Some(url),
            RedisSource::Private(server) => Some(&server.url),
            RedisSource::Unavailable(_) => None,
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            RedisSource::External(_) => format!("the server named by {REDIS_URL_VAR}"),
            RedisSource::Private(server) => {
                format!("a private redis-server ({}) on {}, persistence off", server.version, server.url)
            }
            RedisSource::Unavailable(reason) => format!("none: {reason}"),
        }
    }
}

/// A `redis-server` child on 127.0.0.1, persistence off; killed on drop.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Child,
    url: String,
    version: String,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free loopback port, in `dir`, and waits until it answers PING.
    pub fn start(dir: &Path) -> Result<PrivateRedis, String> {
        let version = Command::new("redis-server").arg("--version").output().map_err(|_| {
            format!(
                "redis-server is not installed and {REDIS_URL_VAR} is not set \
                     (Debian: apt-get install redis-server; scripts/bench installs it)"
            )
        })?;
        let version = String::from_utf8_lossy(&version.stdout)
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map_or_else(|| "unknown version".to_string(), |v| format!("v{v}"));
        let mut last_error = String::new();
        // The port is free when we look; another program may take it before
        // redis binds it, so try a few.
        for _ in 0..3 {
            let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            let mut command = Command::new("redis-server");
            let mut child = crate::child::die_with_parent(&mut command)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
                .args(["--protected-mode", "yes", "--loglevel", "warning"])
                .arg("--dir")
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("could not start redis-server: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!("redis-server exited at start ({status})");
                    break;
                }
                if ping(port) {
                    return Ok(PrivateRedis { child, url: format!("redis://127.0.0.1:{port}/"), version });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            if last_error.is_empty() {
                last_error = "redis-server did not answer PING within 10 s".into();
            }
        }
        Err(last_error)
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether a Redis server on `port` answers PING with PONG.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
