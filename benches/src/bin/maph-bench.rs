//! `maph-bench`: the main job of the benchmark.
//!
//! ```text
//! maph-bench [report] [--smoke | --thorough] [--out FILE] [--svg FILE] [--rows ID,ID] [--dir DIR]
//! maph-bench list
//! ```
//!
//! `report` (the default) measures every row, prints the strategy table and
//! writes the Markdown report and its SVG chart. `worker` is internal: the
//! contention runs start this binary as their writer processes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use maph_bench::contention::{worker_main, WorkerSpec};
use maph_bench::rows::{self, Writers};
use maph_bench::{report, run, Options, Plan, Preset};

const USAGE: &str = "\
usage: maph-bench [report] [--smoke | --thorough] [--out FILE] [--svg FILE] [--rows ID,ID,...] [--dir DIR]
       maph-bench list

  report       measure every row, print the strategy table, write the report (default)
  list         show the rows
  --smoke      a few seconds, tiny counts: proves the harness works; numbers mean nothing
  --thorough   longer measurements and more repeats (about 12 minutes)
  --out FILE   where to write the Markdown report
               (default: docs/BENCHMARKS.md; smoke mode: a temporary directory)
  --svg FILE   where to write the chart (default: benchmarks-contention.svg beside the report)
  --rows IDS   measure only these rows (ids as `list` shows them)
  --dir DIR    where to put the stores (default: the system temporary directory)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("worker") => worker(&args[1..]),
        Some("list") => {
            list();
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("report") => report_command(&args[1..]),
        _ => report_command(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maph-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn worker(args: &[String]) -> anyhow::Result<()> {
    let spec = args.first().ok_or_else(|| anyhow::anyhow!("worker: missing its specification"))?;
    let spec: WorkerSpec = serde_json::from_str(spec)?;
    worker_main(&spec)
}

fn list() {
    for row in rows::all() {
        let needs = if row.needs_redis { "needs a Redis server" } else { "" };
        let writers = match row.writers {
            Writers::Many => "many writer processes",
            Writers::One(_) => "one writer process",
        };
        let line = format!("{:<16} {:<32} {:<18} {:<22} {needs}", row.id, row.label, row.provider, writers);
        println!("{}", line.trim_end());
    }
}

struct Args {
    preset: Preset,
    out: Option<PathBuf>,
    svg: Option<PathBuf>,
    options: Options,
}

fn parse(args: &[String]) -> anyhow::Result<Args> {
    let mut parsed = Args { preset: Preset::Default, out: None, svg: None, options: Options::default() };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value =
            |name: &str| it.next().cloned().ok_or_else(|| anyhow::anyhow!("{name} needs a value\n\n{USAGE}"));
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--smoke" => parsed.preset = Preset::Smoke,
            "--thorough" => parsed.preset = Preset::Thorough,
            "--out" => parsed.out = Some(value("--out")?.into()),
            "--svg" => parsed.svg = Some(value("--svg")?.into()),
            "--dir" => parsed.options.dir = Some(value("--dir")?.into()),
            "--rows" => {
                parsed.options.only = value("--rows")?.split(',').filter(|s| !s.is_empty()).map(String::from).collect()
            }
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    Ok(parsed)
}

fn report_command(args: &[String]) -> anyhow::Result<()> {
    let args = parse(args)?;
    let out = match (&args.out, args.preset) {
        (Some(out), _) => out.clone(),
        (None, Preset::Smoke) => std::env::temp_dir().join("maph-bench-smoke").join("BENCHMARKS.md"),
        (None, _) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md"),
    };
    let svg = args.svg.clone().unwrap_or_else(|| out.with_file_name("benchmarks-contention.svg"));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if let Some(parent) = svg.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let exe = std::env::current_exe()?;
    let plan = Plan::new(args.preset);
    eprintln!("maph-bench: {} mode; the report goes to {}", plan.preset.name(), out.display());
    let results = run(&plan, &exe, &args.options, &mut |line| eprintln!("maph-bench: {line}"))?;

    let svg_link = relative_link(&out, &svg);
    let command = match std::env::var("MAPH_BENCH_COMMAND") {
        Ok(c) if !c.is_empty() => c,
        _ => format!("maph-bench {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")).trim().to_string(),
    };
    let outputs = report::render(&results, &svg_link, &command);
    std::fs::write(&out, &outputs.markdown)?;
    std::fs::write(&svg, &outputs.svg)?;
    print!("{}", outputs.terminal);
    println!("\nwrote {} and {} in {:.0} s", out.display(), svg.display(), results.elapsed.as_secs_f64());
    Ok(())
}

/// How the report links the chart: its file name when both sit in one
/// directory, else the chart's full path.
fn relative_link(report: &Path, svg: &Path) -> String {
    let same_dir = report.parent().map(|p| p.canonicalize().ok()) == svg.parent().map(|p| p.canonicalize().ok());
    match (same_dir, svg.file_name()) {
        (true, Some(name)) => name.to_string_lossy().into_owned(),
        _ => svg.display().to_string(),
    }
}
