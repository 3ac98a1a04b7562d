//! The harness end to end in smoke mode, as CI runs it: every built row is set
//! up, measured by criterion, run by real worker processes, and reported.
//! Nothing here compares times; it checks that the harness produces a complete,
//! honest report (every row accounted for, counts that add up).

use std::process::Command;

use maph_bench::rows;

#[test]
fn smoke_run_writes_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let svg = dir.path().join("chart.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_maph-bench"))
        .args(["report", "--smoke", "--out"])
        .arg(&out)
        .arg("--svg")
        .arg(&svg)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run maph-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "maph-bench failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");

    let md = std::fs::read_to_string(&out).expect("the report was written");
    assert!(md.contains("Smoke run"), "a smoke report says it is one");
    assert!(md.contains("](chart.svg)"), "the report links its chart");
    for section in ["## Machine", "## The strategy table", "## Comparison of strategies", "## Contention"] {
        assert!(md.contains(section), "missing {section}");
    }
    // Every row appears: measured rows in the tables, the rest under "Not measured".
    for row in rows::all() {
        assert!(md.contains(row.label), "row {} is missing from the report", row.id);
        assert!(stdout.contains(row.label), "row {} is missing from the terminal table", row.id);
    }
    // No measured cell failed, and the single-process rows that always exist were measured.
    assert!(!md.contains("| failed |") && !md.contains("failed:"), "a cell failed:\n{md}");
    assert!(!md.contains("increments failed"), "an increment failed:\n{md}");
    for always in ["single writer", "uncoordinated (UNSAFE)", "LMDB (heed, NO_SYNC)", "redb (Durability::None)"] {
        let line = md.lines().find(|l| l.starts_with(&format!("| {always} |"))).expect("row in the strategy table");
        assert!(line.contains(" ns [") || line.contains(" µs ["), "{always} has no measured cells: {line}");
    }

    let chart = std::fs::read_to_string(&svg).expect("the chart was written");
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert!(chart.contains("<polyline"), "the chart has curves");
}
