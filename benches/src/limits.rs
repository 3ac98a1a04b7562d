//! The physical floor: `limits.c` measures the raw primitives a coordinator is
//! built from (a flock pair, an fcntl pair, seqlock slot reads and writes at
//! random addresses, dependent and independent, an in-file CAS lock) on this
//! machine, in C, with nothing around them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// What `limits.c` measured, one line per primitive, over several runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limits {
    /// The source file that was compiled.
    pub source: String,
    /// Each primitive's label and its figure from each run (ns).
    pub lines: Vec<(String, Vec<f64>)>,
}

/// How the floor measurement went.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitsOutcome {
    /// Measured.
    Measured(Limits),
    /// Not measured, for this reason (said plainly in the report).
    Skipped(String),
}

impl Limits {
    /// The per-run figures of the first line whose label contains `needle`.
    pub fn values_of(&self, needle: &str) -> Option<&[f64]> {
        self.lines.iter().find(|(label, _)| label.contains(needle)).map(|(_, v)| v.as_slice())
    }

    /// Each line summarised over the runs.
    pub fn summaries(&self) -> Vec<(String, Summary)> {
        self.lines.iter().filter_map(|(label, v)| Some((label.clone(), Summary::of(v)?))).collect()
    }
}

/// Where `limits.c` is: `MAPH_LIMITS_C` if set, else the project's copy in this crate.
pub fn find_source() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MAPH_LIMITS_C") {
        return Some(PathBuf::from(path));
    }
    let copy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/limits.c");
    copy.is_file().then(|| copy.canonicalize().unwrap_or(copy))
}

/// Compiles `limits.c` with `cc -O2` into `scratch` and runs it `runs` times
/// with its files in `data_dir` (the directory the benchmark's stores use).
pub fn measure(scratch: &Path, data_dir: &Path, runs: usize) -> LimitsOutcome {
    match try_measure(scratch, data_dir, runs) {
        Ok(limits) => LimitsOutcome::Measured(limits),
        Err(reason) => LimitsOutcome::Skipped(reason),
    }
}

fn try_measure(scratch: &Path, data_dir: &Path, runs: usize) -> Result<Limits, String> {
    let source = find_source().ok_or("limits.c was not found (set MAPH_LIMITS_C to its path)")?;
    let binary = scratch.join("limits");
    let compiled = Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .map_err(|e| format!("no C compiler (`cc`) to build {}: {e}", source.display()))?;
    if !compiled.status.success() {
        return Err(format!(
            "`cc -O2 {}` failed: {}",
            source.display(),
            String::from_utf8_lossy(&compiled.stderr).trim()
        ));
    }
    let mut per_line: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..runs.max(1) {
        let out = Command::new(&binary).arg(data_dir).output().map_err(|e| format!("could not run limits: {e}"))?;
        if !out.status.success() {
            return Err(format!("limits exited with {}", out.status));
        }
        for (label, ns) in parse(&String::from_utf8_lossy(&out.stdout)) {
            match per_line.iter_mut().find(|(l, _)| *l == label) {
                Some((_, values)) => values.push(ns),
                None => per_line.push((label, vec![ns])),
            }
        }
    }
    if per_line.is_empty() {
        return Err("limits printed no figures".into());
    }
    let source = match source.strip_prefix(crate::provenance::repository().canonicalize().unwrap_or_default()) {
        Ok(relative) => relative.display().to_string(),
        Err(_) => source.display().to_string(),
    };
    Ok(Limits { source, lines: per_line })
}

/// Reads lines like `flock LOCK_EX + LOCK_UN pair        1234.5 ns`.
pub fn parse(output: &str) -> Vec<(String, f64)> {
    output
        .lines()
        .filter_map(|line| {
            let body = line.trim_end().strip_suffix("ns")?.trim_end();
            let split = body.rfind(char::is_whitespace)?;
            let value: f64 = body[split..].trim().parse().ok()?;
            Some((body[..split].trim().to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits_lines_and_ignores_others() {
        let text =
            "flock LOCK_EX + LOCK_UN pair        1234.5 ns\nnoise\nin-file CAS lock + unlock              4.2 ns\n";
        assert_eq!(
            parse(text),
            vec![("flock LOCK_EX + LOCK_UN pair".to_string(), 1234.5), ("in-file CAS lock + unlock".to_string(), 4.2)]
        );
    }

    #[test]
    fn the_source_is_found_and_prints_both_random_access_floors() {
        let source = find_source().expect("benches/tools/limits.c ships with the crate");
        let text = std::fs::read_to_string(source).unwrap();
        for floor in [
            "seqlock read, dependent random slot",
            "seqlock write, dependent random slot",
            "seqlock read, random slot",
            "seqlock write, random slot",
        ] {
            assert!(text.contains(floor), "limits.c prints {floor:?}");
        }
    }
}
