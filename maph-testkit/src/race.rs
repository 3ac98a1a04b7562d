//! The counter race: the reference design's lost-update test, across processes.

use std::path::Path;
use std::time::{Duration, Instant};

use maph_core::{Config, Mode, Result, Store, WriteCoordinator};

use crate::process::{child, spawn_with_env, start_all};

const ROLE: &str = "counter-race";

/// P processes each doing M read-modify-write increments of shared counters
/// under one coordinator. With a coordinator that excludes writers the total is
/// exactly P × M; without one, updates are lost.
///
/// ```no_run
/// use maph_core::{Config, SingleWriter, Strategy, Uncoordinated};
/// use maph_testkit::CounterRace;
///
/// #[test]
/// fn uncoordinated_loses_updates() {
///     let report = CounterRace::new("uncoordinated_loses_updates", 4, 10_000)
///         .run(Config::new(64).strategy(Strategy::UNCOORDINATED), |_store| Ok(Uncoordinated::new()));
///     println!("{report}");
/// }
/// ```
///
/// One `CounterRace` per test function: the children re-run the test and take
/// the first race they meet as theirs.
#[derive(Clone, Debug)]
pub struct CounterRace {
    test: String,
    procs: usize,
    increments: u64,
    counters: usize,
    env: Vec<(String, String)>,
}

/// How a race ended.
#[derive(Clone, Debug)]
pub struct RaceReport {
    /// Processes that took part.
    pub procs: usize,
    /// Increments each did.
    pub increments: u64,
    /// P × M.
    pub expected: u64,
    /// The sum of the counters afterwards.
    pub actual: u64,
    /// Value of each counter afterwards.
    pub per_counter: Vec<u64>,
    /// Lock acquisitions summed over the children.
    pub acquisitions: u64,
    /// Contended acquisitions summed over the children.
    pub contended: u64,
    /// Counter values that were not numbers when read: bytes of two writers
    /// mixed in one slot. Only an uncoordinated race can produce them.
    pub garbled: u64,
    /// Wall time from start signal to the last child's exit.
    pub elapsed: Duration,
}

/// A counter's value, if its bytes are a number.
fn parse_counter(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

impl RaceReport {
    /// Updates lost to the race (expected minus actual).
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.actual)
    }
}

impl std::fmt::Display for RaceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} processes x {} increments: expected {}, actual {}, lost {}, garbled {} ({} acquisitions, {} contended, {:?})",
            self.procs,
            self.increments,
            self.expected,
            self.actual,
            self.lost(),
            self.garbled,
            self.acquisitions,
            self.contended,
            self.elapsed
        )
    }
}

impl CounterRace {
    /// A race of `procs` processes × `increments` increments for the test whose
    /// full libtest name is `test`, on one counter.
    pub fn new(test: &str, procs: usize, increments: u64) -> CounterRace {
        CounterRace { test: test.to_string(), procs, increments, counters: 1, env: Vec::new() }
    }

    /// Spreads the increments round-robin over `n` counters (different keys).
    pub fn counters(mut self, n: usize) -> CounterRace {
        self.counters = n.max(1);
        self
    }

    /// Sets an environment variable in every child (for example the address of a
    /// coordination service the parent started), where `make` can read it.
    pub fn env(mut self, key: &str, value: &str) -> CounterRace {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Key of counter `i`.
    pub fn counter_key(i: usize) -> Vec<u8> {
        format!("counter:{i}").into_bytes()
    }

    /// Runs the race on a fresh store made with `config`; each child makes its
    /// coordinator with `make` (after opening the store read-write). In a child
    /// process this never returns.
    pub fn run<C, F>(&self, config: Config, make: F) -> RaceReport
    where
        C: WriteCoordinator,
        F: Fn(&Store) -> Result<C>,
    {
        let dir = crate::temp_dir();
        let path = dir.path().join("race.maph");
        self.run_at(&path, config, make)
    }

    /// As [`run`](Self::run), on a store created at `path` (the caller keeps the
    /// directory alive).
    pub fn run_at<C, F>(&self, path: &Path, config: Config, make: F) -> RaceReport
    where
        C: WriteCoordinator,
        F: Fn(&Store) -> Result<C>,
    {
        if let Some(ctx) = child(&self.test) {
            assert_eq!(ctx.role(), ROLE, "one CounterRace per test function");
            let path: String = ctx.arg(0);
            let store = Store::open(&path, Mode::ReadWrite).expect("child opens the store");
            let coordinator = make(&store).expect("child makes its coordinator");
            ctx.wait_for_start();
            let mut garbled = 0u64;
            for i in 0..self.increments {
                let key = Self::counter_key(i as usize % self.counters);
                store
                    .update(&coordinator, &key, |old| {
                        let n = match old.map(parse_counter) {
                            None => 0,
                            Some(Some(n)) => n,
                            // Two uncoordinated writers in one slot can mix their
                            // bytes: count it (the race is the point) and restart.
                            Some(None) => {
                                garbled += 1;
                                0
                            }
                        };
                        Some((n + 1).to_string())
                    })
                    .expect("child increments");
            }
            let stats = coordinator.contention();
            ctx.report("acquisitions", stats.acquisitions);
            ctx.report("contended", stats.contended);
            ctx.report("garbled", garbled);
            ctx.exit();
        }

        Store::create(path, config).expect("create the race store");
        let arg = vec![path.display().to_string()];
        let mut children: Vec<_> = (0..self.procs).map(|_| spawn_with_env(&self.test, ROLE, &arg, &self.env)).collect();
        let started = Instant::now();
        start_all(&mut children);
        let finished: Vec<_> = children.into_iter().map(|c| c.finish_ok()).collect();
        let elapsed = started.elapsed();

        let store = Store::open(path, Mode::ReadOnly).expect("open the race store");
        let mut garbled_at_end = 0;
        let per_counter: Vec<u64> = (0..self.counters)
            .map(|i| {
                store
                    .get(&Self::counter_key(i))
                    .expect("read a counter")
                    .map_or(Some(0), |v| parse_counter(&v))
                    .unwrap_or_else(|| {
                        garbled_at_end += 1;
                        0
                    })
            })
            .collect();
        RaceReport {
            procs: self.procs,
            increments: self.increments,
            expected: self.procs as u64 * self.increments,
            actual: per_counter.iter().sum(),
            per_counter,
            acquisitions: finished.iter().map(|f| f.report::<u64>("acquisitions")).sum(),
            contended: finished.iter().map(|f| f.report::<u64>("contended")).sum(),
            garbled: garbled_at_end + finished.iter().map(|f| f.report::<u64>("garbled")).sum::<u64>(),
            elapsed,
        }
    }
}
