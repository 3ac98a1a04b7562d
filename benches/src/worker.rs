//! One process of a multi-process run: this binary, re-executed as
//! `maph-bench worker SPEC`. Every multi-process measurement (contention,
//! readers under writers, sweeps) is this one loop with another [`WorkerSpec`].
//!
//! A worker opens its row, builds its key sequence, warms up, says it is ready,
//! and waits for the parent's `GO start end` line: two instants of the
//! machine-wide monotonic clock. It sleeps until `start` (so every worker of a
//! run starts at the same instant, not one after another), runs operations
//! until `end`, and prints its report.
//!
//! **Timing.** Throughput comes from counting: the clock is read once per batch
//! of operations (the batch sized from the warm-up so that a clock read is at
//! most about 1 % of it). Latency percentiles come from a random sample of
//! single operations (about one in [`Plan::sample_every`](crate::Plan::sample_every)),
//! each timed with two clock reads less the calibrated cost of an empty timed
//! region ([`TimerCost`]). Lock waits are timed on another random sample, so
//! no timed operation carries the extra clock reads of a timed lock wait.
//! In an open-loop run operations are due at a fixed rate, and each latency is
//! measured from when it was due, so a stall delays the operations queued
//! behind it and they count it (no coordinated omission).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::keys::{Popularity, Rng, Sequence, SEQUENCE_LEN};
use crate::plan::Dataset;
use crate::rows::{self, Role, RowEnv};
use crate::subject::{counter_key, Subject};
use crate::timer::{self, monotonic_ns, TimerCost};
use crate::workload::key_of;

/// What a worker does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Task {
    /// Increments shared counters: an atomic read-modify-write under the coordinator.
    Increment {
        /// Counter keys each writer may choose from.
        counters: usize,
        /// How it chooses.
        popularity: Popularity,
    },
    /// Gets and sets of the dataset's keys.
    Mix {
        /// The share of operations that are gets (readers: 1).
        read_share: f64,
        /// How keys are chosen.
        popularity: Popularity,
    },
}

/// When operations start.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Arrival {
    /// Each operation as soon as the previous one ends.
    Closed,
    /// Operations due at a fixed rate, whatever happened to the previous ones.
    Open {
        /// Operations per second, this worker alone.
        per_second: f64,
    },
}

/// What a worker is asked to do (JSON on its command line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Row id.
    pub row: String,
    /// The run's directory (holds the store).
    pub dir: PathBuf,
    /// Redis server for the Redis rows.
    pub redis_url: Option<String>,
    /// The keys and values.
    pub dataset: Dataset,
    /// Writer `index` of `writers`, or a reader.
    pub role: WorkerRole,
    /// What it does.
    pub task: Task,
    /// When its operations start.
    pub arrival: Arrival,
    /// This worker's key choices derive from it.
    pub seed: u64,
    /// About one operation in this many is timed on its own.
    pub sample_every: u32,
}

/// [`Role`] in a form that travels as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WorkerRole {
    /// Writer `index` of `writers`.
    Writer {
        /// From 0.
        index: usize,
        /// Writer processes in the run.
        writers: usize,
    },
    /// A reader.
    Reader {
        /// Takes the strategy's shared lock around each read.
        locked: bool,
    },
}

impl WorkerRole {
    fn role(self) -> Role {
        match self {
            WorkerRole::Writer { index, writers } => Role::Writer { index, writers },
            WorkerRole::Reader { locked } => Role::Reader { locked },
        }
    }
}

/// What a worker reports when done.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Gets completed in the measured window.
    pub reads: u64,
    /// Writes (sets or increments) completed in the measured window.
    pub writes: u64,
    /// Increments committed during warm-up (they count in the lost-update check).
    pub warmup_increments: u64,
    /// Operations that failed (not counted above).
    pub errors: u64,
    /// Increments that found a value that was not a counter (torn by a race).
    pub damaged: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// When the worker actually began (monotonic ns).
    pub first_ns: u64,
    /// When it stopped (monotonic ns): the end of its last batch.
    pub last_ns: u64,
    /// Sampled get latencies (ns, timer cost subtracted).
    pub read_latency: Histogram,
    /// Sampled write latencies (ns, timer cost subtracted).
    pub write_latency: Histogram,
    /// Sampled lock waits of increments (ns, timer cost subtracted).
    pub lock_wait: Histogram,
    /// This worker's clock calibration.
    pub timer: Option<TimerCost>,
}

/// The line a worker prints when it is ready to start.
pub const READY: &str = "MAPH_BENCH_READY";
/// The prefix of a worker's report line.
pub const RESULT: &str = "MAPH_BENCH_RESULT ";
/// The prefix of the parent's start line: `GO start_ns end_ns`.
pub const GO: &str = "GO ";

/// Target cost of one batch between clock reads: a clock read is then about
/// 1 % of it or less.
const BATCH_TARGET_NS: u64 = 4_000;

/// The worker side: see the module documentation.
pub fn worker_main(spec: &WorkerSpec) -> anyhow::Result<()> {
    let row = rows::find(&spec.row).ok_or_else(|| anyhow::anyhow!("no row named {:?}", spec.row))?;
    timer::tighten_sleeps();
    let env = RowEnv { dir: spec.dir.clone(), redis_url: spec.redis_url.clone(), dataset: spec.dataset };
    let role = spec.role.role();
    let mut subject = (row.open)(&env, role)?;
    let timer = timer::calibrate(50_000);
    let mut work = Work::new(spec, subject.as_ref())?;
    let mut report = WorkerReport { timer: Some(timer), ..WorkerReport::default() };

    let per_op = work.warm_up(subject.as_mut(), &mut report);
    let batch = (BATCH_TARGET_NS / per_op.max(1)).clamp(1, 64) as u32;
    // Nothing held while waiting for the others (a lease would keep them out).
    subject.idle();

    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}")?;
    out.flush()?;
    let (start, end) = read_go()?;
    timer::sleep_until(start);
    report.first_ns = monotonic_ns();
    match spec.arrival {
        Arrival::Closed => closed_loop(&mut work, subject.as_mut(), &mut report, &timer, batch, end),
        Arrival::Open { per_second } => {
            open_loop(&mut work, subject.as_mut(), &mut report, &timer, start, end, per_second)
        }
    }
    writeln!(out, "{RESULT}{}", serde_json::to_string(&report)?)?;
    out.flush()?;
    Ok(())
}

/// Reads the parent's `GO start end` line from standard input.
fn read_go() -> anyhow::Result<(u64, u64)> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let rest = line.trim().strip_prefix(GO.trim_end()).ok_or_else(|| anyhow::anyhow!("expected GO, got {line:?}"))?;
    let mut parts = rest.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(start)), Some(Ok(end))) if end >= start => Ok((start, end)),
        _ => anyhow::bail!("bad start line {line:?}"),
    }
}

fn closed_loop(
    work: &mut Work,
    subject: &mut dyn Subject,
    report: &mut WorkerReport,
    timer: &TimerCost,
    batch: u32,
    end: u64,
) {
    let mut sampler = Sampler::new(work.seed ^ 0x5a5a, work.sample_every);
    loop {
        for _ in 0..batch {
            let sample = sampler.next();
            let outcome = match sample {
                Sample::Latency => {
                    let t0 = monotonic_ns();
                    let outcome = work.step(subject, None);
                    let t1 = monotonic_ns();
                    work.record_latency(report, &outcome, timer.correct(t1 - t0));
                    outcome
                }
                Sample::LockWait => {
                    let outcome = work.step(subject, Some(()));
                    if let Some(wait) = outcome.lock_wait_ns {
                        report.lock_wait.record_ns(timer.correct(wait));
                    }
                    outcome
                }
                Sample::None => work.step(subject, None),
            };
            work.count(report, &outcome);
        }
        let now = monotonic_ns();
        if now >= end {
            report.last_ns = now;
            return;
        }
    }
}

fn open_loop(
    work: &mut Work,
    subject: &mut dyn Subject,
    report: &mut WorkerReport,
    timer: &TimerCost,
    start: u64,
    end: u64,
    per_second: f64,
) {
    let interval = (1e9 / per_second.max(1e-3)).max(1.0);
    // Each worker's schedule starts at its own random phase, so the workers'
    // operations are not all due at the same instants.
    let phase = Rng::new(work.seed ^ 0x0be7).unit() * interval;
    let mut k = 0u64;
    loop {
        let due = start + (phase + k as f64 * interval) as u64;
        if due >= end {
            break;
        }
        k += 1;
        let mut now = monotonic_ns();
        while now < due {
            // Sleep through long gaps; yield through short ones, so a waiting
            // worker never keeps a lock holder off a core.
            if due - now > 200_000 {
                timer::sleep_until(due - 100_000);
            } else {
                std::thread::yield_now();
            }
            now = monotonic_ns();
        }
        let outcome = work.step(subject, None);
        let done = monotonic_ns();
        work.record_latency(report, &outcome, timer.correct(done - due));
        work.count(report, &outcome);
    }
    report.last_ns = monotonic_ns().max(end);
}

fn record_failure(report: &mut WorkerReport, outcome: &Outcome) {
    if let Some(e) = &outcome.error {
        report.errors += 1;
        report.first_error.get_or_insert_with(|| e.clone());
    }
}

/// Which single operations are timed: random gaps averaging `every`
/// operations (a fixed period could fall in step with something periodic,
/// such as a lease given back every 100 acquisitions).
struct Sampler {
    rng: Rng,
    every: u32,
    until_latency: u32,
    until_lock: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sample {
    None,
    Latency,
    LockWait,
}

impl Sampler {
    fn new(seed: u64, every: u32) -> Sampler {
        let every = every.max(1);
        let mut s = Sampler { rng: Rng::new(seed), every, until_latency: 0, until_lock: 0 };
        s.until_latency = s.gap();
        s.until_lock = s.gap();
        s
    }

    fn gap(&mut self) -> u32 {
        1 + self.rng.below(2 * self.every as usize - 1) as u32
    }

    #[inline]
    fn next(&mut self) -> Sample {
        self.until_latency -= 1;
        self.until_lock -= 1;
        if self.until_latency == 0 {
            self.until_latency = self.gap();
            if self.until_lock == 0 {
                self.until_lock = 1; // the lock sample takes the next operation
            }
            return Sample::Latency;
        }
        if self.until_lock == 0 {
            self.until_lock = self.gap();
            return Sample::LockWait;
        }
        Sample::None
    }
}

/// How one operation went.
struct Outcome {
    ok: bool,
    read: bool,
    damaged: bool,
    lock_wait_ns: Option<u64>,
    error: Option<String>,
}

/// A worker's keys, sequences and scratch space.
struct Work {
    task: Task,
    read_keys: Vec<Vec<u8>>,
    write_keys: Vec<Vec<u8>>,
    reads: Sequence,
    writes: Sequence,
    /// Whether operation `i % SEQUENCE_LEN` is a read.
    is_read: Vec<bool>,
    /// Reads take the strategy's shared lock (the reference's readers).
    locked_reads: bool,
    i: usize,
    value: Vec<u8>,
    out: Vec<u8>,
    seed: u64,
    sample_every: u32,
}

impl Work {
    fn new(spec: &WorkerSpec, subject: &dyn Subject) -> anyhow::Result<Work> {
        let (index, writers) = match spec.role {
            WorkerRole::Writer { index, writers } => (Some(index), writers),
            WorkerRole::Reader { .. } => (None, 1),
        };
        let mine = |key: &Vec<u8>| match (index, subject.writer_of(key, writers)) {
            (_, None) => true,
            (Some(i), Some(owner)) => i == owner,
            (None, Some(_)) => false,
        };
        let (read_keys, write_keys, popularity, read_share) = match spec.task {
            Task::Increment { counters, popularity } => {
                let keys = counter_keys(counters, |k| mine(k))?;
                (keys.clone(), keys, popularity, 0.0)
            }
            Task::Mix { read_share, popularity } => {
                let all: Vec<Vec<u8>> = (0..spec.dataset.keys).map(key_of).collect();
                let writable: Vec<Vec<u8>> =
                    if index.is_some() { all.iter().filter(|k| mine(k)).cloned().collect() } else { all.clone() };
                anyhow::ensure!(!writable.is_empty() && !all.is_empty(), "row {} left this worker no keys", spec.row);
                (all, writable, popularity, read_share)
            }
        };
        let reader = matches!(spec.role, WorkerRole::Reader { .. });
        let read_share = if reader { 1.0 } else { read_share };
        let mut rng = Rng::new(spec.seed);
        let is_read = (0..SEQUENCE_LEN).map(|_| rng.unit() < read_share).collect();
        Ok(Work {
            task: spec.task,
            reads: Sequence::new(read_keys.len(), popularity, rng.next_u64()),
            writes: Sequence::new(write_keys.len(), popularity, rng.next_u64()),
            read_keys,
            write_keys,
            is_read,
            locked_reads: matches!(spec.role, WorkerRole::Reader { locked: true }),
            i: 0,
            value: (0..spec.dataset.value_size).map(|i| b'A' + (i % 26) as u8).collect(),
            out: Vec::with_capacity(spec.dataset.value_size),
            seed: spec.seed,
            sample_every: spec.sample_every,
        })
    }

    /// Untimed: reads every key it may read once (so the measured window pays
    /// no first touch of a page), increments every counter once or sets a few
    /// keys, then times a few operations to size the batch. Returns the
    /// estimated cost of one operation (ns).
    fn warm_up(&mut self, subject: &mut dyn Subject, report: &mut WorkerReport) -> u64 {
        let reads_any = self.is_read.iter().any(|&r| r);
        let writes_any = self.is_read.iter().any(|&r| !r);
        if reads_any {
            for key in &self.read_keys {
                if let Err(e) = subject.get(key, &mut self.out) {
                    report.errors += 1;
                    report.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        if writes_any {
            for key in self.write_keys.iter().take(200) {
                let result = match self.task {
                    Task::Increment { .. } => subject.increment(key, false).map(|_| report.warmup_increments += 1),
                    Task::Mix { .. } => subject.set(key, &self.value),
                };
                if let Err(e) = result {
                    report.errors += 1;
                    report.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        let started = monotonic_ns();
        let mut ops = 0u64;
        while ops < 32 && monotonic_ns() - started < 10_000_000 || ops == 0 {
            let outcome = self.step(subject, None);
            if outcome.ok && !outcome.read && matches!(self.task, Task::Increment { .. }) {
                report.warmup_increments += 1;
            }
            record_failure(report, &outcome);
            ops += 1;
        }
        (monotonic_ns() - started) / ops
    }

    /// One operation. `time_lock` asks an increment to time its lock wait.
    #[inline]
    fn step(&mut self, subject: &mut dyn Subject, time_lock: Option<()>) -> Outcome {
        let read = self.is_read[self.i % SEQUENCE_LEN];
        self.i = self.i.wrapping_add(1);
        let mut outcome = Outcome { ok: true, read, damaged: false, lock_wait_ns: None, error: None };
        let result = if read {
            let key = &self.read_keys[self.reads.next_index()];
            if self.locked_reads {
                subject.get_locked(key, &mut self.out).map(drop)
            } else {
                subject.get(key, &mut self.out).map(drop)
            }
        } else {
            let key = &self.write_keys[self.writes.next_index()];
            match self.task {
                Task::Increment { .. } => subject.increment(key, time_lock.is_some()).map(|inc| {
                    outcome.damaged = inc.damaged;
                    outcome.lock_wait_ns = inc.lock_wait_ns;
                }),
                Task::Mix { .. } => subject.set(key, &self.value),
            }
        };
        if let Err(e) = result {
            outcome.ok = false;
            outcome.error = Some(format!("{e:#}"));
        }
        outcome
    }

    #[inline]
    fn count(&self, report: &mut WorkerReport, outcome: &Outcome) {
        if !outcome.ok {
            record_failure(report, outcome);
        } else if outcome.read {
            report.reads += 1;
        } else {
            report.writes += 1;
            report.damaged += u64::from(outcome.damaged);
        }
    }

    #[inline]
    fn record_latency(&self, report: &mut WorkerReport, outcome: &Outcome, ns: u64) {
        if !outcome.ok {
            return;
        }
        if outcome.read {
            report.read_latency.record_ns(ns);
        } else {
            report.write_latency.record_ns(ns);
        }
    }
}

/// The first `count` counter keys `mine` accepts (all of them for a strategy
/// whose writers share keys; those of the writer's own shards for partitioning).
pub fn counter_keys(count: usize, mut mine: impl FnMut(&Vec<u8>) -> bool) -> anyhow::Result<Vec<Vec<u8>>> {
    let count = count.max(1);
    let keys: Vec<Vec<u8>> = (0..count * 1024).map(counter_key).filter(|k| mine(k)).take(count).collect();
    anyhow::ensure!(keys.len() == count, "found only {} of {count} counter keys for this writer", keys.len());
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_averages_its_period_without_a_fixed_phase() {
        let mut s = Sampler::new(1, 16);
        let mut latency = Vec::new();
        let mut locks = 0;
        for i in 0..160_000u32 {
            match s.next() {
                Sample::Latency => latency.push(i),
                Sample::LockWait => locks += 1,
                Sample::None => {}
            }
        }
        let per = 160_000.0 / latency.len() as f64;
        assert!((14.0..18.0).contains(&per), "one in {per}");
        assert!((8_000..12_000).contains(&locks), "{locks} lock samples");
        // Samples fall on every residue modulo 100 (a lease period), not on a few.
        let mut residues = [false; 100];
        for i in &latency {
            residues[(*i % 100) as usize] = true;
        }
        assert!(residues.iter().all(|&r| r));
    }

    #[test]
    fn go_lines_parse() {
        assert_eq!(format!("{GO}1 2"), "GO 1 2");
    }

    #[test]
    fn counter_keys_honour_ownership() {
        let all = counter_keys(4, |_| true).unwrap();
        assert_eq!(all, (0..4).map(counter_key).collect::<Vec<_>>());
        let mut n = 0;
        let odd = counter_keys(3, |_| {
            n += 1;
            n % 2 == 0
        })
        .unwrap();
        assert_eq!(odd, vec![counter_key(1), counter_key(3), counter_key(5)]);
        assert!(counter_keys(2, |_| false).is_err());
    }
}
