//! `maph-bench`: the benchmark's command line. See `maph-bench --help` and
//! `benches/README.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use maph_bench::cell::cell_main;
use maph_bench::plan::Dataset;
use maph_bench::rows::{self, SharedLock, Sharing};
use maph_bench::sweep::SweepSpec;
use maph_bench::worker::{worker_main, WorkerSpec};
use maph_bench::{compare, csv, machine, provenance, report, run, Options, Plan, Preset, Results};

const USAGE: &str = "\
usage: maph-bench [report] [--smoke | --thorough] [--only ID,ID,...] [--sweep NAME[=V,V,...]]...
                  [--skip PART,...] [--keys N,N,...] [--results DIR] [--update-docs] [--dir DIR] [--seed N]
                  [--pages-as-written]
       maph-bench sweep NAME[=V,V,...]... [--smoke | --thorough] [--only ID,...] [--results DIR] [--dir DIR]
       maph-bench render RESULTS.json [--out FILE.md]
       maph-bench compare OLD.json NEW.json [--threshold FRACTION] [--fail-if-worse]
       maph-bench merge OUT.json RUN.json RUN.json...
       maph-bench placement [--keys N,N,...] [--walks N]
       maph-bench list

report (the default) measures and writes results.json, results.csv, BENCHMARKS.md and its charts
into a results folder:
  --smoke          seconds, tiny counts: proves the harness works; the numbers mean nothing
  --thorough       more processes, samples and repeats (about 20 minutes on 2 cores)
  --only IDS       only these strategies and peers (ids as `maph-bench list` shows them)
  --sweep SPEC     also run a sweep: writers, value-size, keys, zipf, read-share, each
                   optionally with its values (value-size=16,64,max; zipf=0.99)
  --skip PARTS     leave out parts: table, contention, readers, limits
  --keys N,N       the single-process table's store sizes (keys; default 10000)
  --results DIR    the results folder (default: bench-results/<date>-<commit>/, with
                   bench-results/latest pointing at it)
  --update-docs    also render the report into docs/BENCHMARKS.md, its charts into docs/, and copy
                   results.json and results.csv there as docs/benchmarks-results.{json,csv}
  --dir DIR        where the stores go (default: the system temporary directory)
  --seed N         the seed every key order derives from
  --pages-as-written  do not read each maph store once in order before use: leave its pages
                   where its own writes and start-up put them (shows the placement effect)
sweep runs only the named sweeps (report --skip table,contention,readers,limits --sweep ...).
render rewrites the report from a results file without measuring (default: BENCHMARKS.md beside it).
placement runs the experiment behind “Identical code, different processes” in docs/BENCHMARKS.md:
  one store's pages touched in order or at random, then read alternately (default keys
  1000,2000,10000,30000; 200 walks each).
compare prints NEW ÷ OLD for every figure both runs measured, with a 95 % interval, a rank test
  and a verdict: a change is called only at p <= 0.05 and beyond --threshold (default 0.05);
  --fail-if-worse exits 1 if any got worse.
merge joins runs of one version and command into one results file (all processes and runs
  side by side): interleave old and new runs, merge each side's, then compare.
";

/// The copy of the raw results tracked beside docs/BENCHMARKS.md.
const DOCS_RESULTS: &str = "benchmarks-results.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("worker") => worker(&args[1..]),
        Some("cell") => args
            .get(1)
            .ok_or_else(|| anyhow::anyhow!("cell: missing its specification file"))
            .and_then(|p| cell_main(Path::new(p))),
        Some("list") => {
            list();
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("render") => render_command(&args[1..]),
        Some("placement") => placement_command(&args[1..]),
        Some("merge") => merge_command(&args[1..]),
        Some("compare") => return compare_command(&args[1..]),
        Some("sweep") => report_command(&args[1..], true),
        Some("report") => report_command(&args[1..], false),
        _ => report_command(&args, false),
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
        let sharing = match row.sharing {
            Sharing::Many => "many writer processes",
            Sharing::OneWriter(_) => "one writer process",
            Sharing::OneProcess(_) => "one process",
        };
        let shared = match row.shared_lock {
            SharedLock::Shared => "shared lock for readers",
            SharedLock::Exclusive(_) => "no shared mode",
            SharedLock::Free(_) => "readers take no lock",
        };
        let needs = if row.needs_redis { "needs a Redis server" } else { "" };
        let line =
            format!("{:<14} {:<40} {:<17} {:<22} {:<24} {needs}", row.id, row.label, row.provider, sharing, shared);
        println!("{}", line.trim_end());
    }
}

struct Args {
    preset: Preset,
    options: Options,
    sweeps: Vec<String>,
    skip: Vec<String>,
    keys: Option<Vec<usize>>,
    results: Option<PathBuf>,
    update_docs: bool,
    seed: Option<u64>,
    pages_as_written: bool,
}

fn parse(args: &[String], sweep_command: bool) -> anyhow::Result<Args> {
    let mut parsed = Args {
        preset: Preset::Default,
        options: Options::default(),
        sweeps: Vec::new(),
        skip: Vec::new(),
        keys: None,
        results: None,
        update_docs: false,
        seed: None,
        pages_as_written: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value =
            |name: &str| it.next().cloned().ok_or_else(|| anyhow::anyhow!("{name} needs a value\n\n{USAGE}"));
        let list = |v: String| v.split(',').filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>();
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--smoke" => parsed.preset = Preset::Smoke,
            "--thorough" => parsed.preset = Preset::Thorough,
            "--only" => parsed.options.only = list(value("--only")?),
            "--sweep" => parsed.sweeps.push(value("--sweep")?),
            "--skip" => parsed.skip.extend(list(value("--skip")?)),
            "--keys" => {
                let keys = list(value("--keys")?)
                    .iter()
                    .map(|k| {
                        k.replace('_', "").parse::<usize>().map_err(|_| anyhow::anyhow!("--keys: {k:?} is not a count"))
                    })
                    .collect::<anyhow::Result<Vec<usize>>>()?;
                anyhow::ensure!(!keys.is_empty() && keys.iter().all(|&k| k > 0), "--keys needs positive counts");
                parsed.keys = Some(keys);
            }
            "--results" => parsed.results = Some(value("--results")?.into()),
            "--update-docs" => parsed.update_docs = true,
            "--pages-as-written" => parsed.pages_as_written = true,
            "--dir" => parsed.options.dir = Some(value("--dir")?.into()),
            "--seed" => {
                parsed.seed = Some(value("--seed")?.parse().map_err(|_| anyhow::anyhow!("--seed needs a number"))?)
            }
            other if sweep_command && !other.starts_with('-') => parsed.sweeps.push(other.to_string()),
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if sweep_command {
        anyhow::ensure!(!parsed.sweeps.is_empty(), "sweep needs at least one sweep name\n\n{USAGE}");
        parsed.skip.extend(["table", "contention", "readers", "limits"].map(String::from));
    }
    for part in &parsed.skip {
        anyhow::ensure!(
            ["table", "contention", "readers", "limits"].contains(&part.as_str()),
            "--skip: no part named {part:?} (table, contention, readers, limits)"
        );
    }
    Ok(parsed)
}

fn plan_of(args: &Args) -> anyhow::Result<Plan> {
    let mut plan = Plan::new(args.preset);
    if let Some(keys) = &args.keys {
        plan.datasets = keys.iter().map(|&k| Dataset::for_keys(k)).collect();
        if keys == &[Dataset::DEFAULT.keys] {
            plan.datasets = vec![Dataset::DEFAULT];
        }
    }
    if let Some(seed) = args.seed {
        plan.seed = seed;
    }
    plan.settle_pages = !args.pages_as_written;
    let skip = |part: &str| args.skip.iter().any(|s| s == part);
    if skip("table") {
        plan.table = None;
    }
    if skip("contention") {
        plan.contention = None;
    }
    if skip("readers") {
        plan.readers = None;
    }
    if skip("limits") {
        plan.limits_runs = 0;
    }
    let (repeats, duration_ms) = match args.preset {
        Preset::Smoke => (1, 30),
        Preset::Default => (2, 250),
        Preset::Thorough => (5, 1000),
    };
    plan.sweeps =
        args.sweeps.iter().map(|s| SweepSpec::parse(s, repeats, duration_ms)).collect::<anyhow::Result<_>>()?;
    Ok(plan)
}

fn repository() -> PathBuf {
    provenance::repository().canonicalize().unwrap_or_else(|_| provenance::repository().to_path_buf())
}

fn report_command(args: &[String], sweep_command: bool) -> anyhow::Result<()> {
    let args = parse(args, sweep_command)?;
    let plan = plan_of(&args)?;
    rows::select(&args.options.only)?; // an unknown name fails before anything is written
    let results_dir = match &args.results {
        Some(dir) => dir.clone(),
        None => {
            let commit =
                provenance::git(provenance::repository()).0.map_or_else(|| "unknown".into(), |c| c[..7].to_string());
            repository().join("bench-results").join(format!(
                "{}-{commit}-{}",
                machine::utc_file_stamp(),
                plan.preset.name()
            ))
        }
    };
    std::fs::create_dir_all(&results_dir)?;
    let command = match std::env::var("MAPH_BENCH_COMMAND") {
        Ok(c) if !c.is_empty() => c,
        _ => format!("maph-bench {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")).trim().to_string(),
    };
    let options = Options { command, ..args.options.clone() };
    let exe = std::env::current_exe()?;
    eprintln!("maph-bench: {} mode; results go to {}", plan.preset.name(), results_dir.display());
    let started = std::time::Instant::now();
    let results = run(&plan, &exe, &options, &mut |line| {
        eprintln!("maph-bench [{:>4.0} s]: {line}", started.elapsed().as_secs_f64())
    })?;
    let json = results_dir.join("results.json");
    results.save(&json)?;
    std::fs::write(results_dir.join("results.csv"), csv::render(&results))?;
    let outputs = report::render(&results);
    write_report(&outputs, &results_dir.join("BENCHMARKS.md"))?;
    if args.results.is_none() {
        let latest = results_dir.with_file_name("latest");
        let _ = std::fs::remove_file(&latest);
        if let Some(name) = results_dir.file_name() {
            let _ = std::os::unix::fs::symlink(name, &latest);
        }
    }
    print!("{}", outputs.terminal);
    println!(
        "\nwrote {} (results.json, results.csv, BENCHMARKS.md, charts) in {:.0} s",
        results_dir.display(),
        results.elapsed_s
    );
    if args.update_docs {
        let docs = repository().join("docs");
        write_report(&outputs, &docs.join("BENCHMARKS.md"))?;
        // The raw results travel with the tracked report, so it can be rendered
        // again (and compared with) from any clone.
        std::fs::copy(&json, docs.join(DOCS_RESULTS))?;
        std::fs::copy(results_dir.join("results.csv"), docs.join(DOCS_RESULTS).with_extension("csv"))?;
        println!("updated {} with its charts and {DOCS_RESULTS}", docs.join("BENCHMARKS.md").display());
    }
    Ok(())
}

/// Writes the Markdown to `path` and the charts beside it.
fn write_report(outputs: &report::Outputs, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    std::fs::write(path, &outputs.markdown)?;
    for (name, svg) in &outputs.charts {
        std::fs::write(dir.join(name), svg)?;
    }
    Ok(())
}

fn render_command(args: &[String]) -> anyhow::Result<()> {
    let mut input = None;
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(it.next().ok_or_else(|| anyhow::anyhow!("--out needs a value"))?)),
            other if input.is_none() && !other.starts_with('-') => input = Some(PathBuf::from(other)),
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let input = input.ok_or_else(|| anyhow::anyhow!("render needs a results.json\n\n{USAGE}"))?;
    let results = Results::load(&input)?;
    let out = out.unwrap_or_else(|| input.with_file_name("BENCHMARKS.md"));
    write_report(&report::render(&results), &out)?;
    println!("wrote {} and its charts", out.display());
    Ok(())
}

fn compare_command(args: &[String]) -> ExitCode {
    let run = || -> anyhow::Result<bool> {
        let mut files = Vec::new();
        let mut threshold = 0.05;
        let mut fail_if_worse = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--threshold" => {
                    threshold = it
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                        .filter(|t| (0.0..1.0).contains(t))
                        .ok_or_else(|| anyhow::anyhow!("--threshold needs a fraction such as 0.05"))?
                }
                "--fail-if-worse" => fail_if_worse = true,
                other if !other.starts_with('-') => files.push(PathBuf::from(other)),
                other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        anyhow::ensure!(files.len() == 2, "compare needs OLD.json and NEW.json\n\n{USAGE}");
        let old = Results::load(&files[0])?;
        let new = Results::load(&files[1])?;
        let comparisons = compare::compare(&old, &new, threshold);
        print!("{}", compare::render(&old, &new, &comparisons, threshold));
        Ok(fail_if_worse && compare::any_worse(&comparisons))
    };
    match run() {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            eprintln!("maph-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn placement_command(args: &[String]) -> anyhow::Result<()> {
    let mut keys = vec![1000, 2000, 10_000, 30_000];
    let mut walks = 200;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{arg} needs a value\n\n{USAGE}"));
        match arg.as_str() {
            "--keys" => {
                keys = value()?
                    .split(',')
                    .map(|k| k.parse::<usize>().map_err(|_| anyhow::anyhow!("--keys: {k:?} is not a count")))
                    .collect::<anyhow::Result<_>>()?
            }
            "--walks" => walks = value()?.parse().map_err(|_| anyhow::anyhow!("--walks needs a count"))?,
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    maph_bench::placement::main(&keys, walks)
}

fn merge_command(args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(args.len() >= 3, "merge needs OUT.json and at least two results files\n\n{USAGE}");
    let parts = args[1..].iter().map(|p| Results::load(Path::new(p))).collect::<anyhow::Result<Vec<_>>>()?;
    let merged = Results::merge(parts)?;
    merged.save(Path::new(&args[0]))?;
    println!("wrote {} from {} runs", args[0], args.len() - 1);
    Ok(())
}
