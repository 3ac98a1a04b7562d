//! The parent side of a multi-process run: start the workers, wait until all
//! are ready, give them one shared start instant and one shared end, and merge
//! their reports.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::timer::{monotonic_ns, TimerCost};
use crate::worker::{WorkerReport, WorkerSpec, GO, READY, RESULT};

/// Picks one of a run's histograms.
pub type Pick = fn(&GroupRun) -> &Histogram;

/// One multi-process run, all workers merged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GroupRun {
    /// Worker processes.
    pub workers: usize,
    /// From the shared start instant to the last worker's end (ns).
    pub window_ns: u64,
    /// How late the latest worker actually began after the shared start (ns).
    pub start_skew_ns: u64,
    /// Gets completed, all workers.
    pub reads: u64,
    /// Writes (sets or increments) completed, all workers.
    pub writes: u64,
    /// Increments committed during warm-up.
    pub warmup_increments: u64,
    /// Failed operations.
    pub errors: u64,
    /// Increments that found a torn value.
    pub damaged: u64,
    /// Sum of the counters afterwards (increment runs only).
    pub counted: Option<u64>,
    /// The open-loop arrival rate asked of all workers together (ops/s), if open-loop.
    pub target_rate: Option<f64>,
    /// Sampled get latencies (ns), all workers.
    pub read_latency: Histogram,
    /// Sampled write latencies (ns), all workers.
    pub write_latency: Histogram,
    /// Sampled lock waits (ns), all workers.
    pub lock_wait: Histogram,
    /// The workers' clock calibrations (their median is what was subtracted).
    pub timers: Vec<TimerCost>,
    /// The first error any worker met.
    pub first_error: Option<String>,
}

impl GroupRun {
    /// Updates lost to races: increments made (warm-up included) minus increments counted.
    pub fn lost(&self) -> Option<i64> {
        self.counted.map(|c| (self.writes + self.warmup_increments) as i64 - c as i64)
    }

    /// Operations completed per second, all workers together.
    pub fn throughput(&self) -> f64 {
        (self.reads + self.writes) as f64 / self.seconds()
    }

    /// Gets per second.
    pub fn read_throughput(&self) -> f64 {
        self.reads as f64 / self.seconds()
    }

    /// Writes per second.
    pub fn write_throughput(&self) -> f64 {
        self.writes as f64 / self.seconds()
    }

    fn seconds(&self) -> f64 {
        (self.window_ns as f64 / 1e9).max(1e-9)
    }
}

/// Starts one worker per spec, runs them from one shared instant for
/// `duration`, and merges their reports. `exe` is the `maph-bench` binary.
pub fn run(exe: &Path, specs: &[WorkerSpec], duration: Duration) -> anyhow::Result<GroupRun> {
    let mut workers = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        workers.push(Worker::spawn(exe, spec, index)?);
    }
    // Setting up takes milliseconds (seconds for a large keyspace's warm-up);
    // the bound only catches a hang.
    let ready_by = Instant::now() + Duration::from_secs(600);
    for w in &mut workers {
        w.wait_ready(ready_by)?;
    }
    // Far enough ahead for every worker to read the line and go to sleep,
    // even with the machine oversubscribed.
    let start = monotonic_ns() + 20_000_000 + 2_000_000 * specs.len() as u64;
    let end = start + duration.as_nanos() as u64;
    for w in &mut workers {
        w.start(start, end)?;
    }
    let deadline = Instant::now() + duration + Duration::from_secs(120);
    let mut reports = Vec::with_capacity(workers.len());
    for w in workers {
        reports.push(w.finish(deadline)?);
    }
    Ok(merge(&reports, start))
}

/// Merges worker reports of a run that started at `start`.
pub fn merge(reports: &[WorkerReport], start: u64) -> GroupRun {
    let mut run = GroupRun { workers: reports.len(), ..GroupRun::default() };
    let mut last = start;
    for r in reports {
        run.reads += r.reads;
        run.writes += r.writes;
        run.warmup_increments += r.warmup_increments;
        run.errors += r.errors;
        run.damaged += r.damaged;
        run.read_latency.merge(&r.read_latency);
        run.write_latency.merge(&r.write_latency);
        run.lock_wait.merge(&r.lock_wait);
        run.timers.extend(r.timer);
        run.start_skew_ns = run.start_skew_ns.max(r.first_ns.saturating_sub(start));
        last = last.max(r.last_ns);
        if run.first_error.is_none() {
            run.first_error = r.first_error.clone();
        }
    }
    run.window_ns = last - start;
    run
}

/// A worker process, seen from the parent.
struct Worker {
    child: std::process::Child,
    /// Lines of its standard output, read by a thread (closed at its exit).
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    index: usize,
}

impl Worker {
    fn spawn(exe: &Path, spec: &WorkerSpec, index: usize) -> anyhow::Result<Worker> {
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
        Ok(Worker { child, lines, stderr: Some(stderr), index })
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

    /// Sends the start line and closes the worker's standard input.
    fn start(&mut self, start: u64, end: u64) -> anyhow::Result<()> {
        let mut stdin = self.child.stdin.take().expect("stdin is piped");
        writeln!(stdin, "{GO}{start} {end}").map_err(|e| anyhow::anyhow!("worker {}: {e}", self.index))?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_measures_from_the_shared_start() {
        let mut a = WorkerReport { reads: 10, writes: 5, first_ns: 1_000, last_ns: 5_000, ..Default::default() };
        a.read_latency.record_ns(100);
        let b = WorkerReport { writes: 7, warmup_increments: 2, first_ns: 1_300, last_ns: 6_000, ..Default::default() };
        let mut run = merge(&[a, b], 1_000);
        assert_eq!((run.reads, run.writes, run.window_ns, run.start_skew_ns), (10, 12, 5_000, 300));
        assert_eq!(run.read_latency.count(), 1);
        assert_eq!(run.lost(), None);
        run.counted = Some(13);
        assert_eq!(run.lost(), Some(1));
        assert!((run.throughput() - 22.0 / 5e-6).abs() < 1.0);
    }
}
