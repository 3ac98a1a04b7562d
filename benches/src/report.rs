//! Renders a run's [`Results`] (read back from `results.json` or just
//! measured) into the Markdown report, its SVG charts and the terminal
//! summary. Rendering measures nothing: the same file always renders the same
//! report. Every ratio is taken between figures of the same run.

use std::fmt::Write;

use crate::chart::{self, Panel, Series, XAxis};
use crate::format::{self as f, seed_of};
use crate::group::{GroupRun, Pick};
use crate::limits::LimitsOutcome;
use crate::plan::{Dataset, Preset};
use crate::reference;
use crate::results::{ContentionResult, Outcome, ProcessCell, ReadersResult, Results, RowInfo};
use crate::rows::BASELINE;
use crate::stats;
use crate::sweep::{SweepKind, SweepResult};
use crate::table::Table;
use crate::workload::{Column, BATCH};

/// What rendering produces.
#[derive(Clone, Debug)]
pub struct Outputs {
    /// The Markdown report.
    pub markdown: String,
    /// The charts: (file name, SVG), linked from the report by file name.
    pub charts: Vec<(String, String)>,
    /// The strategy table and the main comparisons for the terminal.
    pub terminal: String,
}

/// Renders everything.
pub fn render(results: &Results) -> Outputs {
    let mut charts = Vec::new();
    if !results.contention.is_empty() {
        charts.push((CONTENTION_SVG.to_string(), contention_chart(results)));
    }
    if !results.readers.is_empty() {
        charts.push((READERS_SVG.to_string(), readers_chart(results)));
    }
    for sweep in &results.sweeps {
        charts.push((sweep_svg(sweep.spec.kind), sweep_chart(results, sweep)));
    }
    Outputs { markdown: markdown(results), charts, terminal: terminal(results) }
}

/// The contention chart's file name.
pub const CONTENTION_SVG: &str = "benchmarks-contention.svg";
/// The readers chart's file name.
pub const READERS_SVG: &str = "benchmarks-readers.svg";

/// A sweep chart's file name.
pub fn sweep_svg(kind: SweepKind) -> String {
    format!("benchmarks-sweep-{}.svg", kind.name())
}

// ---------------------------------------------------------------- helpers

fn label_of<'a>(results: &'a Results, id: &str) -> &'a str {
    results.row(id).map_or("?", |r| r.label.as_str())
}

fn safety(row: &RowInfo) -> &'static str {
    match (row.safe, &row.one_writer) {
        (false, _) => "NO (loses updates)",
        (true, None) => "yes",
        (true, Some(_)) => "one writer process",
    }
}

fn load_text(load: Option<[f64; 3]>) -> String {
    load.map_or_else(|| "unknown".into(), |l| format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2]))
}

/// Share of the machine other processes may use before a run is called busy.
pub const BUSY_SHARE: f64 = 0.10;

/// Whether other work disturbed the run: other processes used more than
/// [`BUSY_SHARE`] of the CPU during it (or, where that cannot be measured, the
/// 1-minute load average was above a quarter of the cores at the start).
pub fn was_busy(results: &Results) -> bool {
    let p = &results.provenance;
    match p.others_cpu_share {
        Some(share) => share > BUSY_SHARE,
        None => p.load_before.is_some_and(|l| l[0] > p.machine.cores as f64 * 0.25),
    }
}

fn dataset_text(d: &Dataset) -> String {
    format!(
        "{} keys of 13 bytes with {}-byte values, in maph stores of {} slots of 512 bytes ({} load, {} MiB)",
        f::thousands(d.keys as u64),
        d.value_size,
        f::thousands(d.slots),
        f::percent(d.load()),
        d.slots * 512 / (1 << 20)
    )
}

/// A cell's text in the strategy table.
fn cell_text(results: &Results, row: &str, dataset: usize, column: Column) -> String {
    match results.cell(row, dataset, column).map(|c| &c.outcome) {
        Some(Outcome::Measured(p)) => f::spread(&groups(p)),
        Some(Outcome::NotApplicable(_)) => "n/a".into(),
        Some(Outcome::Failed(_)) => "failed".into(),
        None => "—".into(),
    }
}

fn groups(processes: &[ProcessCell]) -> Vec<Vec<f64>> {
    processes.iter().map(|p| p.samples_ns.clone()).collect()
}

/// `row`'s cell over the baseline's (a locked read over the baseline's
/// lock-free read), with its interval.
fn overhead(results: &Results, row: &str, dataset: usize, column: Column) -> Option<String> {
    let ours = groups(results.cell_processes(row, dataset, column)?);
    let base = groups(results.cell_processes(BASELINE, dataset, column.without_lock())?);
    Some(f::ratio_of(&ours, &base, seed_of(&[row, column.id(), "baseline"])))
}

fn point<'a>(results: &'a Results, row: &str, procs: usize) -> Option<&'a crate::results::ContentionPoint> {
    results.contention_point(row, procs).and_then(|c| c.outcome.measured())
}

/// Median over runs of a quantile of one of each run's histograms.
fn run_quantile(runs: &[GroupRun], q: f64, pick: Pick) -> Option<f64> {
    stats::median(&runs.iter().filter_map(|r| pick(r).quantile(q)).collect::<Vec<_>>())
}

fn throughputs(runs: &[GroupRun]) -> Vec<f64> {
    runs.iter().map(GroupRun::throughput).collect()
}

fn not_run(outcome_na: bool, failed: bool) -> String {
    if outcome_na {
        "n/a (one process)".into()
    } else if failed {
        "failed".into()
    } else {
        "—".into()
    }
}

fn contention_text(
    results: &Results,
    row: &str,
    procs: usize,
    f: impl Fn(&crate::results::ContentionPoint) -> String,
) -> String {
    match results.contention_point(row, procs).map(|c| &c.outcome) {
        Some(Outcome::Measured(p)) => f(p),
        Some(Outcome::NotApplicable(_)) => not_run(true, false),
        Some(Outcome::Failed(_)) => not_run(false, true),
        None => "—".into(),
    }
}

// ---------------------------------------------------------------- tables

fn strategy_table(results: &Results, dataset: usize) -> Table {
    let mut headers = vec!["strategy".to_string(), "safe, several writers".into()];
    headers.extend(Column::ALL.iter().map(|c| c.title().to_string()));
    let mut table = Table::new(headers);
    for row in results.measured_rows() {
        let mut cells = vec![row.label.clone(), safety(row).into()];
        cells.extend(Column::ALL.iter().map(|&c| cell_text(results, &row.id, dataset, c)));
        table.push(cells);
    }
    table
}

fn overhead_table(results: &Results, dataset: usize) -> Option<Table> {
    results.row(BASELINE).filter(|r| r.skipped.is_none())?;
    let mut headers = vec!["strategy".to_string()];
    headers.extend(Column::ALL.iter().map(|c| c.title().to_string()));
    let mut table = Table::new(headers);
    for row in results.measured_rows().filter(|r| r.id != BASELINE) {
        let mut cells = vec![row.label.clone()];
        for column in Column::ALL {
            cells.push(overhead(results, &row.id, dataset, column).unwrap_or_else(|| "—".into()));
        }
        table.push(cells);
    }
    Some(table)
}

/// The read column of every maph row runs the same code: its spread is the
/// noise every comparison in the table carries.
fn identical_code_table(results: &Results, dataset: usize) -> (Table, Vec<f64>) {
    let mut table = Table::new(vec![
        "strategy".into(),
        "read: median (process range)".into(),
        "range ÷ median".into(),
        "criterion's interval ÷ median (median over processes)".into(),
        "÷ fastest row [95 % interval]".into(),
        "large folios".into(),
        "2 MiB-mapped".into(),
        "physical 2 MiB frames".into(),
    ]);
    let maph: Vec<&RowInfo> = results.measured_rows().filter(|r| r.store_read).collect();
    let centers: Vec<(String, f64)> = maph
        .iter()
        .filter_map(|r| {
            Some((r.id.clone(), stats::center(&groups(results.cell_processes(&r.id, dataset, Column::Read)?))?))
        })
        .collect();
    let fastest = centers.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|(id, _)| id.clone());
    for row in maph {
        let Some(processes) = results.cell_processes(&row.id, dataset, Column::Read) else { continue };
        let g = groups(processes);
        let medians = stats::group_medians(&g);
        let summary = stats::Summary::of(&medians);
        let criterion_width = stats::median(
            &processes
                .iter()
                .map(|p| (p.criterion_median.high - p.criterion_median.low) / p.criterion_median.estimate.max(1e-9))
                .collect::<Vec<_>>(),
        );
        let vs_fastest = fastest.as_deref().and_then(|id| {
            let base = groups(results.cell_processes(id, dataset, Column::Read)?);
            stats::ratio_interval(&g, &base, seed_of(&[&row.id, id, "identical"]))
        });
        let mapping = |pick: fn(&crate::mapping::MappingInfo) -> Option<f64>, show: fn(f64) -> String| {
            let values: Vec<f64> = processes.iter().filter_map(|p| p.mapping.as_ref().and_then(pick)).collect();
            match stats::Summary::of(&values) {
                Some(s) if s.n > 1 => format!("{}–{}", show(s.min), show(s.max)),
                Some(s) => show(s.median),
                None => "—".into(),
            }
        };
        table.push(vec![
            row.label.clone(),
            f::spread(&g),
            summary.map_or("—".into(), |s| f::percent(s.relative_range())),
            criterion_width.map_or("—".into(), f::percent),
            vs_fastest.map_or("—".into(), |i| f::ratio_interval(&i)),
            mapping(|m| m.large_folio_share, f::percent),
            mapping(|m| Some(m.pmd_mapped_kib as f64 / m.rss_kib.max(1) as f64), f::percent),
            mapping(|m| m.physical_2m_frames.map(|n| n as f64), |v| format!("{v:.0}")),
        ]);
    }
    (table, centers.iter().map(|c| c.1).collect())
}

fn comparison_table(results: &Results) -> Table {
    let mut table = Table::new(vec![
        "strategy".into(),
        "increments/s, 1 process".into(),
        "increments/s, 2 processes".into(),
        "2 ÷ 1 [95 % interval]".into(),
        "increment p99, 2 processes".into(),
        "open-loop p99, 2 processes".into(),
        "set, one process (table)".into(),
        "lost updates, 2+ processes".into(),
        "safety".into(),
    ]);
    let dataset = 0;
    for row in results.measured_rows() {
        let one = point(results, &row.id, 1);
        let two = point(results, &row.id, 2);
        let scaling = match (one, two) {
            (Some(a), Some(b)) => Some(f::ratio_of(
                &stats::singletons(throughputs(&b.runs)),
                &stats::singletons(throughputs(&a.runs)),
                seed_of(&[&row.id, "scaling"]),
            )),
            _ => None,
        };
        let (lost, ops) = results
            .contention
            .iter()
            .filter(|c| c.row == row.id && c.procs >= 2)
            .filter_map(|c| c.outcome.measured())
            .flat_map(|p| &p.runs)
            .fold((0i64, 0u64), |(l, o), r| (l + r.lost().unwrap_or(0), o + r.writes + r.warmup_increments));
        let any_multi =
            results.contention.iter().any(|c| c.row == row.id && c.procs >= 2 && c.outcome.measured().is_some());
        table.push(vec![
            row.label.clone(),
            contention_text(results, &row.id, 1, |p| f::rate_range(&throughputs(&p.runs))),
            contention_text(results, &row.id, 2, |p| f::rate_range(&throughputs(&p.runs))),
            scaling.unwrap_or_else(|| "—".into()),
            contention_text(results, &row.id, 2, |p| f::ns_or_dash(run_quantile(&p.runs, 0.99, |r| &r.write_latency))),
            contention_text(results, &row.id, 2, |p| {
                f::ns_or_dash(
                    p.open_loop.as_ref().and_then(|o| o.measured()).and_then(|r| r.write_latency.quantile(0.99)),
                )
            }),
            cell_text(results, &row.id, dataset, Column::Write),
            if any_multi { format!("{lost} of {}", f::thousands(ops)) } else { "—".into() },
            safety(row).into(),
        ]);
    }
    table
}

fn contention_table(results: &Results) -> Table {
    let mut table = Table::new(vec![
        "strategy".into(),
        "processes".into(),
        "increments/s, median [min–max]".into(),
        "increment p50".into(),
        "p99".into(),
        "p99.9".into(),
        "lock wait p50".into(),
        "lock wait p99".into(),
        "open loop: rate".into(),
        "open-loop p50".into(),
        "open-loop p99".into(),
        "open-loop p99.9".into(),
        "lost updates per run".into(),
        "failed / torn".into(),
        "start skew".into(),
    ]);
    for row in results.measured_rows() {
        let entries: Vec<&ContentionResult> = results.contention.iter().filter(|c| c.row == row.id).collect();
        let not_run: Vec<String> = entries
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::NotApplicable(_)))
            .map(|c| c.procs.to_string())
            .collect();
        let mut listed_not_run = false;
        for c in entries {
            let mut cells = vec![row.label.clone()];
            match &c.outcome {
                Outcome::Measured(p) => {
                    let q = |q: f64, pick: Pick| f::ns_or_dash(run_quantile(&p.runs, q, pick));
                    let open = p.open_loop.as_ref().and_then(|o| o.measured());
                    let oq = |q: f64| f::ns_or_dash(open.and_then(|r| r.write_latency.quantile(q)));
                    let errors: u64 = p.runs.iter().map(|r| r.errors).sum();
                    let damaged: u64 = p.runs.iter().map(|r| r.damaged).sum();
                    let skew = p.runs.iter().map(|r| r.start_skew_ns).max().unwrap_or(0);
                    cells.extend([
                        c.procs.to_string(),
                        f::rate_range(&throughputs(&p.runs)),
                        q(0.5, |r| &r.write_latency),
                        q(0.99, |r| &r.write_latency),
                        q(0.999, |r| &r.write_latency),
                        q(0.5, |r| &r.lock_wait),
                        q(0.99, |r| &r.lock_wait),
                        open.map_or("—".into(), |r| {
                            format!("{} asked, {} done", f::rate(r.target_rate.unwrap_or(0.0)), f::rate(r.throughput()))
                        }),
                        oq(0.5),
                        oq(0.99),
                        oq(0.999),
                        p.runs.iter().map(|r| r.lost().unwrap_or(0).to_string()).collect::<Vec<_>>().join(", "),
                        format!("{errors} / {damaged}"),
                        f::ns(skew as f64),
                    ]);
                }
                Outcome::NotApplicable(why) => {
                    if std::mem::replace(&mut listed_not_run, true) {
                        continue;
                    }
                    cells.push(not_run.join(", "));
                    cells.push(format!("not run: {why}"));
                }
                Outcome::Failed(e) => {
                    cells.push(c.procs.to_string());
                    cells.push(format!("failed: {}", f::one_line(e)));
                }
            }
            table.push(cells);
        }
    }
    table
}

fn readers_table(results: &Results) -> Table {
    let mut table = Table::new(vec![
        "readers of".into(),
        "writers".into(),
        "reads/s".into(),
        "reader p50".into(),
        "reader p99".into(),
        "reader p99.9".into(),
        "reader p99 ÷ with 0 writers".into(),
        "writes/s".into(),
    ]);
    for r in &results.readers {
        let name = readers_label(results, r);
        // Writer counts a row cannot run are listed together, on one line.
        let same = |o: &&ReadersResult| o.row == r.row && o.locked == r.locked;
        let not_run: Vec<&ReadersResult> =
            results.readers.iter().filter(same).filter(|o| matches!(o.outcome, Outcome::NotApplicable(_))).collect();
        if matches!(r.outcome, Outcome::NotApplicable(_)) && !std::ptr::eq(not_run[0], r) {
            continue;
        }
        let writers = if matches!(r.outcome, Outcome::NotApplicable(_)) {
            not_run.iter().map(|o| o.writers.to_string()).collect::<Vec<_>>().join(", ")
        } else {
            r.writers.to_string()
        };
        let mut cells = vec![name, writers];
        match &r.outcome {
            Outcome::Measured(runs) => {
                let q = |q: f64| f::ns_or_dash(run_quantile(runs, q, |r| &r.read_latency));
                let alone = results
                    .readers
                    .iter()
                    .find(|o| o.row == r.row && o.locked == r.locked && o.writers == 0)
                    .and_then(|o| o.outcome.measured());
                let vs_alone = alone.map(|a| {
                    let p99 = |runs: &[GroupRun]| {
                        stats::singletons(runs.iter().filter_map(|r| r.read_latency.quantile(0.99)))
                    };
                    f::ratio_of(&p99(runs), &p99(a), seed_of(&[&r.row, "readers", &r.writers.to_string()]))
                });
                cells.extend([
                    f::rate_range(&runs.iter().map(GroupRun::read_throughput).collect::<Vec<_>>()),
                    q(0.5),
                    q(0.99),
                    q(0.999),
                    if r.writers == 0 { "1".into() } else { vs_alone.unwrap_or_else(|| "—".into()) },
                    if r.writers == 0 {
                        "—".into()
                    } else {
                        f::rate_range(&runs.iter().map(GroupRun::write_throughput).collect::<Vec<_>>())
                    },
                ]);
            }
            Outcome::NotApplicable(why) => cells.push(format!("not run: {why}")),
            Outcome::Failed(e) => cells.push(format!("failed: {}", f::one_line(e))),
        }
        table.push(cells);
    }
    table
}

fn readers_label(results: &Results, r: &ReadersResult) -> String {
    let label = label_of(results, &r.row);
    if r.locked {
        format!("{label}, readers take LOCK_SH (the reference's readers)")
    } else {
        label.to_string()
    }
}

fn redis_table(results: &Results, rtt: f64) -> Table {
    let mut table =
        Table::new(vec!["strategy".into(), "what".into(), "time".into(), "round trips (÷ PING p50)".into()]);
    for row in results.measured_rows().filter(|r| r.provider == "maph-coord-redis") {
        for column in [Column::Write, Column::LockedRead, Column::Write100, Column::LockUnlock] {
            if let Some(t) = results.cell(&row.id, 0, column).and_then(|c| c.center()) {
                table.push(vec![row.label.clone(), format!("table: {}", column.title()), f::ns(t), f::sig3(t / rtt)]);
            }
        }
        for c in results.contention.iter().filter(|c| c.row == row.id) {
            if let Some(p50) = c.outcome.measured().and_then(|p| run_quantile(&p.runs, 0.5, |r| &r.write_latency)) {
                table.push(vec![
                    row.label.clone(),
                    format!("increment p50, {} process{}", c.procs, if c.procs == 1 { "" } else { "es" }),
                    f::ns(p50),
                    f::sig3(p50 / rtt),
                ]);
            }
        }
    }
    table
}

// ---------------------------------------------------------------- markdown

fn markdown(results: &Results) -> String {
    let mut md = String::new();
    let p = &results.provenance;
    let plan = &results.plan;
    let _ = writeln!(md, "# maph benchmarks\n");
    let _ = writeln!(
        md,
        "<!-- Rendered by maph-bench from results.json. Regenerate with `scripts/bench --update-docs` \
         (measures) or `maph-bench render RESULTS.json` (does not); do not edit by hand. -->\n"
    );
    let commit = match (&p.git_commit, p.git_dirty) {
        (Some(c), Some(true)) => format!(" of commit `{}` with uncommitted changes", &c[..c.len().min(12)]),
        (Some(c), _) => format!(" of commit `{}`", &c[..c.len().min(12)]),
        (None, _) => String::new(),
    };
    let _ = writeln!(
        md,
        "Generated by `{}` ({} mode) on {}, in {:.0} s, measuring the code{commit}.\n",
        p.command,
        plan.preset.name(),
        p.date,
        results.elapsed_s
    );
    if plan.preset == Preset::Smoke {
        let _ = writeln!(
            md,
            "> **Smoke run.** Tiny iteration counts that only prove the harness works end to end; \
             these figures are not measurements.\n"
        );
    }
    let others = p.others_cpu_share.map_or_else(String::new, |s| {
        format!(" Other processes used {:.0}% of its CPU time during the run.", s * 100.0)
    });
    let _ = writeln!(
        md,
        "**Conditions:** load average (1 / 5 / 15 min) {} before the run and {} after, on {} cores.{others}{}\n",
        load_text(p.load_before),
        load_text(p.load_after),
        p.machine.cores,
        if was_busy(results) {
            " **Other work was running on this machine, so these numbers are noisier than a quiet machine's; \
             regenerate them on a quiet machine before relying on them.**"
        } else {
            " The machine was otherwise quiet."
        }
    );
    let _ = writeln!(
        md,
        "Every figure below comes from the run's raw results (every sample and histogram, the parameters, and \
         the provenance below): `results.json` in the run's folder, copied beside the tracked report as \
         `docs/benchmarks-results.json` (and the tables as `.csv`). `maph-bench render` renders this report \
         from it again; `maph-bench compare OLD.json NEW.json` compares two runs (see `benches/README.md`).\n"
    );

    machine_section(&mut md, results);
    for (i, dataset) in plan.datasets.iter().enumerate() {
        if results.cells.iter().any(|c| c.dataset == i) {
            table_section(&mut md, results, i, dataset);
        }
    }
    if !results.contention.is_empty() {
        comparison_section(&mut md, results);
        reference_section(&mut md, results);
        contention_section(&mut md, results);
    }
    redis_section(&mut md, results);
    if !results.readers.is_empty() {
        readers_section(&mut md, results);
    }
    for sweep in &results.sweeps {
        sweep_section(&mut md, results, sweep);
    }
    floor_section(&mut md, results);
    not_measured_section(&mut md, results);

    let _ = writeln!(md, "\n## How to regenerate\n");
    let _ = writeln!(
        md,
        "On a quiet machine (nothing else compiling or running), from the repository root:\n\n\
         ```sh\n\
         scripts/bench --update-docs   # about 5 minutes on 2 cores; rewrites this file and its charts\n\
         scripts/bench                 # the same, into bench-results/ only (this file is left alone)\n\
         scripts/bench --thorough      # more processes, samples and repeats, for publishing\n\
         scripts/bench render docs/benchmarks-results.json --out docs/BENCHMARKS.md   # no measuring\n\
         ```\n\n\
         See `benches/README.md` for sweeps, `--only`, `compare`, and how to read the tables."
    );
    md
}

fn machine_section(md: &mut String, results: &Results) {
    let p = &results.provenance;
    let m = &p.machine;
    let _ = writeln!(md, "## Machine and provenance\n");
    let mut t = Table::new(vec!["what".into(), "this run".into()]);
    t.push(vec!["CPU".into(), format!("{}{}", m.cpu, if m.virtualised { " (virtual machine)" } else { "" })]);
    t.push(vec!["logical cores".into(), m.cores.to_string()]);
    t.push(vec!["caches".into(), m.caches.clone()]);
    t.push(vec!["kernel".into(), format!("Linux {}", m.kernel)]);
    t.push(vec!["frequency governor".into(), m.governor.clone()]);
    t.push(vec!["transparent huge pages (anonymous)".into(), m.transparent_hugepages.clone()]);
    t.push(vec!["compiler".into(), m.rustc.clone()]);
    t.push(vec![
        "build".into(),
        if m.optimized { "optimised (release profile)".into() } else { "NOT optimised (debug build)".into() },
    ]);
    t.push(vec!["filesystem of the stores".into(), m.filesystem.clone()]);
    t.push(vec![
        "code".into(),
        match (&p.git_commit, p.git_dirty) {
            (Some(c), Some(true)) => format!("{c} (with uncommitted changes)"),
            (Some(c), _) => c.clone(),
            (None, _) => "unknown (not a git checkout)".into(),
        },
    ]);
    if let Some(timer) = &p.timer {
        t.push(vec![
            "clock (CLOCK_MONOTONIC)".into(),
            format!(
                "{} per read; an empty timed region reads {} (p99 {}), subtracted from every single-operation latency",
                f::ns(timer.read_ns),
                f::ns(timer.empty_region_ns),
                f::ns(timer.empty_region_p99_ns)
            ),
        ]);
    }
    let redis = &p.redis;
    let ping = |h: &Option<crate::histogram::Histogram>| {
        h.as_ref().map_or("—".into(), |h| {
            format!("p50 {} / p99 {}", f::ns_or_dash(h.quantile(0.5)), f::ns_or_dash(h.quantile(0.99)))
        })
    };
    let version = redis.version.as_ref().filter(|v| !redis.source.contains(v.as_str()));
    t.push(vec!["Redis".into(), format!("{}{}", redis.source, version.map_or(String::new(), |v| format!(", {v}")))]);
    if redis.ping_before.is_some() || redis.ping_after.is_some() {
        t.push(vec![
            "Redis PING round trip".into(),
            format!("at the start {}; at the end {}", ping(&redis.ping_before), ping(&redis.ping_after)),
        ]);
    }
    md.push_str(&t.markdown());
}

fn table_section(md: &mut String, results: &Results, dataset: usize, d: &Dataset) {
    let plan = &results.plan;
    let Some(settings) = &plan.table else { return };
    let heading = if plan.datasets.len() > 1 { format!(": {}", d.name()) } else { String::new() };
    let _ = writeln!(md, "\n## The strategy table: one process, no contention{heading}\n");
    let c = &settings.criterion;
    let _ = writeln!(
        md,
        "Every row through the same code (`benches/src/workload.rs`), on {}. Each row is measured in {} \
         freshly started processes (`benches/src/cell.rs`), in rounds, each round in its own shuffled row order; \
         each process makes and fills its own store and has criterion time every column ({} samples, {} ms \
         warm-up, {} ms measurement). A cell is **the median of the processes' medians (the range of the \
         process medians)**; each process's median is over criterion's samples, each sample the mean time of \
         many back-to-back iterations. Keys are walked in a random order (the same for every row); the batch \
         columns take consecutive runs of {BATCH} keys of that order (random keys in random order) and are per \
         batch. {}\n",
        dataset_text(d),
        settings.processes,
        c.sample_size,
        c.warm_up_ms,
        c.measurement_ms,
        if plan.settle_pages {
            "Every maph store is read once, in order, before use, so all rows' pages sit alike in the page cache \
             (see \"Identical code, different processes\" below)."
        } else {
            "**Run with `--pages-as-written`:** each store's pages sit where its own writes and start-up put them \
             (see \"Identical code, different processes\" below)."
        }
    );
    let _ = writeln!(md, "- **write**: `Store::set` (locks only the key's probe window where the coordinator can); peers: one write transaction.");
    let _ = writeln!(md, "- **read**: `Store::get_into`, lock-free under the slot's seqlock, whatever the strategy (one shared, non-generic function); peers: one read transaction.");
    let _ = writeln!(md, "- **read, shared lock**: the same read inside the strategy's shared lock on the key's window, as the reference's `flock(LOCK_SH)` reader does. maph readers never need it. Measured only where a lock is taken: \"n/a\" where readers are granted shared access without one (single writer, partitioning, uncoordinated, peers); the Redis token and the futex lock have no shared mode and take their lock exclusively.");
    let _ = writeln!(md, "- **100 writes, one commit**: one `Store::write` holding 100 `set`s (one lock acquisition); peers: one transaction.");
    let _ = writeln!(md, "- **100 reads**: 100 lock-free reads; peers: one read transaction.");
    let _ = writeln!(md, "- **lock + unlock**: the coordinator's exclusive lock on one key's window, taken and given back with nothing written: the lock's own cost (compare it with the physical floor below); peers: a write transaction begun and aborted.\n");
    md.push_str(&strategy_table(results, dataset).markdown());
    let notes: Vec<&RowInfo> = results.measured_rows().filter(|r| r.note.is_some()).collect();
    if !notes.is_empty() {
        let _ = writeln!(md);
        for r in notes {
            let _ = writeln!(md, "- {}: {}.", r.label, r.note.as_deref().unwrap_or(""));
        }
    }
    if let Some(table) = overhead_table(results, dataset) {
        let _ = writeln!(
            md,
            "\n### Overhead against the uncoordinated baseline\n\n\
             Ratio of the cell to the uncoordinated baseline's (the store's own cost, safe only with one writer), \
             both from this run, with a **95 % interval** from a two-level bootstrap (processes drawn with \
             replacement, then each drawn process's samples), so the spread between processes is in it. \
             **≈** marks a ratio whose interval contains 1: no difference this run can tell from noise. With \
             {} processes a side the interval is approximate (it cannot see a placement none of them drew); \
             `--thorough` runs 7, and `maph-bench compare` tests merged runs.\n",
            settings.processes
        );
        md.push_str(&table.markdown());
    }
    let (table, centers) = identical_code_table(results, dataset);
    if centers.len() > 1 {
        let (lo, hi) = centers.iter().fold((f64::MAX, f64::MIN), |(a, b), &c| (a.min(c), b.max(c)));
        let _ = writeln!(
            md,
            "\n### Identical code, different processes\n\n\
             Every row below reads one maph store with the same machine code (`Store::get_into`, one \
             non-generic function; partitioning routes first and is left out), so its differences between rows \
             and between processes of one row are noise, and they bound what any ratio above can show. In this \
             run the rows' medians span {} to {} ({}). Set the range between processes (third column) beside \
             criterion's interval within one process (fourth): where the range is the wider, the spread between \
             processes, not the samples within one, is the noise of the table, and only intervals that resample \
             processes (those above) account for it. The last three columns describe where each process's store \
             landed \
             in memory (`benches/src/mapping.rs`; ranges over the processes).\n",
            f::ns(lo),
            f::ns(hi),
            f::ratio(hi, lo)
        );
        md.push_str(&table.markdown());
        let _ = writeln!(md, "\n{IDENTICAL_CODE_FINDING}");
    }
}

/// What the investigation of the read column's spread found (reproduce it
/// with `maph-bench placement`, and across the table with `--pages-as-written`).
pub const IDENTICAL_CODE_FINDING: &str = "**Why identical reads differ.** Every maph row reads through the \
same function, yet measured in one long-lived process (this harness before) the read ranged from 90 to \
246 ns across rows, and a review found single writer 10–13 % faster than uncoordinated in every row order. \
Two causes, neither of them a strategy. (1) *Where the store's pages sit.* A store whose pages are first \
touched in random order (by the random writes that fill it) lies in the page cache as scattered 4 KiB \
folios; touched front to back, by a scan of the whole store (single writer's start-up repair scanned \
every slot when that table was made; the other coordinators never scan), it lies in large folios, \
physically together. The same store, code and keys, in one process, read alternately a walk of every key \
at a time: the scattered copy read 10–14 % slower at 10,000 keys, 7–11 % at 30,000, 4–7 % at 2,000 and \
0–0.6 % at 1,000 (three to seven processes each, on the loaded development VM; `scripts/bench placement` \
repeats the experiment). The difference appears exactly when the reads outrun the TLB: it is the page \
walk, which on a virtual machine goes through the guest's and the host's page tables, and the scattered \
copy's 8,192 pages span about 4,100 physical 2 MiB regions against about 2,000. So the harness reads every \
maph store once, in order, before use: all rows get the same placement (`--pages-as-written` turns this \
off and shows the effect), and the table above records each process's placement. (2) *Everything else \
that changes from one process to the next* (the machine's other load, where the mapping and the heap \
land): each row runs in several fresh processes, and every interval carries that spread.";

fn comparison_section(md: &mut String, results: &Results) {
    let _ = writeln!(md, "\n## Comparison of strategies\n");
    let _ = writeln!(
        md,
        "The reference's second table, measured like with like: both throughput columns are the same workload \
         (increments of shared counters, below) at 1 and at 2 writer processes, and their ratio has a 95 % \
         interval over the runs. The increment p99 is closed-loop (each worker starts its next increment when \
         the last ends); the open-loop p99 asks for half the closed-loop throughput at a fixed rate and measures \
         each increment from when it was due. The `set` column is the single-process table's write, a different \
         operation, for reference.\n"
    );
    md.push_str(&comparison_table(results).markdown());
}

fn reference_section(md: &mut String, results: &Results) {
    let _ = writeln!(md, "\n## Beside the reference's published figures\n");
    let _ = writeln!(
        md,
        "The reference design text publishes the figures below without a machine, a method or a spread. \
         Ours are from this run; \"overhead\" is flock ÷ no lock in each, with its 95 % interval.\n"
    );
    let mut table = Table::new(vec![
        "operation".into(),
        "what ours measures".into(),
        "reference: no lock".into(),
        "ours: uncoordinated".into(),
        "reference: flock".into(),
        "ours: flock".into(),
        "reference overhead".into(),
        "our overhead".into(),
    ]);
    for r in reference::OVERHEAD {
        // The reference's reader takes the lock around every read: compare the
        // baseline's plain read with flock's read under its shared lock.
        let base = results.cell_processes(BASELINE, 0, r.column.without_lock()).map(groups);
        let flock = results.cell_processes("flock", 0, r.column).map(groups);
        let ratio = match (&flock, &base) {
            (Some(fl), Some(b)) => f::ratio_of(fl, b, seed_of(&["reference", r.operation])),
            _ => "—".into(),
        };
        table.push(vec![
            r.operation.into(),
            r.ours.into(),
            f::ns(r.no_lock_ns),
            base.map_or("—".into(), |g| f::spread(&g)),
            f::ns(r.flock_ns),
            flock.map_or_else(|| "not measured".into(), |g| f::spread(&g)),
            f::ratio(r.flock_ns, r.no_lock_ns),
            ratio,
        ]);
    }
    md.push_str(&table.markdown());
    let _ = writeln!(
        md,
        "\nThe reference's batch figures are 100 times its single-operation ones (a lock per operation); \
         ours are what maph does: one lock for a commit of 100 writes, and no lock at all for reads (so the \
         batch-read \"overhead\" compares two identical lock-free loops). The single-read row uses flock's \
         \"read, shared lock\" column to match the reference's `flock(LOCK_SH)` reader; a maph reader never \
         needs it. The reference's \"17M ops/sec\" and \"300ns\" cannot describe the same single writer: one \
         operation every 300 ns is 3.3 M ops/s."
    );
    let mut table = Table::new(vec![
        "reference strategy".into(),
        "reference throughput".into(),
        "reference latency".into(),
        "our rows".into(),
        "ours: increments/s, 1 process".into(),
        "ours: set (table)".into(),
    ]);
    for r in reference::STRATEGIES {
        let ours: Vec<&RowInfo> =
            r.ours.iter().filter_map(|id| results.row(id)).filter(|r| r.skipped.is_none()).collect();
        let join = |f: &dyn Fn(&RowInfo) -> String| -> String {
            if ours.is_empty() {
                "—".into()
            } else {
                ours.iter().map(|row| f(row)).collect::<Vec<_>>().join("; ")
            }
        };
        table.push(vec![
            format!("{}{}", r.strategy, if r.safe { "" } else { " (unsafe)" }),
            r.throughput.into(),
            r.latency.into(),
            join(&|row| row.label.clone()),
            join(&|row| contention_text(results, &row.id, 1, |p| f::rate_range(&throughputs(&p.runs)))),
            join(&|row| cell_text(results, &row.id, 0, Column::Write)),
        ]);
    }
    let _ = writeln!(md);
    md.push_str(&table.markdown());
}

fn contention_section(md: &mut String, results: &Results) {
    let Some(c) = &results.plan.contention else { return };
    let _ = writeln!(md, "\n## Contention: several writer processes\n");
    let _ = writeln!(
        md,
        "![Increments per second and p99 increment time against writer processes]({CONTENTION_SVG})\n\n\
         Each run starts {:?} writer processes (real processes: this binary re-executed as workers) on a fresh \
         store whose {} counters this process has set to zero. Each worker opens the store, makes its \
         coordinator, warms up (one untimed increment per counter), and sleeps until **one start instant shared \
         by all workers**; then until one shared end, {} ms later, it increments counters chosen from **its own \
         random sequence** ({}; no two workers walk the counters in step; partitioned rows choose among their own \
         shard's counters). Every point is run {} times (closed loop), then once open loop.\n\n\
         - **increments/s**: all increments of a run over the time from the shared start to the last worker's \
         end (the clock is read once per batch of increments, so counting costs almost nothing): median \
         [min–max] over the runs.\n\
         - **increment** and **lock wait** percentiles: a random sample of about one increment in {} is timed on \
         its own (two clock reads, less the calibrated empty-region reading), and lock waits on another sample; \
         percentiles of all sampled operations of a run (histograms of 1.6 % resolution), median over runs.\n\
         - **open loop**: increments are due at a fixed rate, half the closed-loop median, split over the \
         workers; each increment's latency runs from when it was due, so a stall counts for every increment \
         queued behind it (no coordinated omission).\n\
         - **lost updates** = increments made (warm-up included) − sum of the counters afterwards, per run; only \
         an unsafe strategy can lose any. **failed / torn** counts increments that returned an error, and \
         increments that found a value that was not a counter. **start skew**: how late the last worker began \
         after the shared start.\n\n\
         This machine has {} cores, so more processes than that oversubscribe it: a lock holder can be \
         descheduled while others wait, which is what the p99 shows.\n",
        c.procs,
        c.counters,
        c.duration_ms,
        c.popularity.describe(),
        c.repeats,
        results.plan.sample_every,
        results.provenance.machine.cores
    );
    md.push_str(&contention_table(results).markdown());
    let errors: Vec<String> = results
        .contention
        .iter()
        .filter_map(|c| {
            let p = c.outcome.measured()?;
            let failed: u64 = p.runs.iter().map(|r| r.errors).sum();
            (failed > 0).then(|| {
                let first = p.runs.iter().find_map(|r| r.first_error.as_deref()).unwrap_or("(not recorded)");
                format!(
                    "- {}, {} processes: {failed} increments failed; the first error: {}",
                    label_of(results, &c.row),
                    c.procs,
                    f::one_line(first)
                )
            })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\nIncrements that failed (not counted in the throughput):\n");
        for e in errors {
            let _ = writeln!(md, "{e}");
        }
    }
}

fn redis_section(md: &mut String, results: &Results) {
    let Some(rtt) = results.provenance.redis.round_trip_ns() else { return };
    if !results.measured_rows().any(|r| r.provider == "maph-coord-redis") {
        return;
    }
    let _ = writeln!(md, "\n## The Redis rows in round trips\n");
    let _ = writeln!(
        md,
        "A Redis-coordinated write costs what its round trips to the server cost, and those vary from run to \
         run with the machine. So the run measures a PING round trip through the same client library at its \
         start and at its end (median of both: {}), and the Redis rows are given here in round trips as well \
         as in time. With more processes than cores, the server itself competes with the workers for the CPU \
         and is starved: the round trips of the many-process rows measure that.\n",
        f::ns(rtt)
    );
    md.push_str(&redis_table(results, rtt).markdown());
}

fn readers_section(md: &mut String, results: &Results) {
    let Some(settings) = &results.plan.readers else { return };
    let _ = writeln!(md, "\n## Readers under writers\n");
    let _ = writeln!(
        md,
        "![Reader p99 and reads per second against writer processes]({READERS_SVG})\n\n\
         maph's central claim: readers never wait for writers. {} reader process{} random keys of a filled \
         store (the table's dataset) as fast as they can while {:?} writer processes set random keys of the same \
         store under each strategy, all starting at one shared instant, for {} ms ({} run{} per point). A maph \
         reader maps the store read-only and reads lock-free, whatever the writers' strategy; LMDB's readers \
         open a read transaction per get; the reference design's readers take `flock(LOCK_SH)` around every \
         read (the flock row's second line). Reader latencies are sampled as in the contention runs (timer \
         cost subtracted). The \"÷ with 0 writers\" column compares each reader p99 with the same readers' \
         alone, with its interval over runs. A lock-free reader still shares the cores and the cache lines \
         with the writers: once readers and writers outnumber the {} cores, its p99 includes time descheduled, \
         which no lock causes; the LOCK_SH readers also wait for every writer's LOCK_EX.\n",
        settings.readers,
        if settings.readers == 1 { " gets" } else { "es get" },
        settings.writers,
        settings.duration_ms,
        settings.repeats,
        if settings.repeats == 1 { "" } else { "s" },
        results.provenance.machine.cores
    );
    md.push_str(&readers_table(results).markdown());
}

fn sweep_section(md: &mut String, results: &Results, sweep: &SweepResult) {
    let kind = sweep.spec.kind;
    let b = &sweep.base;
    let _ = writeln!(md, "\n## Sweep: {}\n", kind.axis());
    let _ = writeln!(
        md,
        "![Operations per second and p99 against {}]({})\n\n\
         Writer processes doing {} on random keys ({}), {}, for {} ms per run, {} run{} per point; only `{}` \
         varies (base point: {} writers, {} keys, {}-byte values, {}, {} gets). Throughput is median [min–max] \
         over the runs; the p99s are of sampled operations (timer cost subtracted), median over runs.\n",
        kind.axis(),
        sweep_svg(kind),
        if b.read_share > 0.0 || kind == SweepKind::ReadShare { "gets and sets" } else { "sets" },
        b.popularity.describe(),
        dataset_text(&b.dataset),
        sweep.spec.duration_ms,
        sweep.spec.repeats,
        if sweep.spec.repeats == 1 { "" } else { "s" },
        kind.name(),
        b.writers,
        f::thousands(b.dataset.keys as u64),
        b.dataset.value_size,
        b.popularity.describe(),
        f::percent(b.read_share)
    );
    let mut headers = vec!["strategy".to_string()];
    for v in &sweep.spec.values {
        headers.push(format!("{} = {}: ops/s", kind.name(), kind.show(*v)));
        headers.push("p99 (set / get)".into());
    }
    let mut table = Table::new(headers);
    for row in results.measured_rows() {
        let mut cells = vec![row.label.clone()];
        for v in &sweep.spec.values {
            match sweep.points.iter().find(|p| p.row == row.id && p.value == *v).map(|p| &p.outcome) {
                Some(Outcome::Measured(runs)) => {
                    cells.push(f::rate_range(&throughputs(runs)));
                    cells.push(format!(
                        "{} / {}",
                        f::ns_or_dash(run_quantile(runs, 0.99, |r| &r.write_latency)),
                        f::ns_or_dash(run_quantile(runs, 0.99, |r| &r.read_latency))
                    ));
                }
                Some(Outcome::NotApplicable(_)) => cells.extend(["n/a".into(), String::new()]),
                Some(Outcome::Failed(e)) => cells.extend([format!("failed: {}", f::one_line(e)), String::new()]),
                None => cells.extend(["—".into(), String::new()]),
            }
        }
        table.push(cells);
    }
    md.push_str(&table.markdown());
}

/// Which of our figures each floor line bounds: (row, column, operations per
/// iteration of the column, what the comparison is).
fn floor_uses(label: &str) -> Vec<(&'static str, Column, &'static str)> {
    let lock = "its lock + unlock";
    if label.contains("flock LOCK_EX") {
        vec![("flock", Column::LockUnlock, lock)]
    } else if label.contains("flock LOCK_SH") {
        vec![("flock", Column::LockedRead, "a read under LOCK_SH (the pair plus a read)")]
    } else if label.contains("fcntl OFD") {
        vec![("fcntl-whole", Column::LockUnlock, lock), ("fcntl-range", Column::LockUnlock, lock)]
    } else if label.contains("seqlock read, dependent") {
        vec![(BASELINE, Column::Read, "one read (a single get pays one miss after another)")]
    } else if label.contains("seqlock write, dependent") {
        vec![(BASELINE, Column::Write, "one write")]
    } else if label.contains("seqlock read, random slot") {
        vec![(BASELINE, Column::Read100, "a batch of 100 reads, per read (a batch can overlap its misses)")]
    } else if label.contains("seqlock write, random slot") {
        vec![(BASELINE, Column::Write100, "a commit of 100 writes, per write")]
    } else if label.contains("in-file CAS") {
        vec![
            ("single-writer", Column::LockUnlock, lock),
            ("futex", Column::LockUnlock, lock),
            ("futex-striped", Column::LockUnlock, lock),
            ("shard", Column::LockUnlock, lock),
        ]
    } else {
        vec![]
    }
}

fn floor_section(md: &mut String, results: &Results) {
    let _ = writeln!(md, "\n## The physical floor\n");
    let limits = match &results.limits {
        LimitsOutcome::Measured(l) => l,
        LimitsOutcome::Skipped(reason) => {
            let _ = writeln!(md, "`limits.c` was not run: {reason}.");
            return;
        }
    };
    let d = results.plan.main_dataset();
    let _ = writeln!(
        md,
        "`{}` compiled with `cc -O2` and run {} times in the stores' directory: the raw cost of each primitive, \
         in C, with nothing around it (each figure the mean of 1,000,000 iterations; here the median [min–max] \
         over the runs). Each floor is set beside the figure it bounds: a lock pair beside the strategy's lock + \
         unlock; the **dependent** random-slot floors (each address read from the previous slot, so one miss at \
         a time) beside a single read or write; the **independent** ones (misses overlap) beside a batch, per \
         operation. The ratio's 95 % interval resamples both sides. **A ratio below 1 is flagged**: the floor \
         does not bound that figure. The random-slot floors walk 1 Mi slots of 512 bytes (512 MiB, beyond the \
         caches) while the table's store is {} MiB with {} keys, so its reads can be cheaper than the floor's; \
         the data-path comparison is meaningful at the sizes where the store is as large as the floor's \
         mapping.\n",
        limits.source,
        limits.lines.first().map_or(0, |(_, v)| v.len()),
        d.slots * 512 / (1 << 20),
        f::thousands(d.keys as u64)
    );
    if let Some(plumbing) = results.cell(BASELINE, 0, Column::LockUnlock).and_then(|c| c.center()) {
        let _ = writeln!(
            md,
            "Every maph \"lock + unlock\" also finds the key's window (hashing the key) and goes through the \
             `WriteCoordinator` guard and its contention counter: the uncoordinated row, whose lock does nothing, \
             measures that part alone at {} in this run.\n",
            f::ns(plumbing)
        );
    }
    let mut table = Table::new(vec![
        "primitive".into(),
        "floor, median [min–max]".into(),
        "compared with".into(),
        "ours".into(),
        "× floor [95 % interval]".into(),
        "".into(),
    ]);
    for (label, values) in &limits.lines {
        let Some(s) = stats::Summary::of(values) else { continue };
        let (div, unit) = f::time_unit(s.median);
        let floor = format!("{} {unit} [{}–{}]", f::sig3(s.median / div), f::sig3(s.min / div), f::sig3(s.max / div));
        let mut any = false;
        for (id, column, what) in floor_uses(label) {
            let Some(processes) = results.cell_processes(id, 0, column) else { continue };
            any = true;
            let per_op: Vec<Vec<f64>> = groups(processes)
                .into_iter()
                .map(|g| g.into_iter().map(|v| v / column.ops() as f64).collect())
                .collect();
            let ratio =
                stats::ratio_interval(&per_op, &stats::singletons(values.iter().copied()), seed_of(&[label, id]));
            let flag = match &ratio {
                Some(i) if i.high < 1.0 => "**below the floor**",
                Some(i) if i.estimate < 1.0 => "**at or below the floor**",
                _ => "",
            };
            table.push(vec![
                label.clone(),
                floor.clone(),
                format!("{}: {what}", label_of(results, id)),
                f::spread(&per_op),
                ratio.map_or("—".into(), |i| f::ratio_interval(&i)),
                flag.into(),
            ]);
        }
        if !any {
            table.push(vec![label.clone(), floor, "—".into(), "—".into(), "—".into(), String::new()]);
        }
    }
    md.push_str(&table.markdown());
}

fn not_measured_section(md: &mut String, results: &Results) {
    let skipped: Vec<&RowInfo> = results.rows.iter().filter(|r| r.skipped.is_some()).collect();
    let mut failures = Vec::new();
    for c in &results.cells {
        if let Outcome::Failed(e) = &c.outcome {
            failures.push(format!("- {} / {}: {}", label_of(results, &c.row), c.column.title(), f::one_line(e)));
        }
    }
    for c in &results.contention {
        if let Outcome::Failed(e) = &c.outcome {
            failures.push(format!("- {} / {} processes: {}", label_of(results, &c.row), c.procs, f::one_line(e)));
        }
        if let Some(Outcome::Failed(e)) = c.outcome.measured().and_then(|p| p.open_loop.as_ref()) {
            failures.push(format!(
                "- {} / {} processes, open loop: {}",
                label_of(results, &c.row),
                c.procs,
                f::one_line(e)
            ));
        }
    }
    for r in &results.readers {
        if let Outcome::Failed(e) = &r.outcome {
            failures.push(format!(
                "- readers of {} / {} writers: {}",
                readers_label(results, r),
                r.writers,
                f::one_line(e)
            ));
        }
    }
    for s in &results.sweeps {
        for p in &s.points {
            if let Outcome::Failed(e) = &p.outcome {
                failures.push(format!(
                    "- sweep {} = {}, {}: {}",
                    s.spec.kind.name(),
                    s.spec.kind.show(p.value),
                    label_of(results, &p.row),
                    f::one_line(e)
                ));
            }
        }
    }
    if skipped.is_empty() && failures.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## Not measured in this run\n");
    for r in skipped {
        let _ = writeln!(md, "- **{}** ({}): {}", r.label, r.provider, f::one_line(r.skipped.as_deref().unwrap_or("")));
    }
    for line in failures {
        let _ = writeln!(md, "{line}");
    }
}

// ---------------------------------------------------------------- charts

fn chart_title(results: &Results, what: &str) -> String {
    let m = &results.provenance.machine;
    format!("{what} — {} ({} cores), {}", m.cpu, m.cores, results.provenance.date)
}

/// One throughput curve and one p99 curve (of the histogram `pick` chooses)
/// per measured row, from the row's (x, runs) points.
fn curves<'a>(
    results: &'a Results,
    points_of: impl Fn(&str) -> Vec<(f64, &'a [GroupRun])>,
    pick: Pick,
) -> (Vec<Series>, Vec<Series>) {
    let mut throughput = Vec::new();
    let mut p99 = Vec::new();
    for row in results.measured_rows() {
        let points = points_of(&row.id);
        if points.is_empty() {
            continue;
        }
        let series = |y: &dyn Fn(&[GroupRun]) -> Option<f64>| Series {
            label: row.label.clone(),
            points: points.iter().filter_map(|(x, runs)| Some((*x, y(runs)?))).collect(),
            dashed: !row.safe,
        };
        throughput.push(series(&|runs| stats::median(&throughputs(runs))));
        p99.push(series(&|runs| run_quantile(runs, 0.99, pick)));
    }
    (throughput, p99)
}

fn contention_chart(results: &Results) -> String {
    let (throughput, p99) = curves(
        results,
        |id| {
            results
                .contention
                .iter()
                .filter(|c| c.row == id)
                .filter_map(|c| Some((c.procs as f64, c.outcome.measured()?.runs.as_slice())))
                .collect()
        },
        write_latency,
    );
    chart::render(
        &chart_title(results, "maph write strategies under contention"),
        XAxis { label: "writer processes", log: true, format: |v| format!("{v}") },
        &[
            Panel {
                title: "increments per second, all processes (median of runs)".into(),
                y_label: "increments per second".into(),
                y_format: f::rate,
                series: throughput,
            },
            Panel {
                title: "p99 increment time (median of runs)".into(),
                y_label: "time per increment".into(),
                y_format: f::ns,
                series: p99,
            },
        ],
    )
}

fn readers_chart(results: &Results) -> String {
    let mut p99 = Vec::new();
    let mut rate = Vec::new();
    let mut labels: Vec<(String, bool, String, bool)> = Vec::new();
    for r in &results.readers {
        if !labels.iter().any(|(id, locked, _, _)| *id == r.row && *locked == r.locked) {
            let safe = results.row(&r.row).is_none_or(|row| row.safe);
            labels.push((r.row.clone(), r.locked, readers_label(results, r), safe));
        }
    }
    for (id, locked, label, safe) in labels {
        let runs: Vec<(usize, &Vec<GroupRun>)> = results
            .readers
            .iter()
            .filter(|r| r.row == id && r.locked == locked)
            .filter_map(|r| Some((r.writers, r.outcome.measured()?)))
            .collect();
        // A log axis cannot show 0 writers: they are drawn at x = 0.5 and labelled 0.
        let x = |w: usize| if w == 0 { 0.5 } else { w as f64 };
        p99.push(Series {
            label: label.clone(),
            points: runs
                .iter()
                .filter_map(|(w, runs)| Some((x(*w), run_quantile(runs, 0.99, |r| &r.read_latency)?)))
                .collect(),
            dashed: !safe || locked,
        });
        rate.push(Series {
            label,
            points: runs
                .iter()
                .filter_map(|(w, runs)| {
                    Some((x(*w), stats::median(&runs.iter().map(GroupRun::read_throughput).collect::<Vec<_>>())?))
                })
                .collect(),
            dashed: !safe || locked,
        });
    }
    chart::render(
        &chart_title(results, "readers under writers"),
        XAxis { label: "writer processes", log: true, format: |v| if v < 1.0 { "0".into() } else { format!("{v}") } },
        &[
            Panel {
                title: "reader p99 (median of runs)".into(),
                y_label: "time per get".into(),
                y_format: f::ns,
                series: p99,
            },
            Panel {
                title: "gets per second, all readers".into(),
                y_label: "gets per second".into(),
                y_format: f::rate,
                series: rate,
            },
        ],
    )
}

fn sweep_chart(results: &Results, sweep: &SweepResult) -> String {
    let kind = sweep.spec.kind;
    let pick: Pick = if kind == SweepKind::ReadShare { read_latency } else { write_latency };
    let (throughput, p99) = curves(
        results,
        |id| {
            sweep
                .points
                .iter()
                .filter(|p| p.row == id)
                .filter_map(|p| Some((p.value, p.outcome.measured()?.as_slice())))
                .collect()
        },
        pick,
    );
    let format: fn(f64) -> String = match kind {
        SweepKind::Keys => |v| crate::plan::short_count(v),
        SweepKind::Writers | SweepKind::ValueSize => |v| format!("{v:.0}"),
        SweepKind::Zipf | SweepKind::ReadShare => |v| format!("{v}"),
    };
    chart::render(
        &chart_title(results, &format!("sweep: {}", kind.axis())),
        XAxis { label: kind.axis(), log: kind.logarithmic(), format },
        &[
            Panel {
                title: "operations per second, all processes".into(),
                y_label: "operations per second".into(),
                y_format: f::rate,
                series: throughput,
            },
            Panel {
                title: if kind == SweepKind::ReadShare { "p99 get".into() } else { "p99 set".into() },
                y_label: "time per operation".into(),
                y_format: f::ns,
                series: p99,
            },
        ],
    )
}

fn read_latency(r: &GroupRun) -> &crate::histogram::Histogram {
    &r.read_latency
}

fn write_latency(r: &GroupRun) -> &crate::histogram::Histogram {
    &r.write_latency
}

// ---------------------------------------------------------------- terminal

fn terminal(results: &Results) -> String {
    let mut out = String::new();
    let m = &results.provenance.machine;
    if results.plan.table.is_some() {
        let _ = writeln!(
            out,
            "\nmaph strategy table — {} ({} cores), {} mode; median (range) over processes\n",
            m.cpu,
            m.cores,
            results.plan.preset.name()
        );
        out.push_str(&strategy_table(results, 0).text());
    }
    if !results.contention.is_empty() {
        let _ = writeln!(out, "\nComparison (increments of shared counters)\n");
        out.push_str(&comparison_table(results).text());
    }
    if !results.readers.is_empty() {
        let _ = writeln!(out, "\nReaders under writers\n");
        out.push_str(&readers_table(results).text());
    }
    if let LimitsOutcome::Measured(l) = &results.limits {
        let _ = writeln!(out, "\nPhysical floor (limits.c, median of runs)\n");
        for (label, s) in l.summaries() {
            let _ = writeln!(out, "  {label:<40} {}", f::ns(s.median));
        }
    }
    for r in results.rows.iter().filter(|r| r.skipped.is_some()) {
        let _ = writeln!(out, "not measured: {} — {}", r.label, f::one_line(r.skipped.as_deref().unwrap_or("")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_results_file_renders_every_section_it_has_and_is_stable() {
        let results = crate::results::tests::tiny();
        let a = render(&results);
        let b = render(&results);
        assert_eq!(a.markdown, b.markdown, "rendering is deterministic (seeded intervals)");
        assert!(a.markdown.contains("## Machine and provenance"));
        assert!(a.markdown.contains("| flock | yes |"), "{}", a.markdown);
        assert!(a.markdown.contains("`limits.c` was not run: test."));
        assert!(!a.markdown.contains("## Readers under writers"), "no readers measured, no section");
        assert!(a.charts.is_empty(), "no multi-process runs, no charts");
        assert!(a.terminal.contains("flock"));
    }

    #[test]
    fn floors_map_to_what_they_bound() {
        assert_eq!(floor_uses("seqlock read, dependent random slot")[0].1, Column::Read);
        assert_eq!(floor_uses("seqlock read, random slot of 512MiB")[0].1, Column::Read100);
        assert_eq!(floor_uses("seqlock write, random slot")[0].1, Column::Write100);
        assert_eq!(floor_uses("seqlock write, dependent random slot")[0].1, Column::Write);
        assert_eq!(floor_uses("in-file CAS lock + unlock").len(), 4);
        assert!(floor_uses("seqlock read, hot slot (512KiB)").is_empty());
    }
}
