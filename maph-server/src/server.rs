//! Starting, running and stopping a server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::metrics::HttpMetrics;
use crate::registry::{NewStore, Registry};
use crate::routes::{router, AppState};
use crate::ServerConfig;

/// Why a server could not start or stopped badly.
#[derive(Debug)]
pub struct ServerError(String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// A server bound to its port and serving its data directory: every store in
/// it is open for writing and its writer lease held, so no other process can
/// write it while any process may read it with `Store::open(path, Mode::ReadOnly)`.
///
/// ```no_run
/// # async fn demo() -> Result<(), maph_server::ServerError> {
/// use maph_server::{Server, ServerConfig};
/// let server = Server::bind(ServerConfig::new("data").port(0)).await?;
/// println!("listening on {}", server.local_addr());
/// server.run(maph_server::shutdown_signal()).await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Opens the data directory, serves every store in it, and binds the port.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let address = SocketAddr::new(config.bind, config.port);
        if !config.bind.is_loopback() && config.token.is_none() {
            tracing::warn!(%address, "listening beyond this machine without a token: anyone who can reach it can write");
        }
        let listener = TcpListener::bind(address).await.map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => " (another program uses this port: pick another with --port)",
                std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges: pick another with --port)",
                _ => "",
            };
            ServerError(format!("could not listen on {address}: {e}{hint}"))
        })?;
        let registry = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || Registry::open(&config))
                .await
                .map_err(|e| ServerError(format!("opening the data directory failed: {e}")))?
                .map_err(|e| ServerError(e.to_string()))?
        };
        let state = AppState {
            registry: Arc::new(registry),
            token: config.token.map(Arc::from),
            defaults: NewStore { slots: config.default_slots, slot_size: config.default_slot_size },
            max_body_bytes: config.max_body_bytes,
            max_batch: config.max_batch,
            http: Arc::new(HttpMetrics::new()),
        };
        Ok(Server { listener, state })
    }

    /// The address it listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, lets requests in flight finish, then
    /// has every store's writer finish its queue and flush, and releases the leases.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let registry = self.state.registry.clone();
        tracing::info!(address = %self.local_addr(), data_dir = %registry.dir().display(), "listening");
        let served = axum::serve(self.listener, router(self.state)).with_graceful_shutdown(shutdown).await;
        tracing::info!("stopping: flushing every store");
        let failures = tokio::task::spawn_blocking(move || registry.close_all())
            .await
            .map_err(|e| ServerError(format!("closing the stores failed: {e}")))?;
        served.map_err(|e| ServerError(format!("the server failed: {e}")))?;
        if let Some((name, error)) = failures.first() {
            return Err(ServerError(format!("store '{name}' did not close cleanly: {error}")));
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Sends log lines (requests included) to standard error; `RUST_LOG` filters
/// them (default `info`). Does nothing if logging is already set up.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).try_init();
}

/// Runs a server in the foreground until SIGINT or SIGTERM: what `maph-server`
/// and `maph serve` do. Prints `listening on http://ADDR` on standard output
/// once it accepts connections (so scripts can read the port when it is 0).
pub fn run_until_signal(config: ServerConfig) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("maph-http")
        .build()
        .map_err(|e| ServerError(format!("could not start the async runtime: {e}")))?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        println!("listening on http://{}", server.local_addr());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run(shutdown_signal()).await
    })
}

/// A server running on a thread of its own, for tests and for embedding in a
/// program that is not async. Stops (flushing every store) on [`stop`](Self::stop)
/// or drop.
///
/// ```
/// use maph_server::{ServerConfig, ServerHandle};
/// let dir = tempfile::tempdir().unwrap();
/// let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0)).unwrap();
/// assert!(server.url().starts_with("http://127.0.0.1:"));
/// server.stop().unwrap();
/// ```
pub struct ServerHandle {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl ServerHandle {
    /// Binds and starts serving; returns once the port accepts connections.
    pub fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("maph-http")
            .build()
            .map_err(|e| ServerError(format!("could not start the async runtime: {e}")))?;
        let server = runtime.block_on(Server::bind(config))?;
        let address = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("maph-server".into())
            .spawn(move || {
                runtime.block_on(server.run(async {
                    let _ = stopped.await;
                }))
            })
            .map_err(|e| ServerError(format!("could not start the server thread: {e}")))?;
        Ok(ServerHandle { address, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDR`, to prefix paths with.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops gracefully: requests in flight finish, every store is flushed.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| ServerError("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
