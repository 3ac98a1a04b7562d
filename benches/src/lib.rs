//! # maph-bench
//!
//! One benchmark harness for every maph write strategy and the peers a user
//! would pick instead (LMDB through `heed`, and `redb`), for a researcher
//! measuring what coordination costs: raw results with their provenance,
//! intervals on every ratio, comparisons between runs, sweeps, and readers
//! under writers.
//!
//! - [`rows`]: **the one table of strategies and peers**; a new strategy is one line there.
//! - [`Subject`]: what every row is measured through. [`subjects::MaphSubject`]
//!   is generic over [`maph_core::WriteCoordinator`], so every strategy runs the
//!   same code; the peers implement the trait themselves.
//! - [`workload`] and [`cell`]: the single-process table, each row timed by
//!   criterion in several freshly started processes.
//! - [`worker`] and [`group`]: one multi-process workload (writers and readers
//!   started at one shared instant, sampled latencies, timer cost subtracted),
//!   run by [`contention`], [`readers`] and [`sweep`].
//! - [`run()`] measures what a [`Plan`] asks for into [`Results`] (`results.json`);
//!   [`report`] and [`csv`] render them; [`compare`] compares two runs.
//!
//! Run it with `scripts/bench` (or `cargo run --release -p maph-bench`); the
//! crate's README has the commands a researcher runs and how to read the output.
//!
//! ```
//! use maph_bench::{rows, Keyspace, Subject};
//! # let dir = tempfile::tempdir().unwrap();
//! let env = rows::RowEnv { dir: dir.path().to_path_buf(), redis_url: None, dataset: maph_bench::Dataset::DEFAULT };
//! let row = rows::find("uncoordinated").unwrap();
//! row.create_in(&env, true)?;
//! let mut subject = (row.open)(&env, rows::Role::Alone)?;
//! let keys = Keyspace::new(100, 64, 1);
//! keys.populate(subject.as_mut())?;
//! let mut out = Vec::new();
//! assert!(subject.get(&keys.keys()[7], &mut out)?);
//! assert_eq!(out, keys.value());
//! # Ok::<(), anyhow::Error>(())
//! ```

#![warn(missing_docs)]

pub mod cell;
mod chart;
mod child;
pub mod compare;
pub mod contention;
pub mod csv;
pub mod format;
pub mod group;
mod histogram;
pub mod keys;
mod leased;
pub mod limits;
pub mod machine;
pub mod mapping;
pub mod placement;
pub mod plan;
pub mod provenance;
pub mod readers;
pub mod redis_server;
pub mod reference;
pub mod report;
pub mod results;
pub mod rows;
pub mod run;
pub mod stats;
mod subject;
pub mod subjects;
pub mod sweep;
mod table;
pub mod timer;
pub mod worker;
pub mod workload;

pub use histogram::Histogram;
pub use leased::Leased;
pub use plan::{Dataset, Plan, Preset};
pub use results::Results;
pub use run::{run, Options};
pub use stats::Summary;
pub use subject::{counter_key, decode_counter, encode_counter, next_counter, Increment, Subject};
pub use workload::{Column, Keyspace};
