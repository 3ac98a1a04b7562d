//! Multi-process contention runs: 1, 2, 4, 8 writer processes per strategy.
//!
//! Each run creates a fresh store with its counters at zero, starts `procs`
//! worker processes (this same binary, re-executed with the `worker` command),
//! waits until every one has opened its store and coordinator and done one
//! untimed warm-up increment per counter, then lets them all go at once (by closing
//! their standard input, as maph-testkit does). For a fixed time each worker
//! increments shared counters: an atomic read-modify-write under its
//! coordinator. It times every operation and every lock acquisition into
//! histograms and counts its increments. Afterwards the parent reads the
//! counters: their sum falls short of the increments made exactly by the
//! number of updates lost to races (only the uncoordinated row loses any).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::rows::{self, Role, Row, RowEnv};
use crate::stats::Summary;

/// How the contention runs are sized.
#[derive(Clone, Debug)]
pub struct ContentionSettings {
    /// Writer process counts to run.
    pub procs: Vec<usize>,
    /// Runs per (row, process count); the report quotes medians over them.
    pub repeats: usize,
    /// How long the workers of one run write.
    pub duration: Duration,
    /// Counters (distinct keys) the workers share.
    pub counters: usize,
}

/// What a worker is asked to do (passed as JSON on its command line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Row id.
    pub row: String,
    /// The run's directory (holds the store).
    pub dir: PathBuf,
    /// Redis server for the Redis rows.
    pub redis_url: Option<String>,
    /// This worker's number.
    pub index: usize,
    /// Workers in the run.
    pub procs: usize,
    /// How long to write, in milliseconds.
    pub duration_ms: u64,
    /// Counters to increment.
    pub counters: usize,
}

/// What a worker reports when done.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Increments committed while timed.
    pub ops: u64,
    /// Increments committed before the start signal (one per key, untimed:
    /// they fault in the pages and connections a first operation would pay for).
    pub warmup_ops: u64,
    /// Increments that failed with an error (not counted in `ops`).
    pub errors: u64,
    /// Increments that found a value that was not a counter (torn by a race).
    pub damaged: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// CLOCK_MONOTONIC when the worker started writing, ns.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC when it stopped, ns.
    pub end_ns: u64,
    /// Histogram of whole-operation times.
    pub op_latency: String,
    /// Histogram of lock-acquisition times.
    pub lock_wait: String,
}

/// One run of `procs` processes.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Writer processes.
    pub procs: usize,
    /// Timed increments committed, over all workers.
    pub ops: u64,
    /// Untimed warm-up increments (counted in the lost-update check only).
    pub warmup_ops: u64,
    /// Failed increments.
    pub errors: u64,
    /// Increments that found a torn value.
    pub damaged: u64,
    /// Sum of the counters afterwards.
    pub counted: u64,
    /// From the first worker's start to the last worker's end.
    pub wall: Duration,
    /// Whole-operation times of all workers.
    pub op_latency: Histogram,
    /// Lock-acquisition times of all workers.
    pub lock_wait: Histogram,
    /// The first error any worker met.
    pub first_error: Option<String>,
}

impl RunResult {
    /// Updates lost to races: increments made (warm-up included) minus increments counted.
    pub fn lost(&self) -> i64 {
        (self.ops + self.warmup_ops) as i64 - self.counted as i64
    }

    /// Committed increments per second, all processes together.
    pub fn throughput(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// All runs of one row at one process count, summarised.
#[derive(Clone, Debug)]
pub struct Point {
    /// Writer processes.
    pub procs: usize,
    /// The runs.
    pub runs: Vec<RunResult>,
}

impl Point {
    /// Throughput (ops/s) over the runs.
    pub fn throughput(&self) -> Option<Summary> {
        Summary::of(&self.runs.iter().map(RunResult::throughput).collect::<Vec<_>>())
    }

    /// The `q` quantile of operation time (ns), one value per run, summarised.
    pub fn op_quantile(&self, q: f64) -> Option<Summary> {
        Summary::of(&self.runs.iter().filter_map(|r| r.op_latency.quantile(q)).collect::<Vec<_>>())
    }

    /// The `q` quantile of lock wait (ns), one value per run, summarised.
    pub fn wait_quantile(&self, q: f64) -> Option<Summary> {
        Summary::of(&self.runs.iter().filter_map(|r| r.lock_wait.quantile(q)).collect::<Vec<_>>())
    }

    /// Lost updates of each run.
    pub fn lost(&self) -> Vec<i64> {
        self.runs.iter().map(RunResult::lost).collect()
    }

    /// Failed and damaged increments over all runs.
    pub fn errors(&self) -> (u64, u64) {
        self.runs.iter().fold((0, 0), |(e, d), r| (e + r.errors, d + r.damaged))
    }

    /// The first error any run met.
    pub fn first_error(&self) -> Option<&str> {
        self.runs.iter().find_map(|r| r.first_error.as_deref())
    }
}

/// Runs `row` with `procs` worker processes once, in a fresh directory under
/// `base`. `exe` is the `maph-bench` binary (it is re-executed as the workers).
pub fn run_once(
    exe: &Path,
    row: &Row,
    base: &Path,
    redis_url: Option<&str>,
    procs: usize,
    settings: &ContentionSettings,
    run_number: usize,
) -> anyhow::Result<RunResult> {
    let dir = base.join(format!("{}-p{procs}-r{run_number}", row.id));
    std::fs::create_dir_all(&dir)?;
    let env = RowEnv { dir: dir.clone(), redis_url: redis_url.map(String::from) };
    (row.create)(&env)?;
    // Every counter starts at zero, written by this process before the workers
    // exist, so no worker's first write pays for creating the file's pages.
    let keys: BTreeSet<Vec<u8>> = {
        let mut subject = (row.open)(&env, Role::Alone)?;
        let mut keys = BTreeSet::new();
        for worker in 0..procs {
            keys.extend(subject.contention_keys(worker, procs, settings.counters.max(1))?);
        }
        for key in &keys {
            subject.set(key, &crate::subject::encode_counter(0))?;
        }
        keys
    };

    let mut workers = Vec::with_capacity(procs);
    for index in 0..procs {
        let spec = WorkerSpec {
            row: row.id.to_string(),
            dir: dir.clone(),
            redis_url: redis_url.map(String::from),
            index,
            procs,
            duration_ms: settings.duration.as_millis() as u64,
            counters: settings.counters,
        };
        workers.push(Worker::spawn(exe, &spec)?);
    }
    // Everyone set up (store mapped, coordinator made, connections open) before
    // anyone starts. Setting up takes milliseconds; the bound only catches a hang.
    let ready_by = Instant::now() + Duration::from_secs(60);
    for w in &mut workers {
        w.wait_ready(ready_by)?;
    }
    for w in &mut workers {
        w.start();
    }
    let deadline = Instant::now() + settings.duration + Duration::from_secs(60);
    let mut reports = Vec::with_capacity(procs);
    for w in workers {
        reports.push(w.finish(deadline)?);
    }

    let mut op_latency = Histogram::new();
    let mut lock_wait = Histogram::new();
    for r in &reports {
        op_latency.merge(&Histogram::decode(&r.op_latency)?);
        lock_wait.merge(&Histogram::decode(&r.lock_wait)?);
    }
    let start = reports.iter().map(|r| r.start_ns).min().unwrap_or(0);
    let end = reports.iter().map(|r| r.end_ns).max().unwrap_or(0);

    // Every worker has exited: this process may now open the store alone and count.
    let mut subject = (row.open)(&env, Role::Alone)?;
    let mut counted = 0u64;
    for key in &keys {
        counted += subject.counter(key)?;
    }
    drop(subject);
    let result = RunResult {
        procs,
        ops: reports.iter().map(|r| r.ops).sum(),
        warmup_ops: reports.iter().map(|r| r.warmup_ops).sum(),
        errors: reports.iter().map(|r| r.errors).sum(),
        damaged: reports.iter().map(|r| r.damaged).sum(),
        counted,
        wall: Duration::from_nanos(end.saturating_sub(start)),
        op_latency,
        lock_wait,
        first_error: reports.iter().find_map(|r| r.first_error.clone()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

/// A worker process, seen from the parent.
struct Worker {
    child: std::process::Child,
    /// Lines of its standard output, read by a thread (closed at its exit).
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    index: usize,
}

const READY: &str = "MAPH_BENCH_READY";
const RESULT: &str = "MAPH_BENCH_RESULT ";

impl Worker {
    fn spawn(exe: &Path, spec: &WorkerSpec) -> anyhow::Result<Worker> {
        let mut command = Command::new(exe);
        crate::child::die_with_parent(&mut command)
            .arg("worker")
            .arg(serde_json::to_string(spec)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            command.spawn().map_err(|e| anyhow::anyhow!("could not start worker {}: {e}", exe.display()))?;
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(Worker { child, lines, stderr: Some(stderr), index: spec.index })
    }

    /// An error saying what went wrong, with what the worker printed on stderr.
    fn failure(&mut self, what: &str) -> anyhow::Error {
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        anyhow::anyhow!("worker {} {what}: {}", self.index, stderr.trim())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the worker says it is ready; fails if it exits first or
    /// is not ready by `deadline` (then it is killed).
    fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line == READY => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    return Err(self.failure("exited before it was ready"));
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Err(self.failure("was not ready in time and was killed"));
                }
            }
        }
    }

    /// Closes the worker's standard input: its start signal.
    fn start(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits (until `deadline` at most) for the worker's report.
    fn finish(mut self, deadline: Instant) -> anyhow::Result<WorkerReport> {
        let mut report = None;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(json) = line.strip_prefix(RESULT) {
                        report = Some(serde_json::from_str::<WorkerReport>(json)?);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break, // stdout closed: it is exiting
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Err(self.failure("did not finish in time and was killed"));
                }
            }
        }
        let status = self.child.wait()?;
        match (status.success(), report) {
            (true, Some(report)) => Ok(report),
            _ => Err(self.failure(&format!("failed ({status})"))),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A failed run must not leave workers behind.
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// The worker side: opens the row named in `spec`, says it is ready, waits for
/// the start signal, increments counters for the given time, prints its report.
pub fn worker_main(spec: &WorkerSpec) -> anyhow::Result<()> {
    let row = rows::find(&spec.row).ok_or_else(|| anyhow::anyhow!("no row named {:?}", spec.row))?;
    let env = RowEnv { dir: spec.dir.clone(), redis_url: spec.redis_url.clone() };
    let mut subject = (row.open)(&env, Role::Worker { index: spec.index, procs: spec.procs })?;
    let keys = subject.contention_keys(spec.index, spec.procs, spec.counters.max(1))?;
    anyhow::ensure!(!keys.is_empty(), "row {} gave worker {} no keys", row.id, spec.index);
    let (mut errors, mut first_error) = (0u64, None);
    let mut warmup_ops = 0;
    for key in &keys {
        match subject.increment(key) {
            Ok(_) => warmup_ops += 1,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    // Nothing held while waiting for the others (a lease would keep them out).
    subject.idle();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}")?;
    out.flush()?;
    let mut gate = Vec::new();
    std::io::stdin().read_to_end(&mut gate)?; // EOF is the start signal

    let mut op_latency = Histogram::new();
    let mut lock_wait = Histogram::new();
    let (mut ops, mut damaged) = (0u64, 0u64);
    let duration = Duration::from_millis(spec.duration_ms);
    let start_ns = monotonic_ns();
    let started = Instant::now();
    let mut i = spec.index; // workers start on different counters, then walk them all
    loop {
        let key = &keys[i % keys.len()];
        i += 1;
        let t0 = Instant::now();
        match subject.increment(key) {
            Ok(inc) => {
                let t1 = Instant::now();
                op_latency.record(t1 - t0);
                lock_wait.record(inc.lock_wait);
                ops += 1;
                damaged += u64::from(inc.damaged);
                if t1 - started >= duration {
                    break;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
                if started.elapsed() >= duration {
                    break;
                }
            }
        }
    }
    let end_ns = monotonic_ns();
    let report = WorkerReport {
        ops,
        warmup_ops,
        errors,
        damaged,
        first_error,
        start_ns,
        end_ns,
        op_latency: op_latency.encode(),
        lock_wait: lock_wait.encode(),
    };
    writeln!(out, "{RESULT}{}", serde_json::to_string(&report)?)?;
    out.flush()?;
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the machine,
/// so workers' start and end times can be compared.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, owned `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
