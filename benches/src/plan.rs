//! How long to measure: the presets of the main job.

use std::time::Duration;

use crate::contention::ContentionSettings;
use crate::measure::CriterionSettings;

/// A preset of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// A few seconds: proves the harness works end to end (CI runs it); its
    /// numbers mean nothing.
    Smoke,
    /// The README's command: about three minutes on a 2-core machine.
    Default,
    /// Longer measurements and more repeats, for publishing: about twelve minutes.
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

/// Everything a run measures, and how long.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Which preset this is.
    pub preset: Preset,
    /// criterion settings for the single-process table.
    pub criterion: CriterionSettings,
    /// The multi-process runs.
    pub contention: ContentionSettings,
    /// Runs of limits.c (0: skip it).
    pub limits_runs: usize,
    /// Keys in the keyspace of the single-process table.
    pub keys: usize,
}

impl Plan {
    /// The plan of `preset`.
    pub fn new(preset: Preset) -> Plan {
        match preset {
            Preset::Smoke => Plan {
                preset,
                criterion: CriterionSettings {
                    sample_size: 10,
                    warm_up: Duration::from_millis(5),
                    measurement: Duration::from_millis(20),
                    nresamples: 1000,
                },
                contention: ContentionSettings {
                    procs: vec![1, 2],
                    repeats: 1,
                    duration: Duration::from_millis(40),
                    counters: 4,
                },
                limits_runs: 0,
                keys: 1_000,
            },
            Preset::Default => Plan {
                preset,
                criterion: CriterionSettings {
                    sample_size: 20,
                    warm_up: Duration::from_millis(300),
                    measurement: Duration::from_millis(1000),
                    nresamples: 10_000,
                },
                contention: ContentionSettings {
                    procs: vec![1, 2, 4, 8],
                    repeats: 3,
                    duration: Duration::from_millis(300),
                    counters: 16,
                },
                limits_runs: 3,
                keys: 10_000,
            },
            Preset::Thorough => Plan {
                preset,
                criterion: CriterionSettings {
                    sample_size: 50,
                    warm_up: Duration::from_secs(1),
                    measurement: Duration::from_secs(3),
                    nresamples: 100_000,
                },
                contention: ContentionSettings {
                    procs: vec![1, 2, 4, 8],
                    repeats: 7,
                    duration: Duration::from_secs(1),
                    counters: 16,
                },
                limits_runs: 5,
                keys: 10_000,
            },
        }
    }
}
