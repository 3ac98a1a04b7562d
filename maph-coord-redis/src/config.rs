//! How a [`RedisCoordinator`](crate::RedisCoordinator) reaches Redis and how long its leases last.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use maph_core::{Error, Result};

/// The environment variable that, by convention, names the Redis server
/// (`redis://[user:password@]host[:port][/db]`). Read by [`RedisConfig::from_env_or`].
pub const ENV_URL: &str = "MAPH_REDIS_URL";

/// Where Redis is, what the token is called, and the lease timings.
///
/// Every setting has a default except the URL. Durations are checked by
/// [`validate`](Self::validate) (called by the coordinator when it is made), so
/// a bad combination is refused before anything talks to Redis.
///
/// ```
/// use std::time::Duration;
/// use maph_coord_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://:s3cret@cache.internal:6380/2")
///     .name("users")
///     .ttl(Duration::from_secs(3));
/// config.validate()?;
/// assert_eq!(config.token_key_for(None), "maph:{users}:token");
/// assert_eq!(config.fence_key_for(None), "maph:{users}:fence");
/// assert_eq!(config.renewal_interval(), Duration::from_secs(1)); // a third of the ttl
/// // The password never appears in messages or debug output.
/// assert_eq!(config.redacted_url(), "redis://:***@cache.internal:6380/2");
/// assert!(!format!("{config:?}").contains("s3cret"));
///
/// // Nonsense is refused with a message that says what to change.
/// let bad = RedisConfig::new("redis://127.0.0.1/").ttl(Duration::from_millis(1));
/// assert!(bad.validate().unwrap_err().to_string().contains("ttl"));
/// # Ok::<(), maph_core::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    /// The server: `redis://[user:password@]host[:port][/db]` (or `rediss://`
    /// with the `tls` feature).
    pub url: String,
    /// The token's name; `None`: the store's file name.
    pub name: Option<String>,
    /// How long Redis keeps the token without a renewal.
    pub ttl: Duration,
    /// How often a held token is renewed; `None`: a third of the ttl.
    pub renew_every: Option<Duration>,
    /// How much earlier than Redis the holder ends its lease; `None`: a tenth of the ttl.
    pub clock_margin: Option<Duration>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on one command's round trip.
    pub io_timeout: Duration,
    /// First and largest sleep between attempts to take a busy token.
    pub retry_sleeps: (Duration, Duration),
    /// Whether every write confirms the token with Redis first.
    pub confirm_before_write: bool,
}

impl RedisConfig {
    /// Default lease length: how long a crashed holder can keep others waiting.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
    /// Default limit on establishing a connection (TCP connect and AUTH/SELECT).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default limit on one command's round trip.
    pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(1);
    /// Shortest lease accepted: Redis expiries have millisecond resolution, and a
    /// renewal thread must get several chances within one lease.
    pub const MIN_TTL: Duration = Duration::from_millis(50);
    /// Longest name accepted (it is part of two Redis keys).
    pub const MAX_NAME_LEN: usize = 200;

    /// A configuration for the Redis server at `url` (`redis://`, or `rediss://`
    /// with the `tls` feature; user and password go in the URL).
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            name: None,
            ttl: Self::DEFAULT_TTL,
            renew_every: None,
            clock_margin: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            io_timeout: Self::DEFAULT_IO_TIMEOUT,
            retry_sleeps: (Duration::from_micros(100), Duration::from_millis(10)),
            confirm_before_write: false,
        }
    }

    /// The URL in [`ENV_URL`] (`MAPH_REDIS_URL`) if it is set and not empty,
    /// otherwise `default_url`: the caller's choice, overridable per deployment.
    pub fn from_env_or(default_url: &str) -> RedisConfig {
        RedisConfig::new(choose_url(std::env::var(ENV_URL).ok(), default_url))
    }

    /// Names the token. Every writer of one store must use the same name; the
    /// default is the store's file name (so `/data/users.maph` → `users.maph`).
    /// Two stores with the same file name on one Redis share a token unless named.
    pub fn name(mut self, name: impl Into<String>) -> RedisConfig {
        self.name = Some(name.into());
        self
    }

    /// How long Redis keeps the token without a renewal (default
    /// [`DEFAULT_TTL`](Self::DEFAULT_TTL)). It bounds how long a holder that
    /// died keeps the others waiting, and how long a paused holder can be
    /// away before its lease ends.
    pub fn ttl(mut self, ttl: Duration) -> RedisConfig {
        self.ttl = ttl;
        self
    }

    /// How often a held token is renewed (default a third of the ttl).
    pub fn renew_every(mut self, every: Duration) -> RedisConfig {
        self.renew_every = Some(every);
        self
    }

    /// How much earlier than Redis the holder considers its lease over (default
    /// a tenth of the ttl): room for clock-rate differences between this machine
    /// and the Redis server, and for the time between the check and the write.
    pub fn clock_margin(mut self, margin: Duration) -> RedisConfig {
        self.clock_margin = Some(margin);
        self
    }

    /// Limit on establishing a connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Limit on one command's round trip (default 1 s). A Redis that stops
    /// answering produces an error after this long instead of a hang.
    pub fn io_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.io_timeout = timeout;
        self
    }

    /// Sleeps between attempts while another process holds the token: from
    /// `first` doubling to `max`, each jittered (default 100 µs to 10 ms).
    pub fn retry_sleeps(mut self, first: Duration, max: Duration) -> RedisConfig {
        self.retry_sleeps = (first, max);
        self
    }

    /// Confirms the token with Redis (a compare-and-renew round trip) before
    /// every write, not only in the background (default off). With it, a token
    /// deleted or taken over behind the holder's back stops the very next
    /// write; without it, the renewal thread notices within
    /// [`renew_every`](Self::renew_every). Worth it in lease mode (one token,
    /// many writes); redundant when every write acquires the token anyway.
    pub fn confirm_before_write(mut self, confirm: bool) -> RedisConfig {
        self.confirm_before_write = confirm;
        self
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// The renewal interval in force (the configured one, or a third of the ttl).
    pub fn renewal_interval(&self) -> Duration {
        self.renew_every.unwrap_or(self.ttl / 3)
    }

    /// The clock margin in force (the configured one, or a tenth of the ttl).
    pub fn lease_margin(&self) -> Duration {
        self.clock_margin.unwrap_or(self.ttl / 10)
    }

    /// The token's name: the configured one, or the file name of `store_path`.
    pub fn name_for(&self, store_path: Option<&Path>) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let file = store_path.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
        default_name(file.as_deref().unwrap_or("store"))
    }

    /// The Redis key holding the token: `maph:{<name>}:token`. The braces are a
    /// Redis Cluster hash tag, so the token and its fence counter live on one
    /// node and one script can update both.
    pub fn token_key_for(&self, store_path: Option<&Path>) -> String {
        format!("maph:{{{}}}:token", self.name_for(store_path))
    }

    /// The Redis key of the fencing counter: `maph:{<name>}:fence`.
    pub fn fence_key_for(&self, store_path: Option<&Path>) -> String {
        format!("maph:{{{}}}:fence", self.name_for(store_path))
    }

    /// Checks that the settings make sense together; the error says which to change.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        if self.url.trim().is_empty() {
            return invalid(format!("the Redis URL is empty; pass one like redis://127.0.0.1:6379/ or set {ENV_URL}"));
        }
        if let Some(name) = &self.name {
            check_name(name)?;
        }
        if self.ttl < Self::MIN_TTL {
            return invalid(format!("the lease ttl is {:?}; use at least {:?}", self.ttl, Self::MIN_TTL));
        }
        if self.ttl.as_millis() > i64::MAX as u128 {
            return invalid(format!("the lease ttl {:?} is too long for Redis; use hours at most", self.ttl));
        }
        let margin = self.lease_margin();
        if margin >= self.ttl / 2 {
            return invalid(format!(
                "the clock margin {margin:?} is half the ttl {:?} or more; use a smaller margin or a longer ttl",
                self.ttl
            ));
        }
        let every = self.renewal_interval();
        if every.is_zero() || every >= self.ttl - margin {
            return invalid(format!(
                "renewing every {every:?} cannot keep a {:?} lease (minus a {margin:?} margin) alive; \
                 renew more often (a third of the ttl is the default)",
                self.ttl
            ));
        }
        if self.connect_timeout.is_zero() || self.io_timeout.is_zero() {
            return invalid("the connect and I/O timeouts must be longer than zero".to_string());
        }
        let (first, max) = self.retry_sleeps;
        if first.is_zero() || max < first {
            return invalid(format!(
                "retry sleeps from {first:?} to {max:?}: the first must be above zero and not above the largest"
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("renew_every", &self.renewal_interval())
            .field("clock_margin", &self.lease_margin())
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("retry_sleeps", &self.retry_sleeps)
            .field("confirm_before_write", &self.confirm_before_write)
            .finish()
    }
}

/// The environment's URL when it holds one, else the caller's default.
fn choose_url(from_env: Option<String>, default_url: &str) -> String {
    match from_env {
        Some(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => default_url.to_string(),
    }
}

/// A usable name from a file name: braces (Redis Cluster hash-tag delimiters),
/// spaces and control characters become `_`.
fn default_name(file_name: &str) -> String {
    let cleaned: String = file_name
        .chars()
        .take(RedisConfig::MAX_NAME_LEN)
        .map(|c| if c == '{' || c == '}' || c.is_whitespace() || c.is_control() { '_' } else { c })
        .collect();
    if cleaned.is_empty() {
        "store".to_string()
    } else {
        cleaned
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= RedisConfig::MAX_NAME_LEN
        && !name.chars().any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "the token name {name:?} is not usable: give 1 to {} characters without braces, spaces or control characters",
            RedisConfig::MAX_NAME_LEN
        )))
    }
}

/// `scheme://user:password@host/...` → `scheme://user:***@host/...`; anything
/// without a password is returned as it is.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    // The userinfo ends at the last '@' before the path.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..scheme_end], &userinfo[..colon], &rest[at..]),
        // `redis://secret@host` puts a bare password in the user position.
        None if !userinfo.is_empty() => format!("{}***{}", &url[..scheme_end], &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_password_form() {
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("redis://alice:pw@h"), "redis://alice:***@h");
        assert_eq!(redact("rediss://alice:p@ss@h/0"), "rediss://alice:***@h/0");
        assert_eq!(redact("redis://pw@h"), "redis://***@h");
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(redact("redis://h/path@x"), "redis://h/path@x");
    }

    #[test]
    fn names_default_to_a_cleaned_file_name() {
        let c = RedisConfig::new("redis://h/");
        assert_eq!(c.name_for(Some(Path::new("/data/users.maph"))), "users.maph");
        assert_eq!(c.name_for(Some(Path::new("/data/we{ir}d name"))), "we_ir_d_name");
        assert_eq!(c.name_for(None), "store");
        assert_eq!(c.clone().name("x").name_for(Some(Path::new("/a/b"))), "x");
    }

    #[test]
    fn validation_explains_bad_settings() {
        let base = RedisConfig::new("redis://h/");
        base.validate().unwrap();
        let msg = |c: RedisConfig| c.validate().unwrap_err().to_string();
        assert!(msg(RedisConfig::new(" ")).contains(ENV_URL));
        assert!(msg(base.clone().name("a{b}")).contains("braces"));
        assert!(msg(base.clone().name("")).contains("1 to"));
        assert!(msg(base.clone().ttl(Duration::from_millis(10))).contains("at least"));
        assert!(msg(base.clone().clock_margin(Duration::from_secs(3))).contains("margin"));
        assert!(msg(base.clone().renew_every(Duration::from_secs(5))).contains("renew more often"));
        assert!(msg(base.clone().io_timeout(Duration::ZERO)).contains("timeouts"));
        assert!(msg(base.retry_sleeps(Duration::from_millis(5), Duration::from_millis(1))).contains("retry"));
    }

    #[test]
    fn the_environment_overrides_the_default_url() {
        assert_eq!(choose_url(Some(" redis://env:1/ ".into()), "redis://default/"), "redis://env:1/");
        assert_eq!(choose_url(Some("".into()), "redis://default/"), "redis://default/");
        assert_eq!(choose_url(None, "redis://default/"), "redis://default/");
    }
}
