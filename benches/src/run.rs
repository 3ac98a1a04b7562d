//! The main job: measure every row, then hand the results to the report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::contention::{self, Point};
use crate::limits::{self, LimitsOutcome};
use crate::machine::{self, Machine};
use crate::plan::Plan;
use crate::redis_server::RedisSource;
use crate::rows::{self, Role, Row, RowEnv, Writers};
use crate::stats::Summary;
use crate::workload::{bench_column, Column, Keyspace};

/// How one column of one row went.
#[derive(Clone, Debug)]
pub enum Cell {
    /// criterion's samples, as time per iteration (ns).
    Measured(Summary),
    /// The column does not apply to this row (why).
    NotApplicable(&'static str),
    /// It failed (the error).
    Failed(String),
}

impl Cell {
    /// The summary, if measured.
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Cell::Measured(s) => Some(s),
            _ => None,
        }
    }
}

/// How one process count of one row's contention runs went.
#[derive(Clone, Debug)]
pub enum ContentionCell {
    /// The runs.
    Measured(Point),
    /// Not run (why).
    NotApplicable(&'static str),
    /// A run failed (the error).
    Failed(String),
}

/// Everything measured about one row.
#[derive(Clone, Debug)]
pub struct RowResult {
    /// The row.
    pub row: Row,
    /// Why it was not measured at all, if it was not.
    pub skipped: Option<String>,
    /// The single-process columns.
    pub cells: Vec<(Column, Cell)>,
    /// The contention runs, by process count.
    pub contention: Vec<(usize, ContentionCell)>,
}

impl RowResult {
    /// The cell of `column`.
    pub fn cell(&self, column: Column) -> Option<&Cell> {
        self.cells.iter().find(|(c, _)| *c == column).map(|(_, cell)| cell)
    }

    /// The median of `column`, if measured (ns per iteration).
    pub fn median(&self, column: Column) -> Option<f64> {
        self.cell(column).and_then(Cell::summary).map(|s| s.median)
    }

    /// The contention point at `procs`, if measured.
    pub fn point(&self, procs: usize) -> Option<&Point> {
        self.contention.iter().find_map(|(p, c)| match c {
            ContentionCell::Measured(point) if *p == procs => Some(point),
            _ => None,
        })
    }
}

/// A whole run.
#[derive(Debug)]
pub struct Results {
    /// What was run.
    pub plan: Plan,
    /// Where.
    pub machine: Machine,
    /// When it started (UTC).
    pub date: String,
    /// Load averages before and after.
    pub load_before: Option<[f64; 3]>,
    /// Load averages after.
    pub load_after: Option<[f64; 3]>,
    /// How long it took.
    pub elapsed: Duration,
    /// The share of the machine's CPU that other processes used during the run.
    pub others_cpu_share: Option<f64>,
    /// Where the Redis rows got their server.
    pub redis: String,
    /// Every row, in table order.
    pub rows: Vec<RowResult>,
    /// The physical floor.
    pub limits: LimitsOutcome,
}

impl Results {
    /// The row with id `id`.
    pub fn row(&self, id: &str) -> Option<&RowResult> {
        self.rows.iter().find(|r| r.row.id == id)
    }
}

/// What to run, beyond the plan.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only these row ids (all when empty).
    pub only: Vec<String>,
    /// Where stores and scratch files go (a fresh temporary directory when `None`).
    pub dir: Option<PathBuf>,
}

/// Measures every row under `plan`. `exe` is the `maph-bench` binary, which the
/// contention runs start as their worker processes. Progress goes to `progress`.
pub fn run(plan: &Plan, exe: &Path, options: &Options, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Results> {
    let started = Instant::now();
    let scratch = match &options.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::Builder::new().prefix("maph-bench-").tempdir_in(dir)?
        }
        None => tempfile::Builder::new().prefix("maph-bench-").tempdir()?,
    };
    let base = scratch.path().to_path_buf();
    let machine = Machine::detect(&base);
    let date = machine::utc_now();
    let load_before = machine::load_average();
    let cpu_before = machine::CpuSnapshot::take();
    if !machine.optimized {
        progress("warning: this binary is not optimised; run it with --release (scripts/bench does)");
    }

    let wanted: Vec<Row> =
        rows::all().into_iter().filter(|r| options.only.is_empty() || options.only.iter().any(|o| o == r.id)).collect();
    for id in &options.only {
        anyhow::ensure!(
            wanted.iter().any(|r| r.id == id.as_str()),
            "no row named {id:?}; `maph-bench list` shows the rows"
        );
    }
    let redis = if wanted.iter().any(|r| r.needs_redis) {
        std::fs::create_dir_all(base.join("redis"))?;
        RedisSource::find_or_start(&base.join("redis"))
    } else {
        RedisSource::Unavailable("no row that needs Redis was selected".into())
    };
    let redis_problem = match &redis {
        RedisSource::Unavailable(reason) => reason.clone(),
        _ => String::new(),
    };
    progress(&format!("Redis rows: {}", redis.describe()));

    let keyspace = Keyspace::new(plan.keys);
    let criterion_dir = base.join("criterion");
    let mut criterion = plan.criterion.criterion(&criterion_dir);
    let runnable: Vec<&Row> = wanted.iter().filter(|r| r.unavailable(redis.url(), &redis_problem).is_none()).collect();
    let total_cells = runnable.len() * Column::ALL.len();
    let mut done_cells = 0;

    let mut results = Vec::new();
    for row in &wanted {
        if let Some(reason) = row.unavailable(redis.url(), &redis_problem) {
            progress(&format!("{}: not measured: {reason}", row.id));
            results.push(RowResult { row: *row, skipped: Some(reason), cells: vec![], contention: vec![] });
            continue;
        }
        let env = RowEnv { dir: base.join(row.id), redis_url: redis.url().map(String::from) };
        std::fs::create_dir_all(&env.dir)?;
        let mut cells = Vec::new();
        let opened = (row.create)(&env).and_then(|()| (row.open)(&env, Role::Alone)).and_then(|mut subject| {
            keyspace.populate(subject.as_mut())?;
            Ok(subject)
        });
        match opened {
            Err(e) => {
                let reason = format!("setting up failed: {e:#}");
                progress(&format!("{}: {reason}", row.id));
                done_cells += Column::ALL.len();
                results.push(RowResult { row: *row, skipped: Some(reason), cells: vec![], contention: vec![] });
                continue;
            }
            Ok(mut subject) => {
                for column in Column::ALL {
                    done_cells += 1;
                    progress(&format!("[{done_cells}/{total_cells}] {} / {}", row.id, column.title()));
                    if column == Column::LockedRead && !subject.has_locked_read() {
                        cells.push((column, Cell::NotApplicable("reads are snapshot transactions; no separate lock")));
                        continue;
                    }
                    if let Err(e) = keyspace.probe(subject.as_mut(), column) {
                        cells.push((column, Cell::Failed(format!("{e:#}"))));
                        continue;
                    }
                    bench_column(&mut criterion, row.id, subject.as_mut(), &keyspace, column);
                    let cell = match crate::measure::summary(&criterion_dir, row.id, column.id()) {
                        Ok(s) => Cell::Measured(s),
                        Err(e) => Cell::Failed(format!("{e:#}")),
                    };
                    cells.push((column, cell));
                }
            }
        }
        // The subject is dropped here: a single-writer lease or a redb file is free again.
        results.push(RowResult { row: *row, skipped: None, cells, contention: vec![] });
    }

    let contention_dir = base.join("contention");
    std::fs::create_dir_all(&contention_dir)?;
    let settings = &plan.contention;
    for result in results.iter_mut().filter(|r| r.skipped.is_none()) {
        let row = result.row;
        for &procs in &settings.procs {
            if let (Writers::One(why), true) = (row.writers, procs > 1) {
                result.contention.push((procs, ContentionCell::NotApplicable(why)));
                continue;
            }
            let mut runs = Vec::new();
            let mut failure = None;
            for repeat in 0..settings.repeats.max(1) {
                match contention::run_once(exe, &row, &contention_dir, redis.url(), procs, settings, repeat) {
                    Ok(run) => {
                        progress(&format!(
                            "contention {}: {procs} process{}, run {}/{}: {:.0} ops/s, lost {}",
                            row.id,
                            if procs == 1 { "" } else { "es" },
                            repeat + 1,
                            settings.repeats.max(1),
                            run.throughput(),
                            run.lost()
                        ));
                        runs.push(run);
                    }
                    Err(e) => {
                        failure = Some(format!("{e:#}"));
                        break;
                    }
                }
            }
            let cell = match failure {
                Some(e) => {
                    progress(&format!("contention {}: {procs} processes failed: {e}", row.id));
                    ContentionCell::Failed(e)
                }
                None => ContentionCell::Measured(Point { procs, runs }),
            };
            result.contention.push((procs, cell));
        }
    }

    let limits = if plan.limits_runs == 0 {
        LimitsOutcome::Skipped(format!("not run in {} mode", plan.preset.name()))
    } else {
        progress(&format!("physical floor: limits.c, {} runs of about 8 s", plan.limits_runs));
        limits::measure(&base, &base, plan.limits_runs)
    };
    let redis_description = redis.describe();
    drop(redis); // stops a private redis-server
    let elapsed = started.elapsed();
    let others_cpu_share = cpu_before
        .zip(machine::CpuSnapshot::take())
        .map(|(before, after)| before.others_share(&after, elapsed.as_secs_f64(), machine.cores));
    Ok(Results {
        plan: plan.clone(),
        machine,
        date,
        load_before,
        load_after: machine::load_average(),
        elapsed,
        others_cpu_share,
        redis: redis_description,
        rows: results,
        limits,
    })
}
