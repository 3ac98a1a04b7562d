//! The stores a server serves, by name, and the data directory they live in.
//!
//! Reads only ever see the stores already served: a store file that appears in
//! the data directory later is served only by a write to it (which a token
//! guards) or by `POST /rescan`, since serving a store takes its writer lease
//! and may repair it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use maph_core::{Config, Error, Store};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::error::ApiError;
use crate::served::{ServedStore, StoreSettings};
use crate::writer::Growth;
use crate::{ServerConfig, StoreName};

/// Size of a store created over HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NewStore {
    pub slots: u64,
    pub slot_size: u32,
}

/// What a rescan of the data directory found.
#[derive(Debug, Default, Serialize)]
pub(crate) struct RescanReport {
    /// Stores served from now on.
    pub adopted: Vec<String>,
    /// Store files that could not be served, with the reason.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Skipped {
    pub file: String,
    pub reason: String,
}

pub(crate) struct Registry {
    dir: PathBuf,
    stores: RwLock<HashMap<StoreName, Arc<ServedStore>>>,
    /// Serialises create, adopt and close, so one store is never opened twice.
    admin: Mutex<()>,
    closing: AtomicBool,
    settings: StoreSettings,
    max_store_bytes: u64,
}

impl Registry {
    /// Opens the data directory (creating it if missing) and serves every
    /// `<name>.maph` in it. A store that cannot be served (another process
    /// holds its lease, another strategy) is logged and skipped; a write to
    /// it, or `POST /rescan`, tries again.
    pub fn open(config: &ServerConfig) -> Result<Registry, Error> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::io(format!("could not create the data directory {}", config.data_dir.display()), e))?;
        let registry = Registry {
            dir: config.data_dir.clone(),
            stores: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
            closing: AtomicBool::new(false),
            settings: StoreSettings {
                queue_capacity: config.queue_capacity,
                max_group: config.max_group,
                growth: Growth { max_store_bytes: config.max_store_bytes },
                read_patience: config.read_patience,
            },
            max_store_bytes: config.max_store_bytes,
        };
        let found = registry
            .scan()
            .map_err(|e| Error::io(format!("could not list the data directory {}", config.data_dir.display()), e))?;
        for adopted in found.adopted {
            tracing::info!(store = %adopted, "serving");
        }
        for skipped in found.skipped {
            tracing::warn!(file = %skipped.file, reason = %skipped.reason, "not served");
        }
        Ok(registry)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &StoreName) -> PathBuf {
        self.dir.join(name.file_name())
    }

    /// The served store `name`. Never opens anything: a read must not take a
    /// lease or repair a file.
    pub fn lookup(&self, name: &StoreName) -> Result<Arc<ServedStore>, ApiError> {
        self.stores.read().get(name).cloned().ok_or_else(ApiError::store_not_found)
    }

    /// The served store `name`, serving its file if it appeared in the data
    /// directory since start (made with `maph create`, say). For writes only,
    /// which the token guards. Blocking on a miss.
    pub fn lookup_for_write(&self, name: &StoreName) -> Result<Arc<ServedStore>, ApiError> {
        if let Ok(served) = self.lookup(name) {
            return Ok(served);
        }
        self.adopt(name)
    }

    /// Serves every store file of the data directory not served yet. Blocking.
    pub fn rescan(&self) -> Result<RescanReport, ApiError> {
        self.check_open()?;
        self.scan().map_err(|e| ApiError::internal(format!("could not list the data directory: {e}")))
    }

    fn scan(&self) -> std::io::Result<RescanReport> {
        let mut report = RescanReport::default();
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)?.flatten().map(|e| e.file_name()).collect();
        files.sort();
        for file_name in files {
            let shown = file_name.to_string_lossy().into_owned();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".maph")) else { continue };
            let Ok(name) = StoreName::parse(stem) else {
                report.skipped.push(Skipped { file: shown, reason: "the file name is not a valid store name".into() });
                continue;
            };
            if self.stores.read().contains_key(&name) {
                continue;
            }
            match self.adopt(&name) {
                Ok(_) => report.adopted.push(name.to_string()),
                Err(e) => report.skipped.push(Skipped { file: shown, reason: e.message }),
            }
        }
        Ok(report)
    }

    /// Serves the existing file of `name`, if there is one.
    fn adopt(&self, name: &StoreName) -> Result<Arc<ServedStore>, ApiError> {
        let _admin = self.admin.lock();
        if let Some(served) = self.stores.read().get(name) {
            return Ok(served.clone()); // adopted while we waited
        }
        self.check_open()?;
        let path = self.path_of(name);
        if !path.is_file() {
            return Err(ApiError::store_not_found());
        }
        let served = ServedStore::open(name.clone(), &path, self.settings).map_err(|e| {
            let mut api = ApiError::from(e);
            api.message = format!("store '{name}' cannot be served: {}", self.redact(&api.message));
            api
        })?;
        let served = Arc::new(served);
        self.stores.write().insert(name.clone(), served.clone());
        tracing::info!(store = %name, "serving");
        Ok(served)
    }

    /// Creates and serves a new store. An existing name is a 400 with the text
    /// maph v3 clients look for.
    pub fn create(&self, name: &StoreName, size: NewStore) -> Result<Arc<ServedStore>, ApiError> {
        let _admin = self.admin.lock();
        self.check_open()?;
        let path = self.path_of(name);
        let exists = ApiError::bad_request(format!("Store '{name}' already exists"));
        if self.stores.read().contains_key(name) || path.exists() {
            return Err(exists);
        }
        let probes = u64::from(maph_core::format::DEFAULT_MAX_PROBES).min(size.slots.max(1)) as u32;
        let config = Config::new(size.slots).slot_size(size.slot_size).max_probes(probes);
        let bytes = size.slots.saturating_mul(u64::from(size.slot_size));
        if bytes > self.max_store_bytes {
            return Err(ApiError::bad_request(format!(
                "{} slots of {} bytes make a {bytes}-byte file, above this server's limit of {} bytes \
                 (--max-store-bytes); ask for fewer slots (stores grow as keys arrive)",
                size.slots, size.slot_size, self.max_store_bytes
            )));
        }
        match Store::create(&path, config) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists),
            Err(e) => return Err(self.redacted(e)),
        }
        let served = Arc::new(ServedStore::open(name.clone(), &path, self.settings).map_err(|e| self.redacted(e))?);
        self.stores.write().insert(name.clone(), served.clone());
        tracing::info!(store = %name, slots = size.slots, slot_size = size.slot_size, "created");
        Ok(served)
    }

    /// Every served store, by name.
    pub fn list(&self) -> Vec<Arc<ServedStore>> {
        let mut all: Vec<_> = self.stores.read().values().cloned().collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    fn check_open(&self) -> Result<(), ApiError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(ApiError::shutting_down());
        }
        Ok(())
    }

    /// `error` as an API error whose message names files relative to the data
    /// directory: clients are not told where the server keeps its files.
    fn redacted(&self, error: Error) -> ApiError {
        let mut api = ApiError::from(error);
        api.message = self.redact(&api.message);
        api
    }

    fn redact(&self, message: &str) -> String {
        crate::error::redact(&self.dir, message)
    }

    /// Stops serving: every writer thread finishes its queue, flushes and ends,
    /// and the leases are released. Blocking. Returns the stores that failed.
    pub fn close_all(&self) -> Vec<(StoreName, ApiError)> {
        let _admin = self.admin.lock();
        self.closing.store(true, Ordering::Release);
        let stores: Vec<_> = self.stores.write().drain().collect();
        stores.into_iter().filter_map(|(name, served)| served.close().err().map(|e| (name, e))).collect()
    }
}
