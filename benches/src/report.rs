//! Turns a run's [`Results`] into docs/BENCHMARKS.md, the SVG chart and the
//! terminal table. Every ratio is taken between figures of the same run.

use std::fmt::Write;

use crate::chart::{self, Panel, Series};
use crate::limits::LimitsOutcome;
use crate::plan::Preset;
use crate::reference;
use crate::rows::{Writers, BASELINE};
use crate::run::{Cell, ContentionCell, Results, RowResult};
use crate::stats::Summary;
use crate::table::Table;
use crate::workload::Column;

/// What a run produces.
#[derive(Clone, Debug)]
pub struct Outputs {
    /// docs/BENCHMARKS.md.
    pub markdown: String,
    /// The contention chart.
    pub svg: String,
    /// The strategy table for the terminal.
    pub terminal: String,
}

/// Renders everything. `svg_name` is how the markdown links the chart (a path
/// relative to the markdown file); `command` is how the run was started.
pub fn render(results: &Results, svg_name: &str, command: &str) -> Outputs {
    Outputs { markdown: markdown(results, svg_name, command), svg: svg(results), terminal: terminal(results) }
}

// ---------------------------------------------------------------- formatting

/// 3 significant digits.
fn sig3(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn time_unit(ns: f64) -> (f64, &'static str) {
    if ns < 1e3 {
        (1.0, "ns")
    } else if ns < 1e6 {
        (1e3, "µs")
    } else if ns < 1e9 {
        (1e6, "ms")
    } else {
        (1e9, "s")
    }
}

/// A duration in ns, e.g. `1.23 µs`.
pub fn fmt_ns(ns: f64) -> String {
    let (div, unit) = time_unit(ns);
    format!("{} {unit}", sig3(ns / div))
}

/// `median [p25–p75]` in the median's unit.
fn fmt_quartiles(s: &Summary) -> String {
    let (div, unit) = time_unit(s.median);
    format!("{} {unit} [{}–{}]", sig3(s.median / div), sig3(s.p25 / div), sig3(s.p75 / div))
}

/// An operation rate, e.g. `1.23 M/s`.
pub fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{} M/s", sig3(per_sec / 1e6))
    } else if per_sec >= 1e3 {
        format!("{} k/s", sig3(per_sec / 1e3))
    } else {
        format!("{} /s", sig3(per_sec))
    }
}

/// `median [min–max]` of a rate, in the median's unit.
fn fmt_rate_range(s: &Summary) -> String {
    let (div, unit) = if s.median >= 1e6 {
        (1e6, "M/s")
    } else if s.median >= 1e3 {
        (1e3, "k/s")
    } else {
        (1.0, "/s")
    };
    format!("{} {unit} [{}–{}]", sig3(s.median / div), sig3(s.min / div), sig3(s.max / div))
}

fn fmt_ratio(ours: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{}×", sig3(ours / base))
    } else {
        "—".into()
    }
}

fn cell_text(cell: Option<&Cell>) -> String {
    match cell {
        Some(Cell::Measured(s)) => fmt_quartiles(s),
        Some(Cell::NotApplicable(_)) => "n/a".into(),
        Some(Cell::Failed(_)) => "failed".into(),
        None => "—".into(),
    }
}

fn label(row: &RowResult) -> String {
    row.row.label.to_string()
}

fn measured(results: &Results) -> impl Iterator<Item = &RowResult> {
    results.rows.iter().filter(|r| r.skipped.is_none())
}

fn load_text(load: Option<[f64; 3]>) -> String {
    load.map_or_else(|| "unknown".into(), |l| format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2]))
}

/// Share of the machine other processes may use before a run is called busy.
const BUSY_SHARE: f64 = 0.10;

/// Whether other work disturbed the run: other processes used more than
/// [`BUSY_SHARE`] of the CPU during it (or, where that cannot be measured, the
/// 1-minute load average was above a quarter of the cores at the start).
fn was_busy(results: &Results) -> bool {
    match results.others_cpu_share {
        Some(share) => share > BUSY_SHARE,
        None => results.load_before.is_some_and(|l| l[0] > results.machine.cores as f64 * 0.25),
    }
}

// ---------------------------------------------------------------- tables

fn strategy_table(results: &Results) -> Table {
    let mut headers = vec!["strategy".to_string(), "safe, several writers".into()];
    headers.extend(Column::ALL.iter().map(|c| c.title().to_string()));
    let mut table = Table::new(headers);
    for row in measured(results) {
        let mut cells = vec![label(row), safety(row).into()];
        cells.extend(Column::ALL.iter().map(|&c| cell_text(row.cell(c))));
        table.push(cells);
    }
    table
}

fn safety(row: &RowResult) -> &'static str {
    match (row.row.safe, row.row.writers) {
        (false, _) => "NO (loses updates)",
        (true, Writers::Many) => "yes",
        (true, Writers::One(_)) => "one writer process",
    }
}

fn overhead_table(results: &Results) -> Option<Table> {
    let base = results.row(BASELINE)?;
    let mut headers = vec!["strategy".to_string()];
    headers.extend(Column::ALL.iter().map(|c| c.title().to_string()));
    let mut table = Table::new(headers);
    for row in measured(results) {
        let mut cells = vec![label(row)];
        for column in Column::ALL {
            cells.push(match (row.median(column), base.median(column)) {
                (Some(ours), Some(b)) => fmt_ratio(ours, b),
                _ => "—".into(),
            });
        }
        table.push(cells);
    }
    Some(table)
}

fn comparison_table(results: &Results) -> Table {
    let mut table = Table::new(vec![
        "strategy".into(),
        "throughput, 1 writer (1 / write median)".into(),
        "throughput, 2 writer processes".into(),
        "write latency (median)".into(),
        "p99 increment, 2 processes".into(),
        "lost updates, 2+ processes".into(),
        "safety".into(),
    ]);
    for row in measured(results) {
        let write = row.median(Column::Write);
        let two = row.point(2);
        let lost: Vec<i64> = row
            .contention
            .iter()
            .filter(|(p, _)| *p >= 2)
            .filter_map(|(p, _)| row.point(*p))
            .flat_map(|pt| pt.lost())
            .collect();
        let ops: u64 = row
            .contention
            .iter()
            .filter(|(p, _)| *p >= 2)
            .filter_map(|(p, _)| row.point(*p))
            .flat_map(|pt| pt.runs.iter().map(|r| r.ops))
            .sum();
        table.push(vec![
            label(row),
            write.map_or("—".into(), |ns| fmt_rate(1e9 / ns)),
            two.and_then(|p| p.throughput()).map_or_else(|| not_run(row, 2), |s| fmt_rate(s.median)),
            write.map_or("—".into(), fmt_ns),
            two.and_then(|p| p.op_quantile(0.99)).map_or_else(|| not_run(row, 2), |s| fmt_ns(s.median)),
            if lost.is_empty() { "—".into() } else { format!("{} of {}", lost.iter().sum::<i64>(), ops) },
            safety(row).into(),
        ]);
    }
    table
}

fn not_run(row: &RowResult, procs: usize) -> String {
    match row.contention.iter().find(|(p, _)| *p == procs) {
        Some((_, ContentionCell::NotApplicable(_))) => "n/a (one process)".into(),
        Some((_, ContentionCell::Failed(_))) => "failed".into(),
        _ => "—".into(),
    }
}

fn contention_table(results: &Results) -> Table {
    let mut table = Table::new(vec![
        "strategy".into(),
        "processes".into(),
        "throughput, median [min–max]".into(),
        "increment p50".into(),
        "increment p99".into(),
        "lock wait p50".into(),
        "lock wait p99".into(),
        "lost updates per run".into(),
        "failed / torn".into(),
    ]);
    for row in measured(results) {
        // Process counts a row cannot run are listed together, on one line.
        let not_run: Vec<String> = row
            .contention
            .iter()
            .filter(|(_, c)| matches!(c, ContentionCell::NotApplicable(_)))
            .map(|(p, _)| p.to_string())
            .collect();
        let mut listed_not_run = false;
        for (procs, cell) in &row.contention {
            if matches!(cell, ContentionCell::NotApplicable(_)) && std::mem::replace(&mut listed_not_run, true) {
                continue;
            }
            let procs_text =
                if matches!(cell, ContentionCell::NotApplicable(_)) { not_run.join(", ") } else { procs.to_string() };
            let mut cells = vec![label(row), procs_text];
            match cell {
                ContentionCell::Measured(point) => {
                    let q = |s: Option<Summary>| s.map_or("—".into(), |s| fmt_ns(s.median));
                    let (errors, damaged) = point.errors();
                    cells.extend([
                        point.throughput().map_or("—".into(), |s| fmt_rate_range(&s)),
                        q(point.op_quantile(0.5)),
                        q(point.op_quantile(0.99)),
                        q(point.wait_quantile(0.5)),
                        q(point.wait_quantile(0.99)),
                        point.lost().iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
                        format!("{errors} / {damaged}"),
                    ]);
                }
                ContentionCell::NotApplicable(why) => {
                    cells.push(format!("not run: {why}"));
                    cells.extend(std::iter::repeat_n(String::new(), 6));
                }
                ContentionCell::Failed(e) => {
                    cells.push(format!("failed: {}", one_line(e)));
                    cells.extend(std::iter::repeat_n(String::new(), 6));
                }
            }
            table.push(cells);
        }
    }
    table
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").replace('|', "/");
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line
    }
}

// ---------------------------------------------------------------- markdown

fn markdown(results: &Results, svg_name: &str, command: &str) -> String {
    let mut md = String::new();
    let m = &results.machine;
    let plan = &results.plan;
    let _ = writeln!(md, "# maph benchmarks\n");
    let _ = writeln!(
        md,
        "<!-- Written by maph-bench (benches/). Regenerate it with scripts/bench; do not edit by hand. -->\n"
    );
    let _ = writeln!(
        md,
        "Generated by `{command}` ({} mode) on {}, in {:.0} s.\n",
        plan.preset.name(),
        results.date,
        results.elapsed.as_secs_f64()
    );
    if plan.preset == Preset::Smoke {
        let _ = writeln!(
            md,
            "> **Smoke run.** Tiny iteration counts that only prove the harness works end to end; \
             these figures are not measurements.\n"
        );
    }
    let busy = was_busy(results);
    let others = results.others_cpu_share.map_or_else(String::new, |s| {
        format!(" Other processes used {:.0}% of its CPU time during the run.", s * 100.0)
    });
    let _ = writeln!(
        md,
        "**Conditions:** load average (1 / 5 / 15 min) {} before the run and {} after, on {} cores.{others}{}\n",
        load_text(results.load_before),
        load_text(results.load_after),
        m.cores,
        if busy {
            " **Other work was running on this machine, so these numbers are noisier than a quiet machine's; \
             regenerate them on a quiet machine before relying on them.**"
        } else {
            " The machine was otherwise quiet."
        }
    );

    let _ = writeln!(md, "## Machine\n");
    let mut machine = Table::new(vec!["what".into(), "this run".into()]);
    machine.push(vec!["CPU".into(), m.cpu.clone()]);
    machine.push(vec!["logical cores".into(), m.cores.to_string()]);
    machine.push(vec!["kernel".into(), format!("Linux {}", m.kernel)]);
    machine.push(vec!["compiler".into(), m.rustc.clone()]);
    machine.push(vec![
        "build".into(),
        if m.optimized { "optimised (release profile)".into() } else { "NOT optimised (debug build)".into() },
    ]);
    machine.push(vec!["filesystem of the stores".into(), m.filesystem.clone()]);
    machine.push(vec!["Redis".into(), results.redis.clone()]);
    md.push_str(&machine.markdown());

    let _ = writeln!(md, "\n## The strategy table: one process, no contention\n");
    let _ = writeln!(
        md,
        "Measured by criterion ({} samples per cell, {} ms warm-up, {} ms measurement), every row through \
         the same code (`benches/src/workload.rs`). A cell is the **median [25th–75th percentile]** of \
         criterion's samples, each sample being the mean time of many back-to-back iterations (so rare slow \
         operations, such as a round trip to a descheduled Redis server, count in full; the contention \
         table's p50 shows a typical single operation); the batch columns are per batch of {}. Keys: {} keys of 13 bytes, 64-byte values, written once before \
         measuring, then walked round-robin. maph stores: {} slots of 512 bytes.\n",
        plan.criterion.sample_size,
        plan.criterion.warm_up.as_millis(),
        plan.criterion.measurement.as_millis(),
        crate::workload::BATCH,
        plan.keys,
        crate::rows::SLOTS
    );
    let _ = writeln!(md, "- **write**: `Store::set` (locks only the key's probe window where the coordinator can); peers: one write transaction.");
    let _ = writeln!(md, "- **read**: `Store::get_into`, lock-free under the slot's seqlock, whatever the strategy; peers: one read transaction.");
    let _ = writeln!(md, "- **read, shared lock**: the same read inside the strategy's shared lock on the key's window, as the reference's `flock(LOCK_SH)` reader does. maph readers never need it; it is here to compare with the reference.");
    let _ = writeln!(md, "- **100 writes, one commit**: one `Store::write` holding 100 `set`s (one lock acquisition); peers: one transaction; partitioning: one commit per shard the batch touches (no write spans shards).");
    let _ = writeln!(md, "- **100 reads**: 100 lock-free reads; peers: one read transaction.");
    let _ = writeln!(md, "- **lock + unlock**: the coordinator's exclusive lock on one key's window, taken and given back with nothing written: the lock's own cost (compare it with the physical floor below); peers: a write transaction begun and aborted.\n");
    md.push_str(&strategy_table(results).markdown());
    if let Some(table) = overhead_table(results) {
        let _ = writeln!(
            md,
            "\n### Overhead against the uncoordinated baseline\n\nRatio of medians, both from this run. \
             The uncoordinated baseline is safe only with a single writer; it is the cost of the store itself.\n"
        );
        md.push_str(&table.markdown());
    }

    let _ = writeln!(md, "\n## Comparison of strategies\n");
    let _ = writeln!(
        md,
        "The reference's second table, measured. \"1 writer\" is one process writing back to back \
         (1 / median of the write column). \"2 writer processes\" and the p99 come from the contention \
         runs below (each operation an increment: read-modify-write of a shared counter).\n"
    );
    md.push_str(&comparison_table(results).markdown());

    reference_section(&mut md, results);

    let _ = writeln!(md, "\n## Contention: several writer processes\n");
    let c = &plan.contention;
    let _ = writeln!(
        md,
        "![Throughput and p99 increment time against writer processes]({svg_name})\n\n\
         Each run starts {:?} writer processes (real processes: this binary re-executed as workers) on a \
         fresh store whose counters this process has set to zero; they open it, make their coordinator, \
         do one untimed warm-up increment per counter, then start together and for {} ms each \
         increment {} shared counters in turn (an atomic read-modify-write under the coordinator; \
         partitioned rows use counters of their own shard). Every run is repeated {} times. \
         **Throughput** is all increments of a run over the time from the first worker's start to the \
         last one's end: median [min–max] over the runs. **Increment** and **lock wait** percentiles come \
         from histograms of every operation of a run (1.6% resolution; they include the two clock reads \
         per operation), median over runs. **Lost updates** = increments made (warm-up included) − sum of the \
         counters afterwards, per run; only an unsafe strategy can lose any. **failed / torn** counts increments \
         that returned an error, and increments that found a value that was not a counter (a torn write). \
         This machine has {} cores, so 4 and 8 processes oversubscribe it: a lock holder can be \
         descheduled while others wait.\n",
        c.procs,
        c.duration.as_millis(),
        c.counters,
        c.repeats,
        results.machine.cores
    );
    md.push_str(&contention_table(results).markdown());
    let errors: Vec<String> = measured(results)
        .flat_map(|row| {
            row.contention.iter().filter_map(move |(procs, cell)| match cell {
                ContentionCell::Measured(point) if point.errors().0 > 0 => Some(format!(
                    "- {}, {procs} processes: {} increments failed; the first error: {}",
                    row.row.label,
                    point.errors().0,
                    one_line(point.first_error().unwrap_or("(not recorded)"))
                )),
                _ => None,
            })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\nIncrements that failed (not counted in the throughput):\n");
        for e in errors {
            let _ = writeln!(md, "{e}");
        }
    }

    floor_section(&mut md, results);

    let skipped: Vec<&RowResult> = results.rows.iter().filter(|r| r.skipped.is_some()).collect();
    let failures: Vec<String> = results
        .rows
        .iter()
        .flat_map(|r| {
            let cells = r.cells.iter().filter_map(move |(c, cell)| match cell {
                Cell::Failed(e) => Some(format!("- {} / {}: {}", r.row.label, c.title(), one_line(e))),
                _ => None,
            });
            let points = r.contention.iter().filter_map(move |(p, cell)| match cell {
                ContentionCell::Failed(e) => Some(format!("- {} / {p} processes: {}", r.row.label, one_line(e))),
                _ => None,
            });
            cells.chain(points)
        })
        .collect();
    if !skipped.is_empty() || !failures.is_empty() {
        let _ = writeln!(md, "\n## Not measured in this run\n");
        for r in skipped {
            let _ = writeln!(
                md,
                "- **{}** ({}): {}",
                r.row.label,
                r.row.provider,
                one_line(r.skipped.as_deref().unwrap_or(""))
            );
        }
        for f in failures {
            let _ = writeln!(md, "{f}");
        }
    }

    let _ = writeln!(md, "\n## How to regenerate\n");
    let _ = writeln!(
        md,
        "On a quiet machine (nothing else compiling or running), from the repository root:\n\n\
         ```sh\n\
         scripts/bench              # default mode, about 3 minutes on 2 cores; rewrites this file and the chart\n\
         scripts/bench --thorough   # longer measurements and 7 repeats, for publishing (about 12 minutes)\n\
         scripts/bench --smoke      # a few seconds; proves the harness works (writes to a temporary directory)\n\
         cargo bench -p maph-bench  # criterion alone: the single-process table, criterion's own output\n\
         ```\n\n\
         `scripts/bench` installs `redis-server` if it is missing (or set `MAPH_REDIS_URL` to use a running \
         server) and builds with `--release`. See `benches/README.md` for the options and how to read the tables."
    );
    md
}

fn reference_section(md: &mut String, results: &Results) {
    let _ = writeln!(md, "\n## Beside the reference's published figures\n");
    let _ = writeln!(
        md,
        "The reference (`shared/reference/multi-writer-strategies.md`) publishes the figures below without \
         a machine, a method or a spread. Ours are from this run; \"overhead\" is flock ÷ no lock in each.\n"
    );
    let base = results.row(BASELINE);
    let flock = results.row("flock");
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
        let base_column = r.column.without_lock();
        let ours_base = base.and_then(|b| b.median(base_column));
        let ours_flock = flock.and_then(|f| f.median(r.column));
        table.push(vec![
            r.operation.into(),
            r.ours.into(),
            fmt_ns(r.no_lock_ns),
            ours_base.map_or("—".into(), fmt_ns),
            fmt_ns(r.flock_ns),
            ours_flock.map_or_else(|| "not measured".into(), fmt_ns),
            fmt_ratio(r.flock_ns, r.no_lock_ns),
            match (ours_flock, ours_base) {
                (Some(f), Some(b)) => fmt_ratio(f, b),
                _ => "—".into(),
            },
        ]);
    }
    md.push_str(&table.markdown());
    let _ = writeln!(
        md,
        "\nThe reference's batch figures are 100 times its single-operation ones (a lock per operation); \
         ours are what maph does: one lock for a commit of 100 writes, and no lock at all for reads (so the \
         batch-read \"overhead\" is only noise between two identical lock-free loops). The single-read row \
         uses flock's \"read, shared lock\" column to match the reference's `flock(LOCK_SH)` reader; a maph \
         reader never needs it.\n"
    );
    let mut table = Table::new(vec![
        "reference strategy".into(),
        "reference throughput".into(),
        "reference latency".into(),
        "our rows".into(),
        "ours: 1 writer".into(),
        "ours: write median".into(),
    ]);
    for r in reference::STRATEGIES {
        let ours: Vec<&RowResult> = r.ours.iter().filter_map(|id| results.row(id)).collect();
        let names: Vec<String> = ours.iter().map(|row| row.row.label.to_string()).collect();
        let per_row = |f: &dyn Fn(f64) -> String| -> String {
            let parts: Vec<String> =
                ours.iter().map(|row| row.median(Column::Write).map_or_else(|| "not measured".into(), f)).collect();
            if parts.is_empty() {
                "—".into()
            } else {
                parts.join("; ")
            }
        };
        table.push(vec![
            format!("{}{}", r.strategy, if r.safe { "" } else { " (unsafe)" }),
            r.throughput.into(),
            r.latency.into(),
            if names.is_empty() { "—".into() } else { names.join("; ") },
            per_row(&|ns| fmt_rate(1e9 / ns)),
            per_row(&fmt_ns),
        ]);
    }
    md.push_str(&table.markdown());
    let _ = writeln!(
        md,
        "\nThe reference's \"17M ops/sec\" and \"300ns\" cannot describe the same single writer: one \
         operation every 300 ns is 3.3 M ops/s, and 17 M ops/s is one every 59 ns. We quote both \
         measured figures separately, for one writer, with their spread."
    );
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
    let _ = writeln!(
        md,
        "`{}` compiled with `cc -O2` and run {} times in the stores' directory: the raw cost of each \
         primitive, in C, with nothing around it (each figure the mean of 1,000,000 iterations; here the \
         median [min–max] over the runs). Beside each, our figure for the same thing from the strategy \
         table: a lock primitive against the strategy's \"lock + unlock\" (its coordinator's lock on one \
         key's window, nothing written), the seqlock against the uncoordinated read and write (which add \
         hashing, probing, key comparison, checksum and copying).\n",
        limits.source.display(),
        results.plan.limits_runs
    );
    let pairs: [(&str, &[(&str, Column)]); 6] = [
        ("flock LOCK_EX", &[("flock", Column::LockUnlock)]),
        ("fcntl OFD", &[("fcntl-whole", Column::LockUnlock), ("fcntl-range", Column::LockUnlock)]),
        ("seqlock read, random", &[(BASELINE, Column::Read)]),
        ("seqlock write", &[(BASELINE, Column::Write)]),
        (
            "in-file CAS",
            &[
                ("single-writer", Column::LockUnlock),
                ("futex", Column::LockUnlock),
                ("futex-striped", Column::LockUnlock),
                ("shard", Column::LockUnlock),
            ],
        ),
        ("flock LOCK_SH", &[]),
    ];
    let plumbing = results.row(BASELINE).and_then(|b| b.median(Column::LockUnlock));
    if let Some(plumbing) = plumbing {
        let _ = writeln!(
            md,
            "Every maph \"lock + unlock\" also finds the key's window (hashing the key) and goes through the \
             `WriteCoordinator` guard and its contention counter: the uncoordinated row, whose lock does \
             nothing, measures that part alone at {} in this run. The last column takes it away, leaving \
             the lock's own cost (a difference of medians, so a rough figure).\n",
            fmt_ns(plumbing)
        );
    }
    let mut table = Table::new(vec![
        "primitive".into(),
        "floor, median [min–max]".into(),
        "compared with".into(),
        "ours, median [p25–p75]".into(),
        "× floor".into(),
        "× floor, lock alone".into(),
    ]);
    for (label, s) in &limits.lines {
        let (div, unit) = time_unit(s.median);
        let floor = format!("{} {unit} [{}–{}]", sig3(s.median / div), sig3(s.min / div), sig3(s.max / div));
        let uses: &[(&str, Column)] = pairs.iter().find(|(frag, _)| label.contains(frag)).map_or(&[], |(_, u)| u);
        let mut any = false;
        for (id, column) in uses {
            let Some(row) = results.row(id) else { continue };
            let Some(ours) = row.cell(*column).and_then(Cell::summary) else { continue };
            any = true;
            // The lock alone: this row's lock + unlock less the uncoordinated
            // row's (the key lookup and guard path every maph row shares).
            let lock_alone = match (column, plumbing) {
                (Column::LockUnlock, Some(plumbing)) if ours.median > plumbing => {
                    fmt_ratio(ours.median - plumbing, s.median)
                }
                _ => "—".into(),
            };
            table.push(vec![
                label.clone(),
                floor.clone(),
                format!("{}, {}", row.row.label, column.title()),
                fmt_quartiles(ours),
                fmt_ratio(ours.median, s.median),
                lock_alone,
            ]);
        }
        if !any {
            table.push(vec![label.clone(), floor, "—".into(), "—".into(), "—".into(), "—".into()]);
        }
    }
    md.push_str(&table.markdown());
}

// ---------------------------------------------------------------- chart

fn svg(results: &Results) -> String {
    let mut throughput = Vec::new();
    let mut p99 = Vec::new();
    for row in measured(results) {
        let points: Vec<_> = row.contention.iter().filter_map(|(p, _)| row.point(*p)).collect();
        if points.is_empty() {
            continue;
        }
        let dashed = !row.row.safe;
        throughput.push(Series {
            label: row.row.label.to_string(),
            points: points.iter().filter_map(|p| Some((p.procs as f64, p.throughput()?.median))).collect(),
            dashed,
        });
        p99.push(Series {
            label: row.row.label.to_string(),
            points: points.iter().filter_map(|p| Some((p.procs as f64, p.op_quantile(0.99)?.median))).collect(),
            dashed,
        });
    }
    let title = format!(
        "maph write strategies under contention — {} ({} cores), {}",
        results.machine.cpu, results.machine.cores, results.date
    );
    chart::render(
        &title,
        "writer processes",
        &[
            Panel {
                title: "throughput, all processes (median of runs)".into(),
                y_label: "increments per second".into(),
                y_format: fmt_rate,
                series: throughput,
            },
            Panel {
                title: "p99 increment time (median of runs)".into(),
                y_label: "time per increment".into(),
                y_format: fmt_ns,
                series: p99,
            },
        ],
    )
}

// ---------------------------------------------------------------- terminal

fn terminal(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nmaph strategy table — {} ({} cores), {} mode; median [p25–p75] of criterion samples\n",
        results.machine.cpu,
        results.machine.cores,
        results.plan.preset.name()
    );
    out.push_str(&strategy_table(results).text());
    let _ = writeln!(out, "\nComparison (throughput and p99 from the contention runs)\n");
    out.push_str(&comparison_table(results).text());
    if let LimitsOutcome::Measured(l) = &results.limits {
        let _ = writeln!(out, "\nPhysical floor (limits.c, median of {} runs)\n", results.plan.limits_runs);
        for (label, s) in &l.lines {
            let _ = writeln!(out, "  {label:<40} {}", fmt_ns(s.median));
        }
    }
    for r in results.rows.iter().filter(|r| r.skipped.is_some()) {
        let _ = writeln!(out, "not measured: {} — {}", r.row.label, one_line(r.skipped.as_deref().unwrap_or("")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_rates_and_ratios() {
        assert_eq!(fmt_ns(12.345), "12.3 ns");
        assert_eq!(fmt_ns(1234.0), "1.23 µs");
        assert_eq!(fmt_ns(250_000.0), "250 µs");
        assert_eq!(fmt_ns(3.2e9), "3.20 s");
        assert_eq!(fmt_rate(17_000_000.0), "17.0 M/s");
        assert_eq!(fmt_rate(400_000.0), "400 k/s");
        assert_eq!(fmt_ratio(2500.0, 350.0), "7.14×");
        assert_eq!(fmt_ratio(1.0, 0.0), "—");
        let s = Summary { n: 3, min: 900.0, p25: 950.0, median: 1000.0, p75: 1100.0, max: 1200.0 };
        assert_eq!(fmt_quartiles(&s), "1.00 µs [0.95–1.10]");
    }
}
