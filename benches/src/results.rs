//! The raw results of a run: what `results.json` holds. Every sample, every
//! histogram, every parameter and the provenance, so that the report can be
//! rendered again, and two runs compared, without measuring again.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::group::GroupRun;
use crate::limits::LimitsOutcome;
use crate::plan::Plan;
use crate::provenance::Provenance;
use crate::rows::{Row, SharedLock, Sharing};
use crate::stats;
use crate::sweep::SweepResult;
use crate::workload::Column;

/// The version of this file's layout; readers refuse others.
pub const SCHEMA: u32 = 1;

/// A whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Where, when, on what, by which code.
    pub provenance: Provenance,
    /// What was asked for.
    pub plan: Plan,
    /// The rows, in table order (measured or not).
    pub rows: Vec<RowInfo>,
    /// The single-process table.
    pub cells: Vec<CellResult>,
    /// The contention runs.
    pub contention: Vec<ContentionResult>,
    /// Readers under writers.
    pub readers: Vec<ReadersResult>,
    /// The sweeps.
    pub sweeps: Vec<SweepResult>,
    /// The physical floor.
    pub limits: LimitsOutcome,
    /// How long the run took (s).
    pub elapsed_s: f64,
}

impl Results {
    /// Reads a results file, refusing another schema with a message that says what to do.
    pub fn load(path: &Path) -> anyhow::Result<Results> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("could not read {}: {e}", path.display()))?;
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))?;
        let schema = probe.get("schema").and_then(serde_json::Value::as_u64);
        anyhow::ensure!(
            schema == Some(u64::from(SCHEMA)),
            "{} has results schema {schema:?}; this maph-bench reads schema {SCHEMA} (render it with the maph-bench of its commit)",
            path.display()
        );
        serde_json::from_value(probe)
            .map_err(|e| anyhow::anyhow!("{} is not a maph-bench results file: {e}", path.display()))
    }

    /// Writes the results file (compact JSON: `jq` reads it, and a copy is
    /// tracked beside docs/BENCHMARKS.md).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string(self)?)?;
        Ok(())
    }

    /// The row with id `id`.
    pub fn row(&self, id: &str) -> Option<&RowInfo> {
        self.rows.iter().find(|r| r.id == id)
    }

    /// The rows that were measured, in table order.
    pub fn measured_rows(&self) -> impl Iterator<Item = &RowInfo> {
        self.rows.iter().filter(|r| r.skipped.is_none())
    }

    /// The cell of `row`, dataset `dataset`, `column`.
    pub fn cell(&self, row: &str, dataset: usize, column: Column) -> Option<&CellResult> {
        self.cells.iter().find(|c| c.row == row && c.dataset == dataset && c.column == column)
    }

    /// The measured processes of a cell, if it was measured.
    pub fn cell_processes(&self, row: &str, dataset: usize, column: Column) -> Option<&[ProcessCell]> {
        match &self.cell(row, dataset, column)?.outcome {
            Outcome::Measured(p) => Some(p),
            _ => None,
        }
    }

    /// Several runs of the same code and plan as one: every process, run and
    /// floor measurement of each, side by side, so intervals and tests over
    /// processes and runs take in the drift between the runs. Interleaving
    /// the runs of two versions (old, new, old, new) and merging each
    /// version's is how `compare` judges a change on a drifting machine.
    /// Refuses runs of different commits or plans. An open-loop run and the
    /// provenance's details are kept from the first run.
    pub fn merge(mut parts: Vec<Results>) -> anyhow::Result<Results> {
        anyhow::ensure!(!parts.is_empty(), "nothing to merge");
        let mut merged = parts.remove(0);
        for (i, part) in parts.into_iter().enumerate() {
            let which = i + 2;
            anyhow::ensure!(
                part.plan == merged.plan,
                "run {which} was made with another plan (preset, datasets, sweeps or options): merge runs of one command"
            );
            anyhow::ensure!(
                part.provenance.git_commit == merged.provenance.git_commit
                    && part.provenance.git_dirty == merged.provenance.git_dirty,
                "run {which} measured other code (commit {:?}, dirty {:?}): merge runs of one version",
                part.provenance.git_commit,
                part.provenance.git_dirty
            );
            merged.absorb(part);
        }
        Ok(merged)
    }

    fn absorb(&mut self, other: Results) {
        for row in other.rows {
            match self.rows.iter_mut().find(|r| r.id == row.id) {
                Some(mine) if mine.skipped.is_some() => *mine = row,
                Some(_) => {}
                None => self.rows.push(row),
            }
        }
        for cell in other.cells {
            match self
                .cells
                .iter_mut()
                .find(|c| c.row == cell.row && c.dataset == cell.dataset && c.column == cell.column)
            {
                Some(mine) => join(&mut mine.outcome, cell.outcome, |a, b| a.extend(b)),
                None => self.cells.push(cell),
            }
        }
        for point in other.contention {
            match self.contention.iter_mut().find(|c| c.row == point.row && c.procs == point.procs) {
                Some(mine) => join(&mut mine.outcome, point.outcome, |a, b| a.runs.extend(b.runs)),
                None => self.contention.push(point),
            }
        }
        for r in other.readers {
            match self.readers.iter_mut().find(|o| o.row == r.row && o.locked == r.locked && o.writers == r.writers) {
                Some(mine) => join(&mut mine.outcome, r.outcome, |a, b| a.extend(b)),
                None => self.readers.push(r),
            }
        }
        for sweep in other.sweeps {
            let Some(mine) = self.sweeps.iter_mut().find(|s| s.spec.kind == sweep.spec.kind) else {
                self.sweeps.push(sweep);
                continue;
            };
            for point in sweep.points {
                match mine.points.iter_mut().find(|p| p.row == point.row && p.value == point.value) {
                    Some(p) => join(&mut p.outcome, point.outcome, |a, b| a.extend(b)),
                    None => mine.points.push(point),
                }
            }
        }
        match (&mut self.limits, other.limits) {
            (LimitsOutcome::Measured(mine), LimitsOutcome::Measured(theirs)) => {
                for (label, values) in theirs.lines {
                    match mine.lines.iter_mut().find(|(l, _)| *l == label) {
                        Some((_, v)) => v.extend(values),
                        None => mine.lines.push((label, values)),
                    }
                }
            }
            (mine @ LimitsOutcome::Skipped(_), theirs @ LimitsOutcome::Measured(_)) => *mine = theirs,
            _ => {}
        }
        let p = &mut self.provenance;
        p.command = format!("{}; merged with {}", p.command, other.provenance.command);
        p.date = format!("{}; {}", p.date, other.provenance.date);
        p.load_after = other.provenance.load_after;
        p.others_cpu_share = match (p.others_cpu_share, other.provenance.others_cpu_share) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (mine, theirs) in [
            (&mut p.redis.ping_before, other.provenance.redis.ping_before),
            (&mut p.redis.ping_after, other.provenance.redis.ping_after),
        ] {
            match (mine.as_mut(), theirs) {
                (Some(h), Some(t)) => h.merge(&t),
                (None, t) => *mine = t,
                _ => {}
            }
        }
        self.elapsed_s += other.elapsed_s;
    }

    /// The contention point of `row` at `procs` writer processes.
    pub fn contention_point(&self, row: &str, procs: usize) -> Option<&ContentionResult> {
        self.contention.iter().find(|c| c.row == row && c.procs == procs)
    }
}

/// Puts `theirs` into `mine`: both measured, `add` joins them; a failure
/// wins (it must be seen); a measurement wins over "not applicable".
fn join<T>(mine: &mut Outcome<T>, theirs: Outcome<T>, add: impl FnOnce(&mut T, T)) {
    match (&mut *mine, theirs) {
        (Outcome::Measured(a), Outcome::Measured(b)) => add(a, b),
        (Outcome::Failed(_), _) => {}
        (_, theirs @ Outcome::Failed(_)) => *mine = theirs,
        (Outcome::NotApplicable(_), theirs) => *mine = theirs,
        (Outcome::Measured(_), Outcome::NotApplicable(_)) => {}
    }
}

/// How a measurement went.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome<T> {
    /// Measured.
    Measured(T),
    /// The measurement does not apply to this row (why).
    NotApplicable(String),
    /// It failed (the error).
    Failed(String),
}

impl<T> Outcome<T> {
    /// The measurement, if there is one.
    pub fn measured(&self) -> Option<&T> {
        match self {
            Outcome::Measured(t) => Some(t),
            _ => None,
        }
    }
}

/// A row as the results record it (independent of the code that measured it,
/// so a results file renders after the rows have changed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowInfo {
    /// Stable id.
    pub id: String,
    /// What the tables call it.
    pub label: String,
    /// The crate that provides it.
    pub provider: String,
    /// False for the unsafe baseline.
    pub safe: bool,
    /// A peer database.
    pub peer: bool,
    /// Why only one writer process may open it at once, if so (`None`: any number).
    pub one_writer: Option<String>,
    /// Why only one process may open it at all, if so.
    pub one_process: Option<String>,
    /// What its shared-lock column means: `shared`, `exclusive: why` or `none: why`.
    pub shared_lock: String,
    /// Said under the tables.
    pub note: Option<String>,
    /// Its read is one maph store's `Store::get_into`: the same code as every
    /// other such row (not a sharded store's routed read, not a peer's).
    #[serde(default)]
    pub store_read: bool,
    /// Why it was not measured at all, if it was not.
    pub skipped: Option<String>,
}

impl RowInfo {
    /// The record of `row`.
    pub fn of(row: &Row, skipped: Option<String>) -> RowInfo {
        RowInfo {
            id: row.id.into(),
            label: row.label.into(),
            provider: row.provider.into(),
            safe: row.safe,
            peer: row.peer,
            one_writer: match row.sharing {
                Sharing::OneWriter(why) | Sharing::OneProcess(why) => Some(why.into()),
                Sharing::Many => None,
            },
            one_process: match row.sharing {
                Sharing::OneProcess(why) => Some(why.into()),
                _ => None,
            },
            shared_lock: match row.shared_lock {
                SharedLock::Shared => "shared".into(),
                SharedLock::Exclusive(why) => format!("exclusive: {why}"),
                SharedLock::Free(why) => format!("none: {why}"),
            },
            note: row.note.map(String::from),
            store_read: matches!(row.create, crate::rows::Create::Maph(_)),
            skipped,
        }
    }
}

/// One cell of the single-process table: one row, dataset and column.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellResult {
    /// Row id.
    pub row: String,
    /// Index into the plan's datasets.
    pub dataset: usize,
    /// The column.
    pub column: Column,
    /// One entry per process that measured it.
    pub outcome: Outcome<Vec<ProcessCell>>,
}

impl CellResult {
    /// The samples of each process (ns per iteration), as [`stats`] groups.
    pub fn groups(&self) -> Vec<Vec<f64>> {
        self.outcome.measured().map(|p| p.iter().map(|c| c.samples_ns.clone()).collect()).unwrap_or_default()
    }

    /// The cell's figure: the median of its processes' medians (ns).
    pub fn center(&self) -> Option<f64> {
        stats::center(&self.groups())
    }
}

/// What one freshly started process measured for one cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessCell {
    /// Which round of processes (each round runs every row once, in its own shuffled order).
    pub round: usize,
    /// Where in its round's order this process ran.
    pub position: usize,
    /// criterion's samples: the mean time per iteration of each (ns).
    pub samples_ns: Vec<f64>,
    /// Iterations in each sample.
    pub iters: Vec<f64>,
    /// criterion's own estimate of the median and its interval (ns).
    pub criterion_median: stats::Interval,
    /// How the process's store was laid out in memory, where that can be seen.
    pub mapping: Option<crate::mapping::MappingInfo>,
}

/// The contention runs of one row at one process count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContentionResult {
    /// Row id.
    pub row: String,
    /// Writer processes.
    pub procs: usize,
    /// The runs.
    pub outcome: Outcome<ContentionPoint>,
}

/// The closed-loop runs of one point, and its open-loop run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContentionPoint {
    /// Closed-loop runs: each worker increments as fast as it can.
    pub runs: Vec<GroupRun>,
    /// The open-loop run at a fixed arrival rate, if one was made.
    pub open_loop: Option<Outcome<GroupRun>>,
}

/// Readers under writers: one row, one writer count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadersResult {
    /// Row id.
    pub row: String,
    /// Readers take the strategy's shared lock around each read.
    pub locked: bool,
    /// Writer processes.
    pub writers: usize,
    /// Reader processes.
    pub readers: usize,
    /// The runs.
    pub outcome: Outcome<Vec<GroupRun>>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::Preset;

    pub(crate) fn tiny() -> Results {
        let row = crate::rows::find("flock").unwrap();
        Results {
            schema: SCHEMA,
            provenance: Provenance::unknown("test"),
            plan: Plan::new(Preset::Smoke),
            rows: vec![RowInfo::of(&row, None)],
            cells: vec![CellResult {
                row: "flock".into(),
                dataset: 0,
                column: Column::Read,
                outcome: Outcome::Measured(vec![ProcessCell {
                    round: 0,
                    position: 0,
                    samples_ns: vec![1.0, 2.0, 3.0],
                    iters: vec![10.0, 20.0, 30.0],
                    criterion_median: stats::Interval { estimate: 2.0, low: 1.0, high: 3.0 },
                    mapping: None,
                }]),
            }],
            contention: vec![],
            readers: vec![],
            sweeps: vec![],
            limits: LimitsOutcome::Skipped("test".into()),
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn results_round_trip_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let r = tiny();
        r.save(&path).unwrap();
        let back = Results::load(&path).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&r).unwrap());
        assert_eq!(back.cell("flock", 0, Column::Read).unwrap().center(), Some(2.0));
    }

    #[test]
    fn merging_puts_processes_side_by_side_and_refuses_other_code() {
        let a = tiny();
        let merged = Results::merge(vec![a.clone(), a.clone(), a.clone()]).unwrap();
        let processes = merged.cell_processes("flock", 0, Column::Read).unwrap();
        assert_eq!(processes.len(), 3);
        assert_eq!(merged.elapsed_s, 3.0);
        assert!(merged.provenance.command.contains("merged with"));
        let mut other = a.clone();
        other.provenance.git_commit = Some("another".into());
        let err = Results::merge(vec![a.clone(), other]).unwrap_err().to_string();
        assert!(err.contains("other code"), "{err}");
        let mut other_plan = a.clone();
        other_plan.plan.seed += 1;
        assert!(Results::merge(vec![a, other_plan]).unwrap_err().to_string().contains("another plan"));
    }

    #[test]
    fn another_schema_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        std::fs::write(&path, r#"{"schema": 0}"#).unwrap();
        let err = Results::load(&path).unwrap_err().to_string();
        assert!(err.contains("schema") && err.contains("maph-bench of its commit"), "{err}");
        std::fs::write(&path, "not json").unwrap();
        assert!(Results::load(&path).unwrap_err().to_string().contains("not JSON"));
    }
}
