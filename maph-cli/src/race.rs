//! `maph race`: the lost-update demonstration as a tool. P copies of this
//! program each increment one counter M times under a strategy; with a
//! strategy that excludes writers nothing is lost, without one updates vanish.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maph_core::{Config, Error, SingleWriter, Store, WriteCoordinator};
use serde_json::{json, Value};

use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::strategy::{writer_for, StrategyName, WriterOptions};

/// Slots of a store `maph race` creates: one counter needs little room.
const RACE_SLOTS: u64 = 64;

pub fn race(
    out: Output,
    options: &WriterOptions,
    strategy: StrategyName,
    procs: u32,
    increments: u64,
    key: &str,
    path: &Path,
) -> CliResult {
    if procs == 0 {
        return Err(CliError::new("--procs must be at least 1"));
    }
    let created = !path.exists();
    if created {
        Store::create(path, Config::new(RACE_SLOTS).strategy(strategy.tag()))?;
    }
    let prepared = prepare(options, strategy, key, path);
    if prepared.is_err() && created {
        // Leave nothing behind from a race that never started.
        let _ = std::fs::remove_file(path);
    }
    let (store, before) = prepared?;

    let exe = std::env::current_exe().map_err(|e| CliError::new(format!("cannot find my own executable: {e}")))?;
    let mut children = Vec::new();
    for _ in 0..procs {
        let child = Command::new(&exe)
            .args(["--redis-url", &options.redis_url])
            .args(options.single_host_network_fs.then_some("--single-host-network-fs"))
            .args(["race-worker", "--increments", &increments.to_string()])
            .args(["--key", key])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CliError::new(format!("could not start a racing process: {e}")))?;
        children.push(child);
    }
    // Closing every standard input is the start signal: all go at once.
    let started = Instant::now();
    for child in &mut children {
        drop(child.stdin.take());
    }
    let mut acquisitions = 0u64;
    let mut contended = 0u64;
    let mut failure = None;
    for child in children {
        let output = child.wait_with_output().map_err(|e| CliError::new(format!("waiting for a racer: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            failure.get_or_insert(stderr.lines().last().unwrap_or("no message").to_string());
            continue;
        }
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        acquisitions += report["acquisitions"].as_u64().unwrap_or(0);
        contended += report["contended"].as_u64().unwrap_or(0);
    }
    let elapsed = started.elapsed();
    if let Some(message) = failure {
        return Err(CliError::new(format!("a racing process failed: {message}")));
    }
    let after = match counter(&store, key) {
        // The last uncoordinated writers mixed their digits: nothing survived.
        Err(_) if store.strategy() == maph_core::Strategy::UNCOORDINATED => before,
        other => other?,
    };
    let expected = u64::from(procs) * increments;
    let actual = after.saturating_sub(before);
    let lost = expected.saturating_sub(actual);
    out.emit(
        json!({
            "strategy": store.strategy().as_str(),
            "procs": procs,
            "increments": increments,
            "expected": expected,
            "actual": actual,
            "lost": lost,
            "elapsed_ms": elapsed.as_secs_f64() * 1e3,
            "acquisitions": acquisitions,
            "contended": contended,
        }),
        || {
            format!(
                "{procs} processes x {increments} increments under {}: expected {expected}, actual {actual}, \
                 lost {lost} ({:.1}%) in {:.2?}\nlock acquisitions {acquisitions}, of which waited {contended}",
                store.strategy(),
                lost as f64 * 100.0 / expected.max(1) as f64,
                elapsed
            )
        },
    )
}

/// Opens the race store and checks it can be raced on; returns it and the
/// counter's value before the race.
fn prepare(options: &WriterOptions, strategy: StrategyName, key: &str, path: &Path) -> CliResult<(Store, u64)> {
    let store = options.open(path)?;
    let recorded = StrategyName::of(&store)?;
    if recorded != strategy {
        return Err(CliError::new(format!(
            "{} was created for `{}`; race it with --strategy {} or give a path that does not exist yet",
            path.display(),
            store.strategy(),
            recorded.flag()
        )));
    }
    // Fail now, not in P children, if writing cannot work (a server holds the
    // lease, Redis is unreachable, ...).
    drop(writer_for(&store, options)?);
    let before = counter(&store, key)?;
    Ok((store, before))
}

/// One racer: waits for the start signal, then increments.
pub fn worker(options: &WriterOptions, increments: u64, key: &str, path: &Path) -> CliResult {
    let store = options.open(path)?;
    let writer = take_turn_for_lease(&store, options)?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink); // EOF: go
    let uncoordinated = !writer.excludes_writers();
    for _ in 0..increments {
        let mut bad = None;
        store.update(&writer, key.as_bytes(), |old| match old.map_or(Ok(0), parse_counter) {
            Ok(n) => Some((n + 1).to_string().into_bytes()),
            // Two uncoordinated writers in one slot can mix their digits: part
            // of the race being shown, so the counter starts over.
            Err(_) if uncoordinated => Some(b"1".to_vec()),
            Err(e) => {
                bad = Some(e);
                old.map(<[u8]>::to_vec) // leave it as it was
            }
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
    }
    let stats = writer.contention();
    println!("{}", json!({ "acquisitions": stats.acquisitions, "contended": stats.contended }));
    Ok(())
}

/// Under the single-writer strategy one process writes at a time: racers wait
/// for the lease in turn, as jobs queueing for one writer role would.
fn take_turn_for_lease(store: &Store, options: &WriterOptions) -> CliResult<Box<dyn WriteCoordinator>> {
    if StrategyName::of(store)? != StrategyName::Single {
        return writer_for(store, options);
    }
    loop {
        match SingleWriter::new(store) {
            Ok(writer) => return Ok(Box::new(writer)),
            Err(Error::WriterBusy { .. }) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e.into()),
        }
    }
}

fn counter(store: &Store, key: &str) -> CliResult<u64> {
    store.get(key.as_bytes())?.map_or(Ok(0), |v| parse_counter(&v))
}

fn parse_counter(value: &[u8]) -> CliResult<u64> {
    std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
        CliError::new(format!(
            "the counter holds {:?}, not a number; race on another --key",
            String::from_utf8_lossy(value)
        ))
    })
}
