//! `maph-bench compare OLD.json NEW.json`: row by row, the ratio NEW ÷ OLD of
//! every figure both runs measured, with a 95 % interval, and a verdict on
//! whether the change is beyond noise.
//!
//! The interval resamples both runs at two levels (processes or runs, then
//! samples), so the spread between processes is in it. A change is called
//! only when (1) an exact rank test on the processes' (or runs') medians
//! finds the two sides different at p ≤ 0.05, which needs at least 4
//! processes or runs a side (3 against 3 can never get below p = 0.1), and
//! (2) the whole interval lies beyond `threshold` on one side. The threshold
//! absorbs drift between two runs that neither run can see alone: measure it
//! with an A/A comparison, and interleave the runs of the two sides and
//! [merge](crate::results::Results::merge) them (see `benches/README.md`).

use std::fmt::Write;

use crate::format::{self as f, seed_of};
use crate::group::GroupRun;
use crate::results::Results;
use crate::stats::{self, Interval};
use crate::table::Table;

/// What a comparison concluded about one figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The interval reaches within the threshold of no change.
    Noise,
    /// Beyond noise, in the worse direction (slower, or less throughput).
    Worse,
    /// Beyond noise, in the better direction.
    Better,
    /// Too few processes or runs for any test to tell the sides apart.
    Unknown,
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Noise => "noise",
            Verdict::Worse => "WORSE",
            Verdict::Better => "better",
            Verdict::Unknown => "too few to tell",
        }
    }
}

/// Whether larger figures are better (throughput) or worse (time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Times: a ratio above 1 is worse.
    LowerIsBetter,
    /// Rates: a ratio above 1 is better.
    HigherIsBetter,
}

/// The verdict on a NEW ÷ OLD interval: a change only when the whole interval
/// lies outside `[1 / (1 + threshold), 1 + threshold]`.
///
/// ```
/// use maph_bench::compare::{verdict, Direction, Verdict};
/// use maph_bench::stats::Interval;
/// let slower = Interval { estimate: 1.2, low: 1.1, high: 1.3 };
/// assert_eq!(verdict(&slower, 0.05, Direction::LowerIsBetter), Verdict::Worse);
/// assert_eq!(verdict(&slower, 0.05, Direction::HigherIsBetter), Verdict::Better);
/// let unsure = Interval { estimate: 1.2, low: 0.98, high: 1.4 };
/// assert_eq!(verdict(&unsure, 0.05, Direction::LowerIsBetter), Verdict::Noise);
/// ```
pub fn verdict(i: &Interval, threshold: f64, direction: Direction) -> Verdict {
    let up = 1.0 + threshold.max(0.0);
    let higher = i.low > up;
    let lower = i.high < 1.0 / up;
    match (higher, lower, direction) {
        (true, _, Direction::LowerIsBetter) | (_, true, Direction::HigherIsBetter) => Verdict::Worse,
        (true, _, Direction::HigherIsBetter) | (_, true, Direction::LowerIsBetter) => Verdict::Better,
        _ => Verdict::Noise,
    }
}

/// One compared figure.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// What it is (row and measurement).
    pub what: String,
    /// OLD's figure.
    pub old: f64,
    /// NEW's figure.
    pub new: f64,
    /// NEW ÷ OLD with its interval (`None` when a side has one measurement).
    pub ratio: Option<Interval>,
    /// The rank test's p-value on the group medians (`None`: too few groups).
    pub p: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Times or rates.
    pub direction: Direction,
}

/// Compares every figure `old` and `new` both measured.
pub fn compare(old: &Results, new: &Results, threshold: f64) -> Vec<Comparison> {
    let mut out = Vec::new();
    let mut push = |what: String, o: Vec<Vec<f64>>, n: Vec<Vec<f64>>, direction: Direction| {
        let (Some(old_c), Some(new_c)) = (stats::center(&o), stats::center(&n)) else { return };
        let ratio = stats::ratio_interval(&n, &o, seed_of(&[&what, "compare"]));
        let p = stats::rank_test(&stats::group_medians(&o), &stats::group_medians(&n));
        let verdict = match (&ratio, p) {
            (Some(i), Some(p)) if p <= 0.05 => verdict(i, threshold, direction),
            (Some(_), Some(_)) => Verdict::Noise,
            _ => Verdict::Unknown,
        };
        out.push(Comparison { what, old: old_c, new: new_c, ratio, p, verdict, direction });
    };
    for cell in &new.cells {
        // Cells are matched by their dataset, not its position in the plan.
        let Some(dataset) = new.plan.datasets.get(cell.dataset) else { continue };
        let Some(old_index) = old.plan.datasets.iter().position(|d| d == dataset) else { continue };
        let Some(before) = old.cell(&cell.row, old_index, cell.column) else { continue };
        let dataset = format!(", {}", dataset.name());
        push(
            format!("{} / {}{dataset}", label(new, &cell.row), cell.column.title()),
            before.groups(),
            cell.groups(),
            Direction::LowerIsBetter,
        );
    }
    // The multi-process runs are comparable only if they ran the same workload.
    let same_runs = old.plan.main_dataset() == new.plan.main_dataset();
    let same_contention = same_runs
        && old.plan.contention.as_ref().map(|c| (c.counters, c.popularity))
            == new.plan.contention.as_ref().map(|c| (c.counters, c.popularity));
    for c in new.contention.iter().filter(|_| same_contention) {
        let (Some(now), Some(then)) =
            (c.outcome.measured(), old.contention_point(&c.row, c.procs).and_then(|o| o.outcome.measured()))
        else {
            continue;
        };
        let name = format!("{} / {} process{}", label(new, &c.row), c.procs, if c.procs == 1 { "" } else { "es" });
        push(
            format!("{name}: increments/s"),
            per_run(&then.runs, GroupRun::throughput),
            per_run(&now.runs, GroupRun::throughput),
            Direction::HigherIsBetter,
        );
        push(
            format!("{name}: increment p99"),
            per_run_q(&then.runs, 0.99),
            per_run_q(&now.runs, 0.99),
            Direction::LowerIsBetter,
        );
    }
    for r in new.readers.iter().filter(|_| same_runs) {
        let Some(now) = r.outcome.measured() else { continue };
        let Some(then) = old
            .readers
            .iter()
            .find(|o| o.row == r.row && o.locked == r.locked && o.writers == r.writers)
            .and_then(|o| o.outcome.measured())
        else {
            continue;
        };
        let name = format!(
            "readers of {}{} / {} writers",
            label(new, &r.row),
            if r.locked { " (LOCK_SH)" } else { "" },
            r.writers
        );
        let p99 = |runs: &[GroupRun]| stats::singletons(runs.iter().filter_map(|r| r.read_latency.quantile(0.99)));
        push(
            format!("{name}: reads/s"),
            per_run(then, GroupRun::read_throughput),
            per_run(now, GroupRun::read_throughput),
            Direction::HigherIsBetter,
        );
        push(format!("{name}: reader p99"), p99(then), p99(now), Direction::LowerIsBetter);
    }
    for s in &new.sweeps {
        let Some(before) = old.sweeps.iter().find(|o| o.spec.kind == s.spec.kind) else { continue };
        for p in &s.points {
            let (Some(now), Some(then)) = (
                p.outcome.measured(),
                before.points.iter().find(|o| o.row == p.row && o.value == p.value).and_then(|o| o.outcome.measured()),
            ) else {
                continue;
            };
            push(
                format!("sweep {} = {}, {}: ops/s", s.spec.kind.name(), s.spec.kind.show(p.value), label(new, &p.row)),
                per_run(then, GroupRun::throughput),
                per_run(now, GroupRun::throughput),
                Direction::HigherIsBetter,
            );
        }
    }
    out
}

fn label<'a>(results: &'a Results, id: &'a str) -> &'a str {
    results.row(id).map_or(id, |r| r.label.as_str())
}

fn per_run(runs: &[GroupRun], f: fn(&GroupRun) -> f64) -> Vec<Vec<f64>> {
    stats::singletons(runs.iter().map(f))
}

fn per_run_q(runs: &[GroupRun], q: f64) -> Vec<Vec<f64>> {
    stats::singletons(runs.iter().filter_map(|r| r.write_latency.quantile(q)))
}

/// The comparison as text: what the two runs were, then one line per figure.
pub fn render(old: &Results, new: &Results, comparisons: &[Comparison], threshold: f64) -> String {
    let mut out = String::new();
    let describe = |name: &str, r: &Results| {
        let p = &r.provenance;
        format!(
            "{name}: {} mode, {}, {} ({} cores), commit {}{}, load {}{}",
            r.plan.preset.name(),
            p.date,
            p.machine.cpu,
            p.machine.cores,
            p.git_commit.as_deref().map_or("unknown", |c| &c[..c.len().min(12)]),
            if p.git_dirty == Some(true) { " (dirty)" } else { "" },
            p.load_before.map_or("unknown".into(), |l| format!("{:.2}", l[0])),
            if crate::report::was_busy(r) { ", BUSY machine" } else { "" }
        )
    };
    let _ = writeln!(out, "{}", describe("OLD", old));
    let _ = writeln!(out, "{}", describe("NEW", new));
    let (a, b) = (&old.provenance.machine, &new.provenance.machine);
    if a.cpu != b.cpu || a.cores != b.cores || a.kernel != b.kernel {
        let _ = writeln!(
            out,
            "The runs were made on different machines or kernels: the ratios compare machines, not code."
        );
    }
    let _ = writeln!(
        out,
        "Ratio NEW ÷ OLD with a 95 % interval (two-level bootstrap), and p of an exact rank test on the \
         processes' (or runs') medians. A change is called only when p ≤ 0.05 and the whole interval lies \
         beyond ±{:.0} % (--threshold). \"too few to tell\": fewer than 4 processes or runs a side; interleave \
         more runs of each side and merge them (maph-bench merge).\n",
        threshold * 100.0
    );
    let mut table =
        Table::new(vec!["figure".into(), "OLD".into(), "NEW".into(), "NEW ÷ OLD".into(), "p".into(), "verdict".into()]);
    let show = |v: f64, d: Direction| if d == Direction::LowerIsBetter { f::ns(v) } else { f::rate(v) };
    for c in comparisons {
        table.push(vec![
            c.what.clone(),
            show(c.old, c.direction),
            show(c.new, c.direction),
            c.ratio.map_or_else(|| f::ratio(c.new, c.old), |i| f::ratio_interval(&i)),
            c.p.map_or("—".into(), |p| format!("{p:.3}")),
            c.verdict.text().into(),
        ]);
    }
    out.push_str(&table.text());
    let count = |v: Verdict| comparisons.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        out,
        "\n{} figures: {} worse, {} better, {} within noise, {} with too few processes or runs to tell.",
        comparisons.len(),
        count(Verdict::Worse),
        count(Verdict::Better),
        count(Verdict::Noise),
        count(Verdict::Unknown)
    );
    out
}

/// Whether any figure got worse beyond noise (the command's exit status says so).
pub fn any_worse(comparisons: &[Comparison]) -> bool {
    comparisons.iter().any(|c| c.verdict == Verdict::Worse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{CellResult, Outcome, ProcessCell};
    use crate::workload::Column;

    fn with_read(results: &mut Results, scale: f64) {
        let processes = (0..5)
            .map(|p| ProcessCell {
                round: p,
                position: 0,
                samples_ns: (0..10).map(|i| scale * (100.0 + f64::from(i) + 2.0 * p as f64)).collect(),
                iters: vec![1000.0; 10],
                criterion_median: Interval { estimate: 100.0 * scale, low: 99.0 * scale, high: 101.0 * scale },
                mapping: None,
            })
            .collect();
        results.cells = vec![CellResult {
            row: "flock".into(),
            dataset: 0,
            column: Column::Read,
            outcome: Outcome::Measured(processes),
        }];
    }

    #[test]
    fn a_run_compared_with_itself_is_noise_and_a_slowdown_is_called() {
        let mut old = crate::results::tests::tiny();
        with_read(&mut old, 1.0);
        let same = compare(&old, &old, 0.02);
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].verdict, Verdict::Noise);
        let mut new = old.clone();
        with_read(&mut new, 1.5);
        let slower = compare(&old, &new, 0.02);
        assert_eq!(slower[0].verdict, Verdict::Worse, "{:?}", slower[0].ratio);
        assert!(any_worse(&slower));
        let text = render(&old, &new, &slower, 0.02);
        assert!(text.contains("WORSE") && text.contains("flock / read"), "{text}");
        let faster = compare(&new, &old, 0.02);
        assert_eq!(faster[0].verdict, Verdict::Better);
    }

    #[test]
    fn too_few_processes_get_no_verdict_however_large_the_change() {
        // One process a side, however many samples: no test over processes is possible.
        let old = crate::results::tests::tiny();
        let mut new = old.clone();
        if let Outcome::Measured(p) = &mut new.cells[0].outcome {
            p[0].samples_ns = vec![50.0, 51.0, 52.0];
        }
        let c = compare(&old, &new, 0.05);
        assert_eq!(c[0].verdict, Verdict::Unknown);
        assert!(c[0].p.is_none());
    }
}
