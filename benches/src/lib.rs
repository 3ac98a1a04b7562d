//! # maph-bench
//!
//! One benchmark harness for every maph write strategy and the peers a user
//! would pick instead (LMDB through `heed`, and `redb`). It reproduces the two
//! tables of the reference design text with measured numbers, adds
//! multi-process contention curves, and writes `docs/BENCHMARKS.md`.
//!
//! - [`Subject`]: what every row is measured through. [`subjects::MaphSubject`]
//!   is generic over [`maph_core::WriteCoordinator`], so every strategy runs the
//!   same code; the peers implement the trait themselves.
//! - [`rows`]: the list of rows, the one place a new coordinator plugs in.
//! - [`workload`]: the single-process columns, timed by criterion.
//! - [`contention`]: 1, 2, 4, 8 writer processes (this binary re-executed).
//! - [`run()`] measures everything; [`report`] renders the Markdown, the SVG
//!   chart and the terminal table.
//!
//! Run it with `scripts/bench` (or `cargo run --release -p maph-bench`); see
//! the crate's README for the modes and how to read the output.
//!
//! ```
//! use maph_bench::{rows, Keyspace, Subject};
//! # let dir = tempfile::tempdir().unwrap();
//! let env = rows::RowEnv { dir: dir.path().to_path_buf(), redis_url: None };
//! let row = rows::find("uncoordinated").unwrap();
//! (row.create)(&env)?;
//! let mut subject = (row.open)(&env, rows::Role::Alone)?;
//! let keys = Keyspace::new(100);
//! keys.populate(subject.as_mut())?;
//! let mut out = Vec::new();
//! assert!(subject.get(&keys.keys()[7], &mut out)?);
//! assert_eq!(out, keys.value());
//! # Ok::<(), anyhow::Error>(())
//! ```

#![warn(missing_docs)]

mod chart;
mod child;
pub mod contention;
mod histogram;
mod leased;
pub mod limits;
pub mod machine;
pub mod measure;
pub mod plan;
pub mod redis_server;
pub mod reference;
pub mod report;
pub mod rows;
pub mod run;
mod stats;
mod subject;
pub mod subjects;
mod table;
pub mod workload;

pub use histogram::Histogram;
pub use leased::Leased;
pub use plan::{Plan, Preset};
pub use run::{run, Options, Results};
pub use stats::Summary;
pub use subject::{counter_key, decode_counter, encode_counter, next_counter, Increment, Subject};
pub use workload::{Column, Keyspace};
