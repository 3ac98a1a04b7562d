//! What a run measures and for how long: every parameter, written into the
//! results file so a run can be understood (and repeated) from it alone.

use serde::{Deserialize, Serialize};

use crate::keys::Popularity;
use crate::sweep::SweepSpec;

/// A preset of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Seconds: proves the harness works end to end (CI runs it); its numbers
    /// mean nothing.
    Smoke,
    /// The README's command: about five minutes on a 2-core machine.
    Default,
    /// More processes, samples and repeats, for publishing: about twenty minutes.
    Thorough,
}

impl Preset {
    /// Its name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Smoke => "smoke",
            Preset::Default => "default",
            Preset::Thorough => "thorough",
        }
    }
}

/// The data a workload runs on: how many keys, in how large a store, with how
/// large values. The size dimension of the harness: the single-process table
/// is measured once per dataset of [`Plan::datasets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// Keys written before measuring (13-byte keys `user:00000042`).
    pub keys: usize,
    /// Slots of each maph store (512 bytes each).
    pub slots: u64,
    /// Bytes of every value written.
    pub value_size: usize,
}

impl Dataset {
    /// The default: 10,000 keys in 65,536 slots (15 % load, a 32 MiB store), 64-byte values.
    pub const DEFAULT: Dataset = Dataset { keys: 10_000, slots: 1 << 16, value_size: 64 };

    /// `keys` keys with the default value size, in a store of at least 65,536
    /// slots and at most half full.
    pub fn for_keys(keys: usize) -> Dataset {
        let slots = ((keys as u64).saturating_mul(2)).next_power_of_two().max(Dataset::DEFAULT.slots);
        Dataset { keys, slots, ..Dataset::DEFAULT }
    }

    /// A short name, as tables and file names use it: `10k keys`.
    pub fn name(&self) -> String {
        format!("{} keys", short_count(self.keys as f64))
    }

    /// The store's load factor.
    pub fn load(&self) -> f64 {
        self.keys as f64 / self.slots as f64
    }
}

/// 1000 → `1k`, 1500000 → `1.5M`.
pub fn short_count(n: f64) -> String {
    let (v, suffix) = if n >= 1e9 {
        (n / 1e9, "G")
    } else if n >= 1e6 {
        (n / 1e6, "M")
    } else if n >= 1e3 {
        (n / 1e3, "k")
    } else {
        (n, "")
    };
    let text = format!("{v:.1}");
    format!("{}{suffix}", text.strip_suffix(".0").unwrap_or(&text))
}

/// How criterion measures each single-process cell.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriterionSettings {
    /// Samples per cell and process (criterion's minimum is 10).
    pub sample_size: usize,
    /// Warm-up before sampling, ms.
    pub warm_up_ms: u64,
    /// Target time for all samples together, ms.
    pub measurement_ms: u64,
    /// Bootstrap resamples of criterion's own interval.
    pub nresamples: usize,
}

/// The single-process table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableSettings {
    /// Freshly started processes per row (each makes its own store, so its
    /// pages, mapping and heap land somewhere else).
    pub processes: usize,
    /// criterion's settings inside each process.
    pub criterion: CriterionSettings,
}

/// The multi-process contention runs (counter increments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentionSettings {
    /// Writer process counts to run.
    pub procs: Vec<usize>,
    /// Closed-loop runs per (row, process count).
    pub repeats: usize,
    /// How long the workers of one run write, ms.
    pub duration_ms: u64,
    /// Counters (distinct keys) the workers share.
    pub counters: usize,
    /// How workers choose among the counters.
    pub popularity: Popularity,
    /// The open-loop run's arrival rate as a share of the closed-loop
    /// throughput at the same point (0: no open-loop run).
    pub open_loop_share: f64,
}

/// Readers under writers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadersSettings {
    /// Reader processes.
    pub readers: usize,
    /// Writer process counts to run beside them.
    pub writers: Vec<usize>,
    /// Runs per (row, writer count).
    pub repeats: usize,
    /// How long one run lasts, ms.
    pub duration_ms: u64,
}

/// Everything a run measures, and how long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Which preset this is.
    pub preset: Preset,
    /// The seed every key order and sequence derives from.
    pub seed: u64,
    /// The datasets of the single-process table (the first is also the
    /// contention and readers runs' dataset).
    pub datasets: Vec<Dataset>,
    /// The single-process table (`None`: not run).
    pub table: Option<TableSettings>,
    /// The contention runs (`None`: not run).
    pub contention: Option<ContentionSettings>,
    /// Readers under writers (`None`: not run).
    pub readers: Option<ReadersSettings>,
    /// Sweeps to run.
    pub sweeps: Vec<SweepSpec>,
    /// Runs of limits.c (0: skip it).
    pub limits_runs: usize,
    /// Single operations are timed one in this many (the rest are only counted).
    pub sample_every: u32,
    /// Every maph store is read once in order before use, so all rows' pages
    /// enter the page cache alike ([`rows::settle_pages`](crate::rows::settle_pages));
    /// `false` leaves them as each strategy's own writes and start-up put them.
    pub settle_pages: bool,
}

impl Plan {
    /// The plan of `preset`.
    pub fn new(preset: Preset) -> Plan {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Up to twice the cores, so every curve shows oversubscription.
        let mut procs: Vec<usize> =
            std::iter::successors(Some(1usize), |p| Some(p * 2)).take_while(|&p| p <= 2 * cores.max(2)).collect();
        if preset == Preset::Default || preset == Preset::Thorough {
            procs.push(procs.last().copied().unwrap_or(1) * 2);
        }
        let base = Plan {
            preset,
            seed: 0x6d61_7068_6265_6e63,
            datasets: vec![Dataset::DEFAULT],
            table: Some(TableSettings {
                processes: 3,
                criterion: CriterionSettings {
                    sample_size: 10,
                    warm_up_ms: 100,
                    measurement_ms: 300,
                    nresamples: 10_000,
                },
            }),
            contention: Some(ContentionSettings {
                procs,
                repeats: 2,
                duration_ms: 250,
                counters: 16,
                popularity: Popularity::Uniform,
                open_loop_share: 0.5,
            }),
            readers: Some(ReadersSettings { readers: 1, writers: vec![0, 1, 2, 4], repeats: 2, duration_ms: 250 }),
            sweeps: Vec::new(),
            limits_runs: 2,
            sample_every: 16,
            settle_pages: true,
        };
        match preset {
            Preset::Default => base,
            Preset::Smoke => Plan {
                datasets: vec![Dataset { keys: 1_000, ..Dataset::DEFAULT }],
                table: Some(TableSettings {
                    processes: 2,
                    criterion: CriterionSettings {
                        sample_size: 10,
                        warm_up_ms: 3,
                        measurement_ms: 15,
                        nresamples: 1000,
                    },
                }),
                contention: Some(ContentionSettings {
                    procs: vec![1, 2],
                    repeats: 1,
                    duration_ms: 30,
                    counters: 4,
                    popularity: Popularity::Uniform,
                    open_loop_share: 0.5,
                }),
                readers: Some(ReadersSettings { readers: 1, writers: vec![0, 1], repeats: 1, duration_ms: 30 }),
                limits_runs: 0,
                sample_every: 4,
                ..base
            },
            Preset::Thorough => Plan {
                table: Some(TableSettings {
                    processes: 7,
                    criterion: CriterionSettings {
                        sample_size: 20,
                        warm_up_ms: 300,
                        measurement_ms: 1000,
                        nresamples: 100_000,
                    },
                }),
                contention: base.contention.clone().map(|c| ContentionSettings { repeats: 5, duration_ms: 1000, ..c }),
                readers: base.readers.clone().map(|r| ReadersSettings { repeats: 3, duration_ms: 1000, ..r }),
                limits_runs: 5,
                ..base
            },
        }
    }

    /// The dataset the multi-process runs use.
    pub fn main_dataset(&self) -> Dataset {
        self.datasets.first().copied().unwrap_or(Dataset::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_cover_twice_the_cores_and_smoke_stays_small() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        let default = Plan::new(Preset::Default);
        assert!(*default.contention.as_ref().unwrap().procs.last().unwrap() >= 2 * cores);
        let smoke = Plan::new(Preset::Smoke);
        assert!(smoke.contention.unwrap().duration_ms <= 50);
        assert!(smoke.table.unwrap().processes >= 2, "smoke still exercises the between-process spread");
    }

    #[test]
    fn datasets_keep_stores_at_most_half_full() {
        let d = Dataset::for_keys(1_000_000);
        assert!(d.load() <= 0.5 && d.slots.is_power_of_two());
        assert_eq!(Dataset::for_keys(10).slots, Dataset::DEFAULT.slots);
        assert_eq!(Dataset::DEFAULT.name(), "10k keys");
        assert_eq!(short_count(1_500_000.0), "1.5M");
        assert_eq!(short_count(64.0), "64");
    }
}
