//! One connection to Redis, made lazily, remade after a failure, with time
//! limits on everything, and errors that tell an operator what to check.

use std::time::Duration;

use maph_core::{Error, Result};
use redis::{Connection, ErrorKind, RedisError, RedisResult};

use crate::config::{redact, RedisConfig, ENV_URL};
use crate::scripts;
use crate::STRATEGY;

/// What one attempt to take the token found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Ours, with this fence.
    Acquired(u64),
    /// Another owner holds it.
    Busy,
    /// The floor is implausibly far above the counter, which holds this.
    Implausible { counter: u64 },
    /// The counter is at 2⁶³ − 1: Redis can issue no fence above it.
    Exhausted { counter: u64 },
    /// The counter (or the fence in our own token) is not a decimal integer.
    BadCounter(String),
}

/// A connection that reconnects on demand. Not shared: each user (the
/// acquiring threads, the renewal thread) has its own.
pub(crate) struct Link {
    client: redis::Client,
    conn: Option<Connection>,
    url: String,
    password: Option<String>,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl Link {
    /// Checks the URL; connects only when first used.
    pub(crate) fn new(config: &RedisConfig) -> Result<Link> {
        #[cfg(feature = "tls")]
        {
            // rustls needs a process-wide crypto provider; install ring's unless
            // the application already installed one (then this fails harmlessly).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let url = redact(&config.url);
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            let hint = if config.url.starts_with("rediss://") && !cfg!(feature = "tls") {
                "rediss:// (TLS) needs maph-coord-redis built with its `tls` feature".to_string()
            } else {
                format!("{} (expected redis://[user:password@]host[:port][/db])", e.category())
            };
            Error::InvalidConfig(format!("the Redis URL {url} is not usable: {hint}"))
        })?;
        let password = client.get_connection_info().redis_settings().password().map(str::to_string);
        Ok(Link {
            client,
            conn: None,
            url,
            password,
            connect_timeout: config.connect_timeout,
            io_timeout: config.io_timeout,
        })
    }

    /// Runs `op` on a live connection. A connection that fails is dropped (its
    /// replies may be out of step after a timeout); if it was an old one, the
    /// operation is tried once more on a fresh connection, since Redis may
    /// simply have restarted since it was last used. Every script is safe to
    /// run twice.
    fn call<T>(&mut self, what: &str, mut op: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T> {
        let reused = self.conn.is_some();
        match self.attempt(&mut op) {
            Ok(v) => Ok(v),
            Err(e) if reused && is_connection_level(&e) => self.attempt(&mut op).map_err(|e| self.explain(what, &e)),
            Err(e) => Err(self.explain(what, &e)),
        }
    }

    fn attempt<T>(&mut self, op: &mut impl FnMut(&mut Connection) -> RedisResult<T>) -> RedisResult<T> {
        if self.conn.is_none() {
            let conn = self.client.get_connection_with_timeout(self.connect_timeout)?;
            conn.set_read_timeout(Some(self.io_timeout))?;
            conn.set_write_timeout(Some(self.io_timeout))?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let result = op(conn);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// Connects (if needed) and checks that the server answers and accepts
    /// our credentials.
    pub(crate) fn ping(&mut self) -> Result<()> {
        self.call("checking the connection", |c| redis::cmd("PING").query::<String>(c)).map(drop)
    }

    /// Tries once to take the token, issuing a fence above `floor` (see the
    /// acquire script), unless the counter is below `plausible_from`.
    pub(crate) fn acquire(
        &mut self,
        token_key: &str,
        fence_key: &str,
        owner: &str,
        ttl_ms: u64,
        floor: u64,
        plausible_from: u64,
    ) -> Result<Attempt> {
        let reply: Vec<String> = self.call("taking the write token", |c| {
            scripts::ACQUIRE
                .key(token_key)
                .key(fence_key)
                .arg(owner)
                .arg(ttl_ms)
                .arg(floor.to_string())
                .arg(plausible_from.to_string())
                .invoke(c)
        })?;
        let counter = |text: &str| text.parse::<u64>();
        Ok(match reply.as_slice() {
            [status, fence] if status == "acquired" => match counter(fence) {
                Ok(fence) if fence > 0 => Attempt::Acquired(fence),
                _ => Attempt::BadCounter(fence.clone()),
            },
            [status] if status == "busy" => Attempt::Busy,
            [status, value] if status == "implausible" || status == "exhausted" => match counter(value) {
                Ok(value) if status == "implausible" => Attempt::Implausible { counter: value },
                Ok(value) => Attempt::Exhausted { counter: value },
                Err(_) => Attempt::BadCounter(value.clone()),
            },
            [_, value] => Attempt::BadCounter(value.clone()),
            other => {
                return Err(Error::Coordination {
                    strategy: STRATEGY,
                    detail: format!("the acquire script answered {other:?}; is something else using the maph: keys?"),
                })
            }
        })
    }

    /// The fence counter's value (`None` if the key does not exist), exactly.
    pub(crate) fn fence_counter(&mut self, fence_key: &str) -> Result<Option<String>> {
        self.call("reading the fence counter", |c| redis::cmd("GET").arg(fence_key).query::<Option<String>>(c))
    }

    /// Extends the token if it still holds `value`; whether it did.
    pub(crate) fn renew(&mut self, token_key: &str, value: &str, ttl_ms: u64) -> Result<bool> {
        let renewed: i64 =
            self.call("renewing the write token", |c| scripts::RENEW.key(token_key).arg(value).arg(ttl_ms).invoke(c))?;
        Ok(renewed == 1)
    }

    /// Deletes the token if it still holds `value`; whether it did.
    pub(crate) fn release(&mut self, token_key: &str, value: &str) -> Result<bool> {
        let deleted: i64 =
            self.call("releasing the write token", |c| scripts::RELEASE.key(token_key).arg(value).invoke(c))?;
        Ok(deleted == 1)
    }

    /// A failure, in words an operator can act on.
    fn explain(&self, what: &str, e: &RedisError) -> Error {
        let url = &self.url;
        let code = e.code().unwrap_or("");
        let detail = if e.kind() == ErrorKind::AuthenticationFailed || code == "WRONGPASS" {
            format!(
                "Redis at {url} refused the credentials while {what}: check the user and password in the URL \
                 (redis://user:password@host:port/) or in {ENV_URL}"
            )
        } else if code == "NOAUTH" {
            format!(
                "Redis at {url} requires a password ({what}): put it in the URL (redis://:password@host:port/) \
                 or in {ENV_URL}"
            )
        } else if code == "NOPERM" {
            format!(
                "the Redis user may not run what maph needs ({what}): allow GET, SET, INCR, PEXPIRE, DEL, EVAL and \
                 EVALSHA on the maph:* keys (server said: {e})"
            )
        } else if e.to_string().to_ascii_lowercase().contains("certificate") {
            format!(
                "Redis at {url} presented a TLS certificate this process does not trust while {what} ({e}): \
                 add its CA to the system roots or point SSL_CERT_FILE at it"
            )
        } else if e.is_connection_refusal() {
            format!(
                "could not connect to Redis at {url} while {what}: connection refused. Is redis-server running \
                 there? Pass the right URL to RedisConfig or set {ENV_URL}"
            )
        } else if e.is_timeout() {
            format!(
                "Redis at {url} did not answer within {:?} while {what}: check that the server is up and \
                 reachable (and {ENV_URL}), or raise the timeouts in RedisConfig",
                self.io_timeout.max(self.connect_timeout)
            )
        } else if is_connection_level(e) {
            format!(
                "lost the connection to Redis at {url} while {what} ({e}): is redis-server still running? \
                 Check {ENV_URL}"
            )
        } else {
            format!("Redis at {url} failed while {what}: {e}")
        };
        Error::Coordination { strategy: STRATEGY, detail: self.scrub(detail) }
    }

    /// Removes the password from a message, should a library error ever echo it.
    fn scrub(&self, message: String) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => message.replace(p.as_str(), "***"),
            _ => message,
        }
    }
}

/// Errors after which the connection cannot be trusted (and a fresh one may work).
fn is_connection_level(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}
