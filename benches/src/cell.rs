//! The single-process table, each row measured in several freshly started
//! processes: this binary, re-executed as `maph-bench cell SPEC`.
//!
//! One process measures one row: it makes a fresh store in a fresh directory,
//! fills it, and has criterion time every column. Identical code measured in
//! one long-lived process after other rows differs by more than the effects
//! the table reports (where the store's pages, the mapping and the heap land
//! changes from one process to the next), so each row runs in
//! [`TableSettings::processes`] processes, in rounds, each round in its own
//! shuffled row order; the table reports the spread between processes, and
//! every ratio resamples it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use criterion::Criterion;
use serde::{Deserialize, Serialize};

use crate::keys::{derive_seed, Rng};
use crate::mapping::{self, MappingInfo};
use crate::plan::{CriterionSettings, Dataset, TableSettings};
use crate::results::{CellResult, Outcome, ProcessCell};
use crate::rows::{self, Role, Row, RowEnv, SharedLock};
use crate::stats::Interval;
use crate::workload::{bench_column, Column, Keyspace};

/// What a cell process is asked to measure (JSON in a file named on its command line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellSpec {
    /// Row id.
    pub row: String,
    /// A fresh directory for the row's store (and criterion's files).
    pub dir: PathBuf,
    /// Redis server for the Redis rows.
    pub redis_url: Option<String>,
    /// The keys, store size and value size.
    pub dataset: Dataset,
    /// criterion's settings.
    pub criterion: CriterionSettings,
    /// The key order derives from it (the same for every row).
    pub seed: u64,
    /// Read the store files once in order before use ([`rows::settle_pages`]).
    pub settle_pages: bool,
    /// Where to write the [`CellReport`].
    pub out: PathBuf,
}

/// What a cell process measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellReport {
    /// Each column's samples, or why not.
    pub columns: Vec<(Column, Outcome<ProcessSample>)>,
    /// How the store's mapping landed in memory (after measuring).
    pub mapping: Option<MappingInfo>,
}

/// One column as measured by one process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessSample {
    /// Mean time per iteration of each criterion sample (ns).
    pub samples_ns: Vec<f64>,
    /// Iterations of each sample.
    pub iters: Vec<f64>,
    /// criterion's median estimate and its interval (ns).
    pub criterion_median: Interval,
}

/// The cell process: measures every column of one row, writes the report.
pub fn cell_main(spec_path: &Path) -> anyhow::Result<()> {
    let spec: CellSpec = serde_json::from_str(&std::fs::read_to_string(spec_path)?)?;
    let row = rows::find(&spec.row).ok_or_else(|| anyhow::anyhow!("no row named {:?}", spec.row))?;
    // The directory's name is unique to this row and process: it also names the Redis token.
    let env = RowEnv { dir: spec.dir.clone(), redis_url: spec.redis_url.clone(), dataset: spec.dataset };
    row.create_in(&env, spec.settle_pages)?;
    let mut subject = (row.open)(&env, Role::Alone)?;
    let keyspace = Keyspace::new(spec.dataset.keys, spec.dataset.value_size, spec.seed);
    keyspace.populate(subject.as_mut())?;
    let criterion_dir = spec.dir.join("criterion");
    let mut criterion = criterion_for(&spec.criterion, &criterion_dir);
    let mut columns = Vec::new();
    for column in Column::ALL {
        let outcome = match (column, row.shared_lock) {
            (Column::LockedRead, SharedLock::Free(why)) => Outcome::NotApplicable(why.to_string()),
            _ => match keyspace.probe(subject.as_mut(), column) {
                Err(e) => Outcome::Failed(format!("{e:#}")),
                Ok(()) => {
                    bench_column(&mut criterion, row.id, subject.as_mut(), &keyspace, column);
                    match read_criterion(&criterion_dir, row.id, column.id()) {
                        Ok(sample) => Outcome::Measured(sample),
                        Err(e) => Outcome::Failed(format!("{e:#}")),
                    }
                }
            },
        };
        columns.push((column, outcome));
    }
    let report = CellReport { columns, mapping: mapping::of_files_under(&env.dir) };
    drop(subject);
    std::fs::write(&spec.out, serde_json::to_string(&report)?)?;
    Ok(())
}

fn criterion_for(settings: &CriterionSettings, output: &Path) -> Criterion {
    Criterion::default()
        .sample_size(settings.sample_size.max(10))
        .warm_up_time(Duration::from_millis(settings.warm_up_ms.max(1)))
        .measurement_time(Duration::from_millis(settings.measurement_ms.max(1)))
        .nresamples(settings.nresamples.max(1000))
        .without_plots()
        .output_directory(output)
}

#[derive(Deserialize)]
struct SavedSample {
    iters: Vec<f64>,
    times: Vec<f64>,
}

#[derive(Deserialize)]
struct SavedEstimate {
    confidence_interval: SavedInterval,
    point_estimate: f64,
}

#[derive(Deserialize)]
struct SavedInterval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct SavedEstimates {
    median: SavedEstimate,
}

/// Reads what criterion saved for `group/function` under `output`: its
/// samples (`sample.json`) and its median estimate with its interval (`estimates.json`).
pub fn read_criterion(output: &Path, group: &str, function: &str) -> anyhow::Result<ProcessSample> {
    let dir = output.join(group).join(function).join("new");
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("criterion left no {}: {e}", path.display()))
    };
    let saved: SavedSample = serde_json::from_str(&read("sample.json")?)?;
    anyhow::ensure!(saved.iters.len() == saved.times.len(), "{group}/{function}: iters and times differ in length");
    let estimates: SavedEstimates = serde_json::from_str(&read("estimates.json")?)?;
    let pairs: Vec<(f64, f64)> =
        saved.iters.iter().zip(&saved.times).filter(|(i, _)| **i > 0.0).map(|(i, t)| (*i, *t)).collect();
    anyhow::ensure!(!pairs.is_empty(), "criterion saved no samples for {group}/{function}");
    let m = estimates.median;
    Ok(ProcessSample {
        samples_ns: pairs.iter().map(|(i, t)| t / i).collect(),
        iters: pairs.iter().map(|(i, _)| *i).collect(),
        criterion_median: Interval {
            estimate: m.point_estimate,
            low: m.confidence_interval.lower_bound,
            high: m.confidence_interval.upper_bound,
        },
    })
}

/// One process's report: its round, its position in the round, and what it measured.
type ProcessReport = (usize, usize, anyhow::Result<CellReport>);

/// Measures every row of `rows` on `dataset` (index `dataset_index` in the
/// plan) in `settings.processes` fresh processes each.
#[allow(clippy::too_many_arguments)]
pub fn run_table(
    exe: &Path,
    rows: &[Row],
    dataset_index: usize,
    dataset: Dataset,
    settings: &TableSettings,
    seed: u64,
    settle_pages: bool,
    base: &Path,
    redis_url: Option<&str>,
    progress: &mut dyn FnMut(&str),
) -> Vec<CellResult> {
    let mut processes: Vec<(Row, Vec<ProcessReport>)> = rows.iter().map(|r| (*r, Vec::new())).collect();
    let total = rows.len() * settings.processes;
    let mut done = 0;
    for round in 0..settings.processes.max(1) {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        Rng::new(derive_seed(seed, &[0xce11, round as u64])).shuffle(&mut order);
        for (position, &i) in order.iter().enumerate() {
            let row = rows[i];
            done += 1;
            progress(&format!(
                "[{done}/{total}] single-process table, {}: {} (process {} of {})",
                dataset.name(),
                row.id,
                round + 1,
                settings.processes
            ));
            let dir = base.join(format!("cell-{}-d{dataset_index}-p{round}", row.id));
            let spec = CellSpec {
                row: row.id.into(),
                dir: dir.clone(),
                redis_url: redis_url.map(String::from),
                dataset,
                criterion: settings.criterion,
                seed: derive_seed(seed, &[0x0de7, dataset_index as u64]),
                settle_pages,
                out: dir.join("report.json"),
            };
            let report = run_one(exe, &spec);
            if let Err(e) = &report {
                progress(&format!("{}: process {} failed: {}", row.id, round + 1, first_line(&format!("{e:#}"))));
            }
            let _ = std::fs::remove_dir_all(&dir);
            processes[i].1.push((round, position, report));
        }
    }
    let mut cells = Vec::new();
    for (row, reports) in processes {
        for column in Column::ALL {
            cells.push(CellResult {
                row: row.id.into(),
                dataset: dataset_index,
                column,
                outcome: collect(column, &reports),
            });
        }
    }
    cells
}

/// One column's outcome over a row's processes: measured if every process measured it.
fn collect(column: Column, reports: &[ProcessReport]) -> Outcome<Vec<ProcessCell>> {
    let mut measured = Vec::new();
    for (round, position, report) in reports {
        let report = match report {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("{e:#}")),
        };
        match report.columns.iter().find(|(c, _)| *c == column).map(|(_, o)| o) {
            Some(Outcome::Measured(s)) => measured.push(ProcessCell {
                round: *round,
                position: *position,
                samples_ns: s.samples_ns.clone(),
                iters: s.iters.clone(),
                criterion_median: s.criterion_median,
                mapping: report.mapping,
            }),
            Some(Outcome::NotApplicable(why)) => return Outcome::NotApplicable(why.clone()),
            Some(Outcome::Failed(e)) => return Outcome::Failed(e.clone()),
            None => return Outcome::Failed(format!("the process did not report {}", column.id())),
        }
    }
    Outcome::Measured(measured)
}

/// How long a cell process may take before it is taken for hung and killed:
/// far beyond any preset's few seconds, so only a stuck lock trips it.
const CELL_DEADLINE: Duration = Duration::from_secs(600);

fn run_one(exe: &Path, spec: &CellSpec) -> anyhow::Result<CellReport> {
    std::fs::create_dir_all(&spec.dir)?;
    let spec_path = spec.dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_string(spec)?)?;
    let stderr_path = spec.dir.join("stderr.txt");
    let mut command = Command::new(exe);
    crate::child::die_with_parent(&mut command)
        .arg("cell")
        .arg(&spec_path)
        .stdin(Stdio::null())
        // criterion's own progress lines: not needed, the parent reports progress.
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?);
    let mut child = command.spawn().map_err(|e| anyhow::anyhow!("could not start {}: {e}", exe.display()))?;
    let pid = child.id();
    let (done, waited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = match waited.recv_timeout(CELL_DEADLINE) {
        Ok(status) => status?,
        Err(_) => {
            // SAFETY: kill(2) touches no memory. The pid is our child's, which the
            // waiting thread has not reaped unless it exited in the instant since
            // the timeout.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = waited.recv();
            anyhow::bail!("the cell process did not finish in {} s and was killed", CELL_DEADLINE.as_secs());
        }
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    anyhow::ensure!(status.success(), "the cell process failed ({status}): {}", stderr.trim());
    Ok(serde_json::from_str(&std::fs::read_to_string(&spec.out)?)?)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
