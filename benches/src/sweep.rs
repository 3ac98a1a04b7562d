//! Sweeps: one parameter varied over a range while the others stay at a base
//! point, every selected row measured at each value by the same multi-process
//! workload (writer processes setting, or getting and setting, random keys).
//!
//! | sweep | varies | default values |
//! |---|---|---|
//! | `writers` | writer processes | 1, 2, 4, … up to 4× the cores |
//! | `value-size` | bytes per value | 16, 64, 256, and the slot's maximum (`max`) |
//! | `keys` | keys in the store | 1k, 10k, 100k, 1M |
//! | `zipf` | key popularity skew (0 is uniform) | 0, 0.5, 0.99, 1.2 |
//! | `read-share` | share of operations that are gets | 0, 0.5, 0.9, 0.99 |
//!
//! The base point: 2 writer processes, 10,000 keys, 64-byte values, uniform
//! popularity, writes only.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contention::Setup;
use crate::group::{self, GroupRun};
use crate::keys::{derive_seed, Popularity};
use crate::plan::{short_count, Dataset};
use crate::readers::fill;
use crate::results::Outcome;
use crate::rows::{create_maph_at, Row, RowEnv};
use crate::worker::{Arrival, Task, WorkerRole, WorkerSpec};

/// What a sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweepKind {
    /// Writer processes.
    Writers,
    /// Bytes per value.
    ValueSize,
    /// Keys in the store.
    Keys,
    /// Zipf skew of key popularity.
    Zipf,
    /// Share of operations that are gets.
    ReadShare,
}

impl SweepKind {
    /// Every sweep, in report order.
    pub const ALL: [SweepKind; 5] =
        [SweepKind::Writers, SweepKind::ValueSize, SweepKind::Keys, SweepKind::Zipf, SweepKind::ReadShare];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SweepKind::Writers => "writers",
            SweepKind::ValueSize => "value-size",
            SweepKind::Keys => "keys",
            SweepKind::Zipf => "zipf",
            SweepKind::ReadShare => "read-share",
        }
    }

    /// What the x axis says.
    pub fn axis(self) -> &'static str {
        match self {
            SweepKind::Writers => "writer processes",
            SweepKind::ValueSize => "value size (bytes)",
            SweepKind::Keys => "keys in the store",
            SweepKind::Zipf => "Zipf skew s (0 = uniform)",
            SweepKind::ReadShare => "share of operations that are gets",
        }
    }

    /// Whether its values are spread over orders of magnitude (a log axis).
    pub fn logarithmic(self) -> bool {
        matches!(self, SweepKind::Writers | SweepKind::ValueSize | SweepKind::Keys)
    }

    /// The default values (`f64::INFINITY` stands for "the slot's maximum").
    pub fn default_values(self) -> Vec<f64> {
        match self {
            SweepKind::Writers => {
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).max(1);
                std::iter::successors(Some(1usize), |p| Some(p * 2))
                    .take_while(|&p| p <= 4 * cores)
                    .map(|p| p as f64)
                    .collect()
            }
            SweepKind::ValueSize => vec![16.0, 64.0, 256.0, f64::INFINITY],
            SweepKind::Keys => vec![1e3, 1e4, 1e5, 1e6],
            SweepKind::Zipf => vec![0.0, 0.5, 0.99, 1.2],
            SweepKind::ReadShare => vec![0.0, 0.5, 0.9, 0.99],
        }
    }

    /// A value as the report shows it.
    pub fn show(self, v: f64) -> String {
        match self {
            SweepKind::Writers | SweepKind::ValueSize => format!("{v:.0}"),
            SweepKind::Keys => short_count(v),
            SweepKind::Zipf | SweepKind::ReadShare => format!("{v}"),
        }
    }
}

/// A sweep to run: its kind, values, and how long each point is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    /// What varies.
    pub kind: SweepKind,
    /// The values (the slot's maximum value size is resolved before running).
    pub values: Vec<f64>,
    /// Runs per (row, value).
    pub repeats: usize,
    /// How long one run lasts, ms.
    pub duration_ms: u64,
}

impl SweepSpec {
    /// Parses `NAME` or `NAME=V,V,...` (`max` allowed for value-size).
    ///
    /// ```
    /// use maph_bench::sweep::{SweepKind, SweepSpec};
    /// let s = SweepSpec::parse("zipf=0.99", 2, 250).unwrap();
    /// assert_eq!((s.kind, s.values), (SweepKind::Zipf, vec![0.99]));
    /// assert!(SweepSpec::parse("value-size=16,max", 1, 50).unwrap().values[1].is_infinite());
    /// assert!(SweepSpec::parse("colour", 1, 50).is_err());
    /// ```
    pub fn parse(text: &str, repeats: usize, duration_ms: u64) -> anyhow::Result<SweepSpec> {
        let (name, values) = match text.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (text, None),
        };
        let kind = SweepKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            anyhow::anyhow!(
                "no sweep named {name:?}; the sweeps are {}",
                SweepKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            )
        })?;
        let values = match values {
            None => kind.default_values(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|v| match v {
                    "max" if kind == SweepKind::ValueSize => Ok(f64::INFINITY),
                    _ => v.parse::<f64>().map_err(|_| anyhow::anyhow!("sweep {name}: {v:?} is not a number")),
                })
                .collect::<anyhow::Result<Vec<f64>>>()?,
        };
        anyhow::ensure!(!values.is_empty(), "sweep {name} has no values");
        for &v in &values {
            let ok = match kind {
                SweepKind::Writers | SweepKind::Keys | SweepKind::ValueSize => v >= 1.0,
                SweepKind::Zipf => v >= 0.0,
                SweepKind::ReadShare => (0.0..=1.0).contains(&v),
            };
            anyhow::ensure!(ok, "sweep {name}: {v} is out of range");
        }
        Ok(SweepSpec { kind, values, repeats, duration_ms })
    }
}

/// The base point every sweep varies one parameter of.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Writer processes.
    pub writers: usize,
    /// Keys, store size, value size.
    pub dataset: Dataset,
    /// Key popularity.
    pub popularity: Popularity,
    /// Share of operations that are gets.
    pub read_share: f64,
}

impl Point {
    /// 2 writers, the default dataset, uniform, writes only.
    pub const BASE: Point =
        Point { writers: 2, dataset: Dataset::DEFAULT, popularity: Popularity::Uniform, read_share: 0.0 };

    /// The base point with `kind` set to `value`.
    pub fn with(self, kind: SweepKind, value: f64) -> Point {
        match kind {
            SweepKind::Writers => Point { writers: value as usize, ..self },
            SweepKind::ValueSize => Point { dataset: Dataset { value_size: value as usize, ..self.dataset }, ..self },
            SweepKind::Keys => Point {
                dataset: Dataset { value_size: self.dataset.value_size, ..Dataset::for_keys(value as usize) },
                ..self
            },
            SweepKind::Zipf => Point { popularity: Popularity::from_skew(value), ..self },
            SweepKind::ReadShare => Point { read_share: value, ..self },
        }
    }
}

/// One sweep's measurements.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepResult {
    /// What was swept (values resolved).
    pub spec: SweepSpec,
    /// The base point.
    pub base: Point,
    /// Every (row, value).
    pub points: Vec<SweepPoint>,
}

/// One row at one value of a sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Row id.
    pub row: String,
    /// The swept parameter's value.
    pub value: f64,
    /// The runs.
    pub outcome: Outcome<Vec<GroupRun>>,
}

/// The largest value a maph slot holds beside a 13-byte key.
pub fn max_value_size(scratch: &Path) -> anyhow::Result<usize> {
    let path = scratch.join("probe-max-value.maph");
    create_maph_at(&path, maph_core::Strategy::UNCOORDINATED, 64)?;
    let store = maph_core::Store::open(&path, maph_core::Mode::ReadOnly)?;
    let max = store.max_value_len(13);
    drop(store);
    let _ = std::fs::remove_file(&path);
    Ok(max)
}

/// Runs `spec` for every row.
pub fn run(
    setup: &Setup<'_>,
    rows: &[Row],
    spec: &SweepSpec,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<SweepResult> {
    let mut spec = spec.clone();
    if spec.values.iter().any(|v| v.is_infinite()) {
        let max = max_value_size(setup.base)? as f64;
        for v in &mut spec.values {
            if v.is_infinite() {
                *v = max;
            }
        }
    }
    let base = Point::BASE;
    let mut points = Vec::new();
    for &value in &spec.values {
        let point = base.with(spec.kind, value);
        for row in rows {
            let outcome = match row.refuses(point.writers, 0) {
                Some(why) => Outcome::NotApplicable(why.to_string()),
                None => match measure(setup, row, &spec, point, value, progress) {
                    Ok(runs) => Outcome::Measured(runs),
                    Err(e) => {
                        progress(&format!(
                            "sweep {} = {}, {}: failed: {e:#}",
                            spec.kind.name(),
                            spec.kind.show(value),
                            row.id
                        ));
                        Outcome::Failed(format!("{e:#}"))
                    }
                },
            };
            points.push(SweepPoint { row: row.id.into(), value, outcome });
        }
    }
    Ok(SweepResult { spec, base, points })
}

fn measure(
    setup: &Setup<'_>,
    row: &Row,
    spec: &SweepSpec,
    point: Point,
    value: f64,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<GroupRun>> {
    let dir = setup.base.join(format!("sweep-{}-{}-{}", spec.kind.name(), row.id, spec.kind.show(value)));
    let env = RowEnv { dir: dir.clone(), redis_url: setup.redis_url.map(String::from), dataset: point.dataset };
    let result = (|| {
        fill(row, &env, setup.seed, setup.settle_pages)?;
        let mut runs = Vec::new();
        for repeat in 0..spec.repeats.max(1) {
            let specs: Vec<WorkerSpec> = (0..point.writers)
                .map(|w| WorkerSpec {
                    row: row.id.into(),
                    dir: dir.clone(),
                    redis_url: setup.redis_url.map(String::from),
                    dataset: point.dataset,
                    role: WorkerRole::Writer { index: w, writers: point.writers },
                    task: Task::Mix { read_share: point.read_share, popularity: point.popularity },
                    arrival: Arrival::Closed,
                    seed: derive_seed(setup.seed, &[0x5e, value.to_bits(), repeat as u64, w as u64]),
                    sample_every: setup.sample_every,
                })
                .collect();
            let run = group::run(setup.exe, &specs, Duration::from_millis(spec.duration_ms))?;
            progress(&format!(
                "sweep {} = {}, {}: run {}: {:.0} ops/s",
                spec.kind.name(),
                spec.kind.show(value),
                row.id,
                repeat + 1,
                run.throughput()
            ));
            runs.push(run);
        }
        Ok(runs)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_names_values_and_ranges() {
        let s = SweepSpec::parse("writers", 1, 10).unwrap();
        assert_eq!(s.values[0], 1.0);
        assert!(*s.values.last().unwrap() >= 4.0, "at least twice the cores: {:?}", s.values);
        assert!(SweepSpec::parse("read-share=1.5", 1, 10).is_err());
        assert!(SweepSpec::parse("keys=x", 1, 10).unwrap_err().to_string().contains("not a number"));
        assert!(SweepSpec::parse("zipf=max", 1, 10).is_err());
        assert!(SweepSpec::parse("keys=", 1, 10).is_err());
    }

    #[test]
    fn a_point_changes_one_parameter() {
        let p = Point::BASE.with(SweepKind::Keys, 1e6);
        assert_eq!(p.dataset.keys, 1_000_000);
        assert!(p.dataset.load() <= 0.5);
        assert_eq!(p.writers, Point::BASE.writers);
        assert_eq!(Point::BASE.with(SweepKind::Zipf, 0.0).popularity, Popularity::Uniform);
        assert_eq!(Point::BASE.with(SweepKind::ValueSize, 16.0).dataset.keys, Dataset::DEFAULT.keys);
    }

    #[test]
    fn the_slot_maximum_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let max = max_value_size(dir.path()).unwrap();
        assert!(max > 64 && max < 512, "{max}");
    }
}
