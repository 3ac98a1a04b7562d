//! Running criterion from the report and reading back what it measured.
//!
//! criterion saves each benchmark's samples (`iters` and total `times` in ns)
//! to `<output>/<group>/<function>/new/sample.json`. The report reads those
//! files rather than timing anything itself, so the figures are criterion's own.

use std::path::Path;
use std::time::Duration;

use criterion::Criterion;
use serde::Deserialize;

use crate::stats::Summary;

/// How long criterion measures each benchmark.
#[derive(Clone, Copy, Debug)]
pub struct CriterionSettings {
    /// Samples per benchmark (criterion's minimum is 10).
    pub sample_size: usize,
    /// Warm-up before sampling.
    pub warm_up: Duration,
    /// Target time for all samples together.
    pub measurement: Duration,
    /// Bootstrap resamples of criterion's own analysis (the report does not use them).
    pub nresamples: usize,
}

impl CriterionSettings {
    /// A criterion configured with these settings, saving into `output`.
    pub fn criterion(&self, output: &Path) -> Criterion {
        Criterion::default()
            .sample_size(self.sample_size.max(10))
            .warm_up_time(self.warm_up.max(Duration::from_millis(1)))
            .measurement_time(self.measurement.max(Duration::from_millis(1)))
            .nresamples(self.nresamples.max(1000))
            .without_plots()
            .output_directory(output)
    }
}

#[derive(Deserialize)]
struct SavedSample {
    iters: Vec<f64>,
    times: Vec<f64>,
}

/// The time per iteration, in nanoseconds, of each sample criterion saved for
/// `group/function` under `output`.
pub fn per_iteration_ns(output: &Path, group: &str, function: &str) -> anyhow::Result<Vec<f64>> {
    let path = output.join(group).join(function).join("new").join("sample.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("criterion left no samples at {}: {e}", path.display()))?;
    let saved: SavedSample = serde_json::from_str(&text)?;
    anyhow::ensure!(saved.iters.len() == saved.times.len(), "{}: iters and times differ in length", path.display());
    Ok(saved.iters.iter().zip(&saved.times).filter(|(i, _)| **i > 0.0).map(|(i, t)| t / i).collect())
}

/// [`per_iteration_ns`] summarised.
pub fn summary(output: &Path, group: &str, function: &str) -> anyhow::Result<Summary> {
    let samples = per_iteration_ns(output, group, function)?;
    Summary::of(&samples).ok_or_else(|| anyhow::anyhow!("criterion saved no samples for {group}/{function}"))
}
