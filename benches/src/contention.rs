//! Multi-process contention: 1 to 2× the cores (and more) writer processes
//! incrementing shared counters under each strategy.
//!
//! Each run creates a fresh store with its counters at zero, starts the writer
//! processes ([`crate::worker`]), and lets them all begin at one shared instant.
//! Each writer chooses counters from its own random sequence (no two walk them
//! in step), increments them as fast as it can (closed loop) until the shared
//! end, and counts. Afterwards this process reads the counters: their sum falls
//! short of the increments made exactly by the number of updates lost to races
//! (only the uncoordinated row loses any). After the closed-loop runs of a
//! point, one open-loop run asks for a fixed share of their throughput at a
//! fixed arrival rate, for latencies free of coordinated omission.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::group::{self, GroupRun};
use crate::keys::derive_seed;
use crate::plan::{ContentionSettings, Dataset};
use crate::results::{ContentionPoint, ContentionResult, Outcome};
use crate::rows::{Role, Row, RowEnv};
use crate::stats;
use crate::subject::encode_counter;
use crate::worker::{counter_keys, Arrival, Task, WorkerRole, WorkerSpec};

/// Everything the contention runs of one run share.
pub struct Setup<'a> {
    /// The `maph-bench` binary (re-executed as the workers).
    pub exe: &'a Path,
    /// Where run directories go.
    pub base: &'a Path,
    /// The Redis server, if any.
    pub redis_url: Option<&'a str>,
    /// The store size (the counters are few; the store is the dataset's size).
    pub dataset: Dataset,
    /// The run's seed.
    pub seed: u64,
    /// One operation in about this many is timed.
    pub sample_every: u32,
    /// Read the store files once in order before use ([`crate::rows::settle_pages`]).
    pub settle_pages: bool,
}

/// Runs every point of `settings` for every row.
pub fn run_all(
    setup: &Setup<'_>,
    rows: &[Row],
    settings: &ContentionSettings,
    progress: &mut dyn FnMut(&str),
) -> Vec<ContentionResult> {
    let mut results = Vec::new();
    for row in rows {
        for &procs in &settings.procs {
            let outcome = match row.refuses(procs, 0) {
                Some(why) => Outcome::NotApplicable(why.to_string()),
                None => match point(setup, row, procs, settings, progress) {
                    Ok(p) => Outcome::Measured(p),
                    Err(e) => {
                        progress(&format!("contention {}: {procs} processes failed: {e:#}", row.id));
                        Outcome::Failed(format!("{e:#}"))
                    }
                },
            };
            results.push(ContentionResult { row: row.id.into(), procs, outcome });
        }
    }
    results
}

fn point(
    setup: &Setup<'_>,
    row: &Row,
    procs: usize,
    settings: &ContentionSettings,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<ContentionPoint> {
    let mut runs = Vec::new();
    let plural = if procs == 1 { "" } else { "es" };
    for repeat in 0..settings.repeats.max(1) {
        let run = increments(setup, row, procs, settings, Arrival::Closed, repeat)?;
        progress(&format!(
            "contention {}: {procs} process{plural}, run {}/{}: {:.0} increments/s, lost {}",
            row.id,
            repeat + 1,
            settings.repeats.max(1),
            run.throughput(),
            run.lost().unwrap_or(0)
        ));
        runs.push(run);
    }
    let open_loop = if settings.open_loop_share > 0.0 {
        let closed = stats::median(&runs.iter().map(GroupRun::throughput).collect::<Vec<_>>()).unwrap_or(0.0);
        let rate = closed * settings.open_loop_share;
        let arrival = Arrival::Open { per_second: rate / procs as f64 };
        Some(match increments(setup, row, procs, settings, arrival, settings.repeats.max(1)) {
            Ok(mut run) => {
                run.target_rate = Some(rate);
                progress(&format!(
                    "contention {}: {procs} process{plural}, open loop at {rate:.0}/s: p99 {:.0} ns",
                    row.id,
                    run.write_latency.quantile(0.99).unwrap_or(0.0)
                ));
                Outcome::Measured(run)
            }
            Err(e) => Outcome::Failed(format!("{e:#}")),
        })
    } else {
        None
    };
    Ok(ContentionPoint { runs, open_loop })
}

/// One run of `procs` writer processes on a fresh store.
fn increments(
    setup: &Setup<'_>,
    row: &Row,
    procs: usize,
    settings: &ContentionSettings,
    arrival: Arrival,
    run_number: usize,
) -> anyhow::Result<GroupRun> {
    let dir = setup.base.join(format!("contention-{}-p{procs}-r{run_number}", row.id));
    let env = RowEnv { dir: dir.clone(), redis_url: setup.redis_url.map(String::from), dataset: setup.dataset };
    row.create_in(&env, setup.settle_pages)?;
    // Every counter starts at zero, written by this process before the workers
    // exist, so no worker's first write pays for creating the file's pages.
    let keys: BTreeSet<Vec<u8>> = {
        let mut subject = (row.open)(&env, Role::Alone)?;
        let mut keys = BTreeSet::new();
        for w in 0..procs {
            let owner = |k: &Vec<u8>| subject.writer_of(k, procs).is_none_or(|o| o == w);
            keys.extend(counter_keys(settings.counters, owner)?);
        }
        for key in &keys {
            subject.set(key, &encode_counter(0))?;
        }
        keys
    };
    let specs: Vec<WorkerSpec> = (0..procs)
        .map(|w| WorkerSpec {
            row: row.id.into(),
            dir: dir.clone(),
            redis_url: setup.redis_url.map(String::from),
            dataset: setup.dataset,
            role: WorkerRole::Writer { index: w, writers: procs },
            task: Task::Increment { counters: settings.counters, popularity: settings.popularity },
            arrival,
            // The same sequences for every row: worker w of run r chooses the same counters.
            seed: derive_seed(setup.seed, &[0xc0, procs as u64, run_number as u64, w as u64]),
            sample_every: setup.sample_every,
        })
        .collect();
    let mut run = group::run(setup.exe, &specs, Duration::from_millis(settings.duration_ms))?;
    // Every worker has exited: this process may now open the store alone and count.
    let mut subject = (row.open)(&env, Role::Alone)?;
    let mut counted = 0u64;
    for key in &keys {
        counted += subject.counter(key)?;
    }
    drop(subject);
    run.counted = Some(counted);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(run)
}
