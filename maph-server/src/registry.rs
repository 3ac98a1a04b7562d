//! The stores a server serves, by name, and the data directory they live in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use maph_core::{Config, Error, Store};
use parking_lot::{Mutex, RwLock};

use crate::error::ApiError;
use crate::served::ServedStore;
use crate::{ServerConfig, StoreName};

/// Size of a store created over HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NewStore {
    pub slots: u64,
    pub slot_size: u32,
}

pub(crate) struct Registry {
    dir: PathBuf,
    stores: RwLock<HashMap<StoreName, Arc<ServedStore>>>,
    /// Serialises create, adopt and close, so one store is never opened twice.
    admin: Mutex<()>,
    closing: AtomicBool,
    queue_capacity: usize,
    max_group: usize,
    max_store_bytes: u64,
}

impl Registry {
    /// Opens the data directory (creating it if missing) and serves every
    /// `<name>.maph` in it. A store that cannot be served (another process
    /// holds its lease, another strategy) is logged and skipped; requests for
    /// it retry and report why.
    pub fn open(config: &ServerConfig) -> Result<Registry, Error> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::io(format!("could not create the data directory {}", config.data_dir.display()), e))?;
        let registry = Registry {
            dir: config.data_dir.clone(),
            stores: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
            closing: AtomicBool::new(false),
            queue_capacity: config.queue_capacity,
            max_group: config.max_group,
            max_store_bytes: config.max_store_bytes,
        };
        let entries = std::fs::read_dir(&config.data_dir)
            .map_err(|e| Error::io(format!("could not list the data directory {}", config.data_dir.display()), e))?;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".maph")) else { continue };
            let Ok(name) = StoreName::parse(stem) else {
                tracing::warn!(file = ?entry.path(), "not served: the file name is not a valid store name");
                continue;
            };
            match registry.adopt(&name) {
                Ok(_) => tracing::info!(store = %name, "serving"),
                Err(e) => tracing::warn!(store = %name, error = %e.message, "not served"),
            }
        }
        Ok(registry)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &StoreName) -> PathBuf {
        self.dir.join(name.file_name())
    }

    /// The served store `name`, adopting a file that appeared in the data
    /// directory since start (made with `maph create`, say). Blocking on a miss.
    pub fn lookup(&self, name: &StoreName) -> Result<Arc<ServedStore>, ApiError> {
        if let Some(served) = self.stores.read().get(name) {
            return Ok(served.clone());
        }
        self.adopt(name)
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
        let served = ServedStore::open(name.clone(), &path, self.queue_capacity, self.max_group).map_err(|e| {
            let mut api = ApiError::from(e);
            api.message = format!("store '{name}' cannot be served: {}", api.message);
            api
        })?;
        let served = Arc::new(served);
        self.stores.write().insert(name.clone(), served.clone());
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
                 (--max-store-bytes); ask for fewer slots",
                size.slots, size.slot_size, self.max_store_bytes
            )));
        }
        match Store::create(&path, config) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists),
            Err(e) => return Err(e.into()),
        }
        let served = Arc::new(ServedStore::open(name.clone(), &path, self.queue_capacity, self.max_group)?);
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

    /// Stops serving: every writer thread finishes its queue, flushes and ends,
    /// and the leases are released. Blocking. Returns the stores that failed.
    pub fn close_all(&self) -> Vec<(StoreName, Error)> {
        let _admin = self.admin.lock();
        self.closing.store(true, Ordering::Release);
        let stores: Vec<_> = self.stores.write().drain().collect();
        stores.into_iter().filter_map(|(name, served)| served.close().err().map(|e| (name, e))).collect()
    }
}
