//! The one place where a strategy's name meets its coordinator. Adding a
//! strategy to the command is a variant here and an arm in each match.

use std::path::Path;

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{SingleWriter, Store, Strategy, Uncoordinated, WriteCoordinator};
use maph_lock_fcntl::FcntlCoordinator;
use maph_lock_flock::FlockCoordinator;

use crate::error::{CliError, CliResult};

/// Redis server used when neither `--redis-url` nor `MAPH_REDIS_URL` names one.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// The strategies `maph` can create stores for and write with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyName {
    /// One writer process holds a lease (a server, an ingest job).
    Single,
    /// A whole-store flock(2) on the store file: several writer processes on this host.
    Flock,
    /// fcntl(2) record locks: several writers on this host, per key in parallel.
    Fcntl,
    /// A fenced lease token in Redis: writers on this host that already use Redis.
    Redis,
    /// No coordination: loses updates with several writers (the race baseline).
    Uncoordinated,
}

impl StrategyName {
    const ALL: [StrategyName; 5] = [Self::Single, Self::Flock, Self::Fcntl, Self::Redis, Self::Uncoordinated];

    /// The tag recorded in the header of a store made for this strategy.
    pub fn tag(self) -> Strategy {
        match self {
            Self::Single => SingleWriter::STRATEGY,
            Self::Flock => FlockCoordinator::STRATEGY,
            Self::Fcntl => FcntlCoordinator::STRATEGY,
            Self::Redis => RedisCoordinator::STRATEGY,
            Self::Uncoordinated => Uncoordinated::STRATEGY,
        }
    }

    /// The name `--strategy` takes for this one.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Flock => "flock",
            Self::Fcntl => "fcntl",
            Self::Redis => "redis",
            Self::Uncoordinated => "uncoordinated",
        }
    }

    /// The strategy a store's header names, if this `maph` knows it.
    pub fn of(store: &Store) -> CliResult<StrategyName> {
        let tag = store.strategy();
        Self::ALL.into_iter().find(|s| s.tag() == tag).ok_or_else(|| {
            CliError::new(format!(
                "{} is coordinated by `{tag}`, a strategy this maph does not know; write it with the program that made it",
                store.path().display()
            ))
        })
    }
}

/// Settings some coordinators need.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    pub redis_url: String,
    /// `--single-host-network-fs`: open for writing on a network filesystem.
    pub single_host_network_fs: bool,
}

impl WriterOptions {
    /// Opens `path` for writing, refusing a network filesystem unless allowed.
    pub fn open(&self, path: &std::path::Path) -> CliResult<Store> {
        maph_core::OpenOptions::new(maph_core::Mode::ReadWrite)
            .allow_network_filesystem(self.single_host_network_fs)
            .open(path)
            .map_err(CliError::from)
    }
}

/// The writer for `store`, chosen by the strategy recorded in its header, so a
/// store is always written the way every other writer of it writes.
pub fn writer_for(store: &Store, options: &WriterOptions) -> CliResult<Box<dyn WriteCoordinator>> {
    let path = store.path();
    let writer: Box<dyn WriteCoordinator> = match StrategyName::of(store)? {
        StrategyName::Single => Box::new(SingleWriter::new(store).map_err(|e| lease_error(path, e))?),
        StrategyName::Flock => Box::new(FlockCoordinator::new(store).map_err(CliError::context(path.display()))?),
        StrategyName::Fcntl => Box::new(FcntlCoordinator::new(store).map_err(CliError::context(path.display()))?),
        StrategyName::Redis => Box::new(
            RedisCoordinator::new(store, RedisConfig::new(options.redis_url.clone()))
                .map_err(CliError::context(path.display()))?,
        ),
        StrategyName::Uncoordinated => Box::new(Uncoordinated::new()),
    };
    Ok(writer)
}

/// A busy single-writer lease usually means a server owns the store: say so.
fn lease_error(path: &Path, error: maph_core::Error) -> CliError {
    match error {
        maph_core::Error::WriterBusy { pid } => {
            let holder = pid.map_or("another process".to_string(), |p| format!("process {p}"));
            CliError::new(format!(
                "cannot write {}: {holder} holds its single-writer lease (a maph server?); send writes through it, \
                 e.g. curl -X PUT --data-binary VALUE http://HOST:PORT/stores/NAME/keys/KEY (reads work directly: maph get)",
                path.display()
            ))
        }
        other => CliError::new(format!("{}: {other}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_distinct_tag_that_maps_back() {
        for s in StrategyName::ALL {
            assert_eq!(StrategyName::ALL.iter().filter(|o| o.tag() == s.tag()).count(), 1, "{s:?}");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.maph");
            Store::create(&path, maph_core::Config::new(16).strategy(s.tag())).unwrap();
            let store = Store::open(&path, maph_core::Mode::ReadOnly).unwrap();
            assert_eq!(StrategyName::of(&store).unwrap(), s);
        }
    }
}
