//! What a server is started with, and the command-line flags that set it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use maph_core::format::DEFAULT_SLOT_SIZE;

/// Slots of a store made by `POST /stores/{name}` without a `slots` parameter
/// (the figure maph v3's server used).
pub const DEFAULT_SLOTS: u64 = 10_000;

/// Default cap on a request body. A value can never be larger than a slot, and
/// the largest slot is 1 MiB, so this default refuses nothing a store could hold.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Default cap on the file size of a store, created over HTTP or grown by the
/// server, so one client cannot claim the whole disk.
pub const DEFAULT_MAX_STORE_BYTES: u64 = 16 << 30;

/// Default cap on the items of one `POST /stores/{name}/batch`.
pub const DEFAULT_MAX_BATCH: usize = 10_000;

/// Default time a read waits for a slot that stays mid-write before it answers
/// 503 (maph-core's default read patience).
pub const DEFAULT_READ_PATIENCE: Duration = maph_core::DEFAULT_READ_PATIENCE;

/// Everything a [`Server`](crate::Server) needs to start.
///
/// ```
/// use maph_server::ServerConfig;
/// let config = ServerConfig::new("/var/lib/maph").port(0).token(Some("s3cret".into()));
/// assert_eq!(config.bind.to_string(), "127.0.0.1");
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Directory of stores, one `<name>.maph` file each (created if missing).
    pub data_dir: PathBuf,
    /// Address to listen on (default 127.0.0.1: reachable from this machine only).
    pub bind: IpAddr,
    /// Port to listen on (default 8080; 0 picks a free one).
    pub port: u16,
    /// When set, writes need `Authorization: Bearer <token>`; reads stay open.
    pub token: Option<String>,
    /// Request bodies above this are refused (413) before they are read whole.
    pub max_body_bytes: usize,
    /// Slots of a store created without a `slots` parameter.
    pub default_slots: u64,
    /// Slot size of a store created without a `slot_size` parameter.
    pub default_slot_size: u32,
    /// Largest store file `POST /stores/{name}` may create or a store may grow to.
    pub max_store_bytes: u64,
    /// Most items (pairs or keys) in one batch request.
    pub max_batch: usize,
    /// How long a read waits for a slot that stays mid-write (a writer in
    /// another process stopped inside a write, say) before answering 503. The
    /// wait happens on a blocking thread, never on an async worker.
    pub read_patience: Duration,
    /// Writes that may wait in one store's queue before senders wait too.
    pub queue_capacity: usize,
    /// Most queued writes committed together in one group.
    pub max_group: usize,
}

impl ServerConfig {
    /// Defaults for serving `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            default_slots: DEFAULT_SLOTS,
            default_slot_size: DEFAULT_SLOT_SIZE,
            max_store_bytes: DEFAULT_MAX_STORE_BYTES,
            max_batch: DEFAULT_MAX_BATCH,
            read_patience: DEFAULT_READ_PATIENCE,
            queue_capacity: 1024,
            max_group: 256,
        }
    }

    /// Sets the port (0 for any free one).
    pub fn port(mut self, port: u16) -> ServerConfig {
        self.port = port;
        self
    }

    /// Sets or clears the bearer token required for writes.
    pub fn token(mut self, token: Option<String>) -> ServerConfig {
        self.token = token;
        self
    }

    /// Sets the request body cap.
    pub fn max_body_bytes(mut self, bytes: usize) -> ServerConfig {
        self.max_body_bytes = bytes;
        self
    }
}

/// The server's command-line flags, shared by `maph-server` and `maph serve`
/// (each adds how it names the data directory).
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on; the default keeps the server private to this machine.
    #[arg(long, env = "MAPH_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, env = "MAPH_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Bearer token required for writes (PUT, DELETE, POST); reads stay open.
    #[arg(long, env = "MAPH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Request bodies above this many bytes are refused with 413.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Slots of a store created by `POST /stores/{name}` without `?slots=`.
    #[arg(long, default_value_t = DEFAULT_SLOTS)]
    pub default_slots: u64,
    /// Slot size (bytes, a multiple of 64) of a store created without `?slot_size=`.
    #[arg(long, default_value_t = DEFAULT_SLOT_SIZE)]
    pub default_slot_size: u32,
    /// Largest store file, in bytes, that `POST /stores/{name}` may create or
    /// that a store may grow to.
    #[arg(long, default_value_t = DEFAULT_MAX_STORE_BYTES)]
    pub max_store_bytes: u64,
    /// Most pairs or keys in one `POST /stores/{name}/batch`.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH)]
    pub max_batch: usize,
}

impl ServeArgs {
    /// The configuration these flags describe, serving `data_dir`. Refuses an
    /// empty token, which would otherwise look like protection and be none.
    pub fn into_config(self, data_dir: PathBuf) -> Result<ServerConfig, String> {
        if self.token.as_deref() == Some("") {
            return Err("the token is empty: give a non-empty --token (or MAPH_TOKEN), or none at all".into());
        }
        if self.max_body_bytes == 0 {
            return Err("--max-body-bytes must be at least 1".into());
        }
        if self.max_batch == 0 {
            return Err("--max-batch must be at least 1".into());
        }
        Ok(ServerConfig {
            bind: self.bind,
            port: self.port,
            token: self.token,
            max_body_bytes: self.max_body_bytes,
            default_slots: self.default_slots,
            default_slot_size: self.default_slot_size,
            max_store_bytes: self.max_store_bytes,
            max_batch: self.max_batch,
            ..ServerConfig::new(data_dir)
        })
    }
}
