//! # maph-server
//!
//! The REST single writer of the hybrid architecture: a server owns every write
//! to a directory of maph stores, while any local process reads the same files
//! directly with `Store::open(path, Mode::ReadOnly)`, at memory speed and
//! without asking the server.
//!
//! - The server holds each store's [`SingleWriter`](maph_core::SingleWriter)
//!   lease for as long as it serves it: another process that tries to write
//!   gets `WriterBusy`, readers are never blocked.
//! - Writes go to one writer thread per store through a bounded queue; the
//!   thread commits the writes waiting in the queue together (group commit) and
//!   answers each request on its own. Reads are served straight from the mapping.
//! - Stores grow: past half full, the writer thread rebuilds a store twice as
//!   large in the background and swaps it in; `POST /stores/{name}/optimize`
//!   rebuilds it sized for its keys the same way. Readers in other processes
//!   notice (`Store::is_retired`) and reopen.
//! - A dashboard at `/`, compiled into the binary; `GET /metrics` in the
//!   Prometheus text format.
//!
//! ## The API (maph v3's, so its clients work unchanged, plus a few additions)
//!
//! | request | success | errors |
//! |---|---|---|
//! | `GET /` | the dashboard | |
//! | `GET /health` | 200 `{"status": "ok", "stores": n}` | |
//! | `GET /stores` | 200 `[{"name", "size", "load_factor"}]` | |
//! | `POST /stores/{name}` (optional `?slots=&slot_size=` or JSON body) | 201 | 400 exists / bad name / bad size |
//! | `GET /stores/{name}/keys/{key}` | 200 `{"key", "value"}` (`Accept: application/octet-stream`: raw bytes) | 404 `Key not found` / `Store not found` |
//! | `PUT /stores/{name}/keys/{key}` (body = value) | 201 created, 200 updated | 404, 413 too large, 507 cannot grow |
//! | `DELETE /stores/{name}/keys/{key}` | 204 | 404 |
//! | `GET /stores/{name}/stats` | 200 `{"size", "load_factor", "slots", "generation", "writer": {...}, ...}` | 404 |
//! | `POST /stores/{name}/optimize` | 200 `{"keys", "slots_before", "slots_after", ...}` | 404 |
//! | `POST /stores/{name}/batch` | 200 (`mset`, `mget`, `mdel`) | 400, 404, 413 |
//! | `GET /stores/{name}/keys?prefix=&cursor=&limit=` | 200 `{"keys", "next_cursor"}` | 400, 404 |
//! | `GET /stats`, `GET /metrics` | 200 every store's figures (JSON, Prometheus text) | |
//! | `POST /rescan` | 200 `{"adopted", "skipped"}` | |
//!
//! Every error is JSON, `{"error": "..."}`, unknown routes (404) and wrong
//! methods (405) included. With a token set, requests other than GET, HEAD and
//! a batch `mget` need `Authorization: Bearer <token>` (401 otherwise). Reads
//! never open a store file: one that appears after start is served by a write
//! to it or by `POST /rescan`.
//!
//! ```
//! use maph_server::{ServerConfig, ServerHandle};
//! let dir = tempfile::tempdir().unwrap();
//! let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0)).unwrap();
//! // ... talk HTTP to server.url() ...
//! server.stop().unwrap(); // flushes every store
//! ```

#![warn(missing_docs)]

mod auth;
mod config;
mod dashboard;
mod error;
mod metrics;
mod name;
mod prometheus;
mod rebuild;
mod registry;
mod routes;
mod served;
mod server;
mod writer;

pub use config::{
    ServeArgs, ServerConfig, DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_STORE_BYTES, DEFAULT_READ_PATIENCE,
    DEFAULT_SLOTS,
};
pub use error::ApiError;
pub use metrics::WriterStatsSnapshot;
pub use name::{StoreName, MAX_NAME_LEN};
pub use rebuild::OptimizeReport;
pub use server::{init_logging, run_until_signal, shutdown_signal, Server, ServerError, ServerHandle};
pub use writer::{WriteOp, WriteOutcome};
