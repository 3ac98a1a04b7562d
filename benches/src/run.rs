//! The main job: measure what the plan asks for, and gather it with its
//! provenance into [`Results`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::contention::{self, Setup};
use crate::limits::{self, LimitsOutcome};
use crate::machine::{self, Machine};
use crate::plan::Plan;
use crate::provenance::{self, Provenance, RedisInfo};
use crate::redis_server::RedisSource;
use crate::results::{Results, RowInfo, SCHEMA};
use crate::rows::{self, Row};
use crate::{cell, readers, sweep, timer};

/// What to run, beyond the plan.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only these row ids (all when empty).
    pub only: Vec<String>,
    /// Where stores and scratch files go (a fresh temporary directory when `None`).
    pub dir: Option<PathBuf>,
    /// How the run was started, for the report.
    pub command: String,
}

/// PING round trips timed at each end of a run.
const PINGS: usize = 2000;

/// Measures what `plan` asks for. `exe` is the `maph-bench` binary, which the
/// single-process cells and the multi-process runs start as their processes.
/// Progress goes to `progress`.
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
    if !machine.optimized {
        progress("warning: this binary is not optimised; run it with --release (scripts/bench does)");
    }
    let (git_commit, git_dirty) = provenance::git(provenance::repository());
    let date = machine::utc_now();
    let load_before = machine::load_average();
    let cpu_before = machine::CpuSnapshot::take();

    let wanted = rows::select(&options.only)?;
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
    let pings = if plan.preset == crate::plan::Preset::Smoke { 100 } else { PINGS };
    let mut redis_info = RedisInfo {
        source: redis.describe(),
        version: redis.url().and_then(|u| provenance::server_version(u).ok()),
        ..RedisInfo::default()
    };
    if let Some(url) = redis.url() {
        match provenance::ping(url, pings) {
            Ok(h) => redis_info.ping_before = Some(h),
            Err(e) => progress(&format!("Redis PING failed: {e:#}")),
        }
    }
    let timer = timer::calibrate(200_000);
    progress(&format!(
        "clock: {:.1} ns per read; an empty timed region reads {:.0} ns (subtracted from every single-operation latency)",
        timer.read_ns, timer.empty_region_ns
    ));

    let mut infos = Vec::new();
    let mut runnable: Vec<Row> = Vec::new();
    for row in &wanted {
        let skipped = row.unavailable(redis.url(), &redis_problem);
        if let Some(reason) = &skipped {
            progress(&format!("{}: not measured: {reason}", row.id));
        } else {
            runnable.push(*row);
        }
        infos.push(RowInfo::of(row, skipped));
    }

    let mut cells = Vec::new();
    if let Some(table) = &plan.table {
        for (i, dataset) in plan.datasets.iter().enumerate() {
            cells.extend(cell::run_table(
                exe,
                &runnable,
                i,
                *dataset,
                table,
                plan.seed,
                plan.settle_pages,
                &base,
                redis.url(),
                progress,
            ));
        }
    }
    let setup = Setup {
        exe,
        base: &base,
        redis_url: redis.url(),
        dataset: plan.main_dataset(),
        seed: plan.seed,
        sample_every: plan.sample_every,
        settle_pages: plan.settle_pages,
    };
    let contention = match &plan.contention {
        Some(settings) => contention::run_all(&setup, &runnable, settings, progress),
        None => Vec::new(),
    };
    let readers = match &plan.readers {
        Some(settings) => readers::run_all(&setup, &runnable, settings, progress),
        None => Vec::new(),
    };
    let mut sweeps = Vec::new();
    for spec in &plan.sweeps {
        sweeps.push(sweep::run(&setup, &runnable, spec, progress)?);
    }
    let limits = if plan.limits_runs == 0 {
        LimitsOutcome::Skipped(match plan.preset {
            crate::plan::Preset::Smoke => "not run in smoke mode".into(),
            _ => "left out of this run (--skip limits, or a sweep alone)".into(),
        })
    } else {
        progress(&format!("physical floor: limits.c, {} runs of about 10 s", plan.limits_runs));
        limits::measure(&base, &base, plan.limits_runs)
    };
    if let Some(url) = redis.url() {
        match provenance::ping(url, pings) {
            Ok(h) => redis_info.ping_after = Some(h),
            Err(e) => progress(&format!("Redis PING failed: {e:#}")),
        }
    }
    drop(redis); // stops a private redis-server
    let elapsed = started.elapsed();
    let others_cpu_share = cpu_before
        .zip(machine::CpuSnapshot::take())
        .map(|(before, after)| before.others_share(&after, elapsed.as_secs_f64(), machine.cores));
    Ok(Results {
        schema: SCHEMA,
        provenance: Provenance {
            date,
            command: options.command.clone(),
            harness: env!("CARGO_PKG_VERSION").into(),
            git_commit,
            git_dirty,
            machine,
            load_before,
            load_after: machine::load_average(),
            others_cpu_share,
            redis: redis_info,
            timer: Some(timer),
        },
        plan: plan.clone(),
        rows: infos,
        cells,
        contention,
        readers,
        sweeps,
        limits,
        elapsed_s: elapsed.as_secs_f64(),
    })
}
