//! The harness end to end in smoke mode, as CI runs it: every row is set up,
//! measured by criterion in fresh processes, run by real worker processes
//! (contention, readers under writers, a sweep), and reported; then the
//! report is rendered again from its results file and the run compared with
//! itself. Nothing here compares times: it checks that the harness produces
//! complete, honest, reproducible output.

use std::path::Path;
use std::process::{Command, Output};

use maph_bench::{rows, Results};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maph-bench")).args(args).output().expect("run maph-bench")
}

fn ok(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    stdout
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn smoke_run_writes_results_that_render_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let stores = dir.path().join("stores");
    let output = bench(&[
        "report",
        "--smoke",
        "--results",
        path(&results),
        "--dir",
        path(&stores),
        "--sweep",
        "read-share=0,0.9",
    ]);
    let stdout = ok(&output, "maph-bench --smoke");

    // The raw results, and everything rendered from them.
    let json = results.join("results.json");
    let parsed = Results::load(&json).expect("results.json reads back");
    let csv = std::fs::read_to_string(results.join("results.csv")).unwrap();
    assert!(csv.starts_with(maph_bench::csv::HEADER));
    assert!(csv.lines().count() > 50, "the CSV holds the tables");
    let md = std::fs::read_to_string(results.join("BENCHMARKS.md")).expect("the report was written");
    assert!(md.contains("Smoke run"), "a smoke report says it is one");
    for section in [
        "## Machine and provenance",
        "## The strategy table",
        "### Overhead against the uncoordinated baseline",
        "### Identical code, different processes",
        "## Comparison of strategies",
        "## Contention",
        "## The Redis rows in round trips",
        "## Readers under writers",
        "## Sweep: share of operations that are gets",
    ] {
        assert!(md.contains(section), "missing {section}");
    }
    for chart in ["benchmarks-contention.svg", "benchmarks-readers.svg", "benchmarks-sweep-read-share.svg"] {
        assert!(md.contains(&format!("]({chart})")), "the report links {chart}");
        let svg = std::fs::read_to_string(results.join(chart)).expect("the chart was written");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<polyline"), "{chart} has curves");
    }

    // Every row appears, and every row that can run was measured without a failure.
    for row in rows::all() {
        assert!(md.contains(row.label), "row {} is missing from the report", row.id);
        assert!(stdout.contains(row.label), "row {} is missing from the terminal table", row.id);
    }
    let failed = |what: String, failure: Option<&String>| assert!(failure.is_none(), "{what} failed: {failure:?}");
    for c in &parsed.cells {
        failed(format!("{} / {:?}", c.row, c.column), failure(&c.outcome));
    }
    for c in &parsed.contention {
        failed(format!("contention {} / {}", c.row, c.procs), failure(&c.outcome));
        if let Some(open) = c.outcome.measured().and_then(|p| p.open_loop.as_ref()) {
            failed(format!("open loop {} / {}", c.row, c.procs), failure(open));
        }
        assert!(
            c.outcome.measured().is_none_or(|p| p.runs.iter().all(|r| r.errors == 0)),
            "{}: an increment failed",
            c.row
        );
    }
    for r in &parsed.readers {
        failed(format!("readers {} / {}", r.row, r.writers), failure(&r.outcome));
    }
    for s in &parsed.sweeps {
        for p in &s.points {
            failed(format!("sweep {} / {}", p.row, p.value), failure(&p.outcome));
        }
    }
    assert!(!md.contains("| failed |"), "a failed cell:\n{md}");
    for cell in &parsed.cells {
        if let maph_bench::results::Outcome::Measured(p) = &cell.outcome {
            assert_eq!(p.len(), parsed.plan.table.as_ref().unwrap().processes, "{} / {:?}", cell.row, cell.column);
        }
    }
    for always in ["single-writer", "uncoordinated", "lmdb", "redb"] {
        let cell = parsed.cell(always, 0, maph_bench::Column::Read).expect("a read cell");
        assert!(cell.center().is_some(), "{always} has no measured read");
    }
    // Honest counts: only the unsafe row loses updates; the safe rows' counters add up.
    for point in &parsed.contention {
        if let Some(p) = point.outcome.measured() {
            for run in &p.runs {
                let lost = run.lost().expect("increment runs count their counters");
                let row = parsed.row(&point.row).unwrap();
                assert!(lost >= 0, "{} at {}: more counted than made ({lost})", point.row, point.procs);
                assert!(
                    !row.safe || lost == 0,
                    "{} at {}: a safe strategy lost {lost} updates",
                    point.row,
                    point.procs
                );
                assert!(run.writes > 0 && run.window_ns > 0);
            }
        }
    }
    // Readers under writers include the reference design's LOCK_SH readers.
    assert!(parsed.readers.iter().any(|r| r.row == "flock" && r.locked && r.outcome.measured().is_some()));

    // Rendering again from the file gives the same report.
    let again = dir.path().join("again").join("REPORT.md");
    ok(&bench(&["render", path(&json), "--out", path(&again)]), "maph-bench render");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), md, "the report renders from results.json alone");
    assert!(again.with_file_name("benchmarks-contention.svg").is_file());

    // A run compared with itself changes nothing.
    let compared = ok(&bench(&["compare", path(&json), path(&json), "--fail-if-worse"]), "maph-bench compare");
    assert!(compared.contains("0 worse, 0 better"), "{compared}");
}

fn failure<T>(o: &maph_bench::results::Outcome<T>) -> Option<&String> {
    match o {
        maph_bench::results::Outcome::Failed(e) => Some(e),
        _ => None,
    }
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("never");
    let unknown = bench(&["report", "--only", "nosuch", "--smoke", "--results", path(&results)]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("no strategy named \"nosuch\"") && stderr.contains("flock"), "{stderr}");
    assert!(!results.exists(), "nothing is written for a refused run");
    let sweep = bench(&["sweep", "colour"]);
    assert!(String::from_utf8_lossy(&sweep.stderr).contains("no sweep named"));
    let compare = bench(&["compare", "/nonexistent/a.json", "/nonexistent/b.json"]);
    assert_eq!(compare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&compare.stderr).contains("could not read"));
}
