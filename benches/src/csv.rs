//! `results.csv`: every figure the report's tables show, one per line, in a
//! tidy form a spreadsheet or a data-frame library reads directly.
//!
//! Columns: `section,dataset,row,column,procs,writers,value,metric,unit,estimate,low,high,n`.
//! `estimate` is the figure; `low`/`high` its spread or interval, as `metric`
//! says (`*_range`: the range over processes or runs; `*_ci95`: a 95 % interval).
//! `table_process` lines give criterion's own median and interval for each
//! process of a cell (their `procs` column holds the process's round).

use std::fmt::Write;

use crate::format::seed_of;
use crate::group::{GroupRun, Pick};
use crate::limits::LimitsOutcome;
use crate::results::{Outcome, Results};
use crate::rows::BASELINE;
use crate::stats::{self, Summary};

/// The header line.
pub const HEADER: &str = "section,dataset,row,column,procs,writers,value,metric,unit,estimate,low,high,n";

#[derive(Clone, Copy, Default)]
struct Line<'a> {
    section: &'a str,
    dataset: Option<usize>,
    row: &'a str,
    column: &'a str,
    procs: Option<usize>,
    writers: Option<usize>,
    value: Option<f64>,
    metric: &'a str,
    unit: &'a str,
    estimate: f64,
    low: Option<f64>,
    high: Option<f64>,
    n: usize,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

impl<'a> Line<'a> {
    /// Writes the median of `values` with their range as `metric` (nothing if there are none).
    fn range(self, metric: &'a str, unit: &'a str, values: &[f64], out: &mut String) {
        if let Some(s) = Summary::of(values) {
            Line { metric, unit, estimate: s.median, low: Some(s.min), high: Some(s.max), n: s.n, ..self }.write(out);
        }
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.section,
            opt(self.dataset),
            quote(self.row),
            self.column,
            opt(self.procs),
            opt(self.writers),
            opt(self.value),
            self.metric,
            self.unit,
            self.estimate,
            opt(self.low),
            opt(self.high),
            self.n
        );
    }
}

fn from_runs(base: Line<'_>, runs: &[GroupRun], out: &mut String) {
    base.range("throughput_range", "ops/s", &runs.iter().map(GroupRun::throughput).collect::<Vec<_>>(), out);
    let histograms: [(&str, Pick); 3] =
        [("read", |r| &r.read_latency), ("write", |r| &r.write_latency), ("lock_wait", |r| &r.lock_wait)];
    for (name, pick) in histograms {
        for (q, qname) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p999")] {
            let metric = format!("{name}_{qname}_range");
            let values: Vec<f64> = runs.iter().filter_map(|r| pick(r).quantile(q)).collect();
            base.range(&metric, "ns", &values, out);
        }
    }
    let lost: Vec<f64> = runs.iter().filter_map(GroupRun::lost).map(|l| l as f64).collect();
    base.range("lost_updates_range", "updates", &lost, out);
}

/// The CSV of `results`.
pub fn render(results: &Results) -> String {
    let mut out = format!("{HEADER}\n");
    for c in &results.cells {
        let groups = c.groups();
        let medians = stats::group_medians(&groups);
        let base =
            Line { section: "table", dataset: Some(c.dataset), row: &c.row, column: c.column.id(), ..Line::default() };
        base.range("time_range", "ns", &medians, &mut out);
        // criterion's own median and its 95 % interval, for each process (`procs` is the round).
        for p in c.outcome.measured().into_iter().flatten() {
            let m = &p.criterion_median;
            Line {
                section: "table_process",
                procs: Some(p.round),
                metric: "criterion_median_ci95",
                unit: "ns",
                estimate: m.estimate,
                low: Some(m.low),
                high: Some(m.high),
                n: p.samples_ns.len(),
                ..base
            }
            .write(&mut out);
        }
        if c.row != BASELINE {
            if let Some(base_groups) = results.cell(BASELINE, c.dataset, c.column).map(|b| b.groups()) {
                if let Some(i) =
                    stats::ratio_interval(&groups, &base_groups, seed_of(&[&c.row, c.column.id(), "baseline"]))
                {
                    Line {
                        metric: "ratio_to_baseline_ci95",
                        unit: "ratio",
                        estimate: i.estimate,
                        low: Some(i.low),
                        high: Some(i.high),
                        n: medians.len(),
                        ..base
                    }
                    .write(&mut out);
                }
            }
        }
    }
    for c in &results.contention {
        if let Outcome::Measured(p) = &c.outcome {
            let base = Line {
                section: "contention",
                row: &c.row,
                procs: Some(c.procs),
                writers: Some(c.procs),
                ..Line::default()
            };
            from_runs(base, &p.runs, &mut out);
            if let Some(Outcome::Measured(open)) = &p.open_loop {
                let base = Line { section: "contention_open_loop", ..base };
                from_runs(base, std::slice::from_ref(open), &mut out);
            }
        }
    }
    for r in &results.readers {
        if let Outcome::Measured(runs) = &r.outcome {
            let section = if r.locked { "readers_locked" } else { "readers" };
            from_runs(
                Line {
                    section,
                    row: &r.row,
                    procs: Some(r.writers + r.readers),
                    writers: Some(r.writers),
                    ..Line::default()
                },
                runs,
                &mut out,
            );
        }
    }
    for s in &results.sweeps {
        let section = format!("sweep_{}", s.spec.kind.name());
        for p in &s.points {
            if let Outcome::Measured(runs) = &p.outcome {
                from_runs(
                    Line { section: &section, row: &p.row, value: Some(p.value), ..Line::default() },
                    runs,
                    &mut out,
                );
            }
        }
    }
    if let LimitsOutcome::Measured(l) = &results.limits {
        for (label, values) in &l.lines {
            Line { section: "floor", row: label, ..Line::default() }.range("time_range", "ns", values, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_has_every_column_and_labels_are_quoted() {
        let results = crate::results::tests::tiny();
        let csv = render(&results);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(HEADER));
        let first = lines.next().expect("the table cell");
        assert!(first.starts_with("table,0,flock,read,,,,time_range,ns,2,2,2,1"), "{first}");
        let process = lines.next().expect("criterion's interval for the process");
        assert!(process.starts_with("table_process,0,flock,read,0,,,criterion_median_ci95,ns,2,1,3,3"), "{process}");
        for line in csv.lines() {
            assert_eq!(line.matches(',').count(), 12, "{line}");
        }
        assert_eq!(quote("a,b"), "\"a,b\"");
    }
}
