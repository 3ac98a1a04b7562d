//! A private `redis-server` for the Redis rows, or the one `MAPH_REDIS_URL` names.

use std::path::Path;

use maph_testkit::RedisServer;

/// The environment variable that points the Redis rows at an existing server.
pub const REDIS_URL_VAR: &str = "MAPH_REDIS_URL";

/// Where the Redis rows get their server.
#[derive(Debug)]
pub enum RedisSource {
    /// `MAPH_REDIS_URL` was set: used as is.
    External(String),
    /// A `redis-server` this run started on a loopback port (stopped on drop),
    /// by maph-testkit's `RedisServer`, the one the Redis tests use too.
    Private(RedisServer),
    /// Neither: the Redis rows are skipped, for this reason.
    Unavailable(String),
}

impl RedisSource {
    /// `MAPH_REDIS_URL` if set; otherwise a private server if `redis-server`
    /// is on the PATH; otherwise the reason there is none.
    pub fn find_or_start(_scratch: &Path) -> RedisSource {
        if let Ok(url) = std::env::var(REDIS_URL_VAR) {
            if !url.trim().is_empty() {
                return RedisSource::External(url);
            }
        }
        match RedisServer::try_start_own(&["--protected-mode", "yes", "--loglevel", "warning"]) {
            Ok(server) => RedisSource::Private(server),
            Err(reason) => RedisSource::Unavailable(reason),
        }
    }

    /// The URL to connect to, if there is a server.
    pub fn url(&self) -> Option<&str> {
        match self {
            RedisSource::External(url) => Some(url),
            RedisSource::Private(server) => Some(server.url()),
            RedisSource::Unavailable(_) => None,
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            RedisSource::External(_) => format!("the server named by {REDIS_URL_VAR}"),
            RedisSource::Private(server) => {
                let version = RedisServer::version().unwrap_or_else(|| "unknown version".into());
                format!("a private redis-server ({version}) on {}, persistence off", server.url())
            }
            RedisSource::Unavailable(reason) => format!("none: {reason}"),
        }
    }
}
